package rtnl_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

// TestIntegrationBatch runs 300 requests, more than two windows, with
// failures at known positions: the results line up with the requests, the
// kernel carries on after each failure, and the order is kept (every get
// sees the value the request before it set).
func TestIntegrationBatch(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	const (
		n     = 300
		ntaps = 10
	)
	var idx [ntaps]uint32
	txq := [ntaps]uint32{}
	for k := range idx {
		idx[k] = e.tap(fmt.Sprintf("t%d", k), tap.Options{})
		txq[k] = 1000 // the kernel's default
	}
	var b rtnl.Batch
	gets := map[int]*rtnl.Link{}
	wantGet := map[int]uint32{}
	failAt := func(i int) bool { return i%50 == 0 || i%50 == 25 }
	for i := range n {
		k := i % ntaps
		switch {
		case i%50 == 0:
			b.SetLink(&rtnl.LinkChange{Index: uint32(90000 + i), MTU: 1400})
		case i%50 == 25:
			// An error answer with an extended-ack message.
			b.AddFDB(uint32(90000+i), net.HardwareAddr{2, 0, 0, 0, 0, 1})
		case i%7 == 3:
			gets[i] = new(rtnl.Link)
			wantGet[i] = txq[k]
			b.GetLinkByIndex(idx[k], gets[i])
		default:
			txq[k] = uint32(i + 1)
			b.SetLink(&rtnl.LinkChange{Index: idx[k], TxQueueLen: ptr(uint32(i + 1))})
		}
	}
	res, err := e.c.Exec(ctx, &b)
	if len(res) != n {
		t.Fatalf("Exec = %d results, want %d", len(res), n)
	}
	for i, r := range res {
		switch {
		case failAt(i) && !errors.Is(r, unix.ENODEV):
			t.Errorf("Exec result %d = %v, want ENODEV", i, r)
		case failAt(i) && !strings.Contains(r.Error(), fmt.Sprint(90000+i)):
			t.Errorf("Exec result %d = %v, want it to name link %d", i, r, 90000+i)
		case !failAt(i) && r != nil:
			t.Errorf("Exec result %d = %v, want nil", i, r)
		}
	}
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("Exec joined error = %v, want ENODEV", err)
	}
	for i, l := range gets {
		if l.Index != idx[i%ntaps] || l.TxQueueLen != wantGet[i] {
			t.Errorf("get %d = link %d txqlen %d, want link %d txqlen %d", i, l.Index, l.TxQueueLen, idx[i%ntaps], wantGet[i])
		}
	}
	for k := range idx {
		name := fmt.Sprintf("t%d", k)
		if got := e.link(name).TxQLen; uint32(got) != txq[k] {
			t.Errorf("%s txqlen = %d, want %d (the last set)", name, got, txq[k])
		}
	}

	// The Conn is still in step with the kernel.
	if l, err := e.c.LinkByIndex(ctx, idx[0]); err != nil || l.Name != "t0" {
		t.Errorf("LinkByIndex(%d) after the batch = %+v, %v, want t0", idx[0], l, err)
	}
	// And the same batch runs again.
	if res, err := e.c.Exec(ctx, &b); len(res) != n || !errors.Is(err, unix.ENODEV) {
		t.Errorf("Exec again = %d results, %v, want %d, ENODEV", len(res), err, n)
	}
}

// TestIntegrationLinksUnderChurn dumps links while another goroutine
// creates and deletes TAPs in the namespace. Every dump is either complete
// and consistent or fails with ErrDumpInterrupted.
func TestIntegrationLinksUnderChurn(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	// Enough links that a dump takes several datagrams.
	const stable = 120
	for i := range stable {
		e.tap(fmt.Sprintf("s%d", i), tap.Options{MultiQueue: true})
	}
	links, err := e.c.Links(ctx, &rtnl.LinkFilter{Kind: "tun"})
	if err != nil || len(links) != stable {
		t.Fatalf("Links(kind tun) = %d links, %v, want %d", len(links), err, stable)
	}

	c2, err := rtnl.Dial(&rtnl.Config{NetNS: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var churnErr error
	churned := 0
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("c%d", i%8)
			d, err := tap.Create(name, &tap.Options{Persist: true, NetNS: e.ns})
			if err != nil {
				churnErr = err
				return
			}
			d.Close()
			idx, err := c2.IndexByName(ctx, name)
			if err == nil {
				err = c2.DeleteLink(ctx, idx)
			}
			if err != nil {
				churnErr = err
				return
			}
			churned++
		}
	})

	var ok, interrupted, retries int
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		f := &rtnl.LinkFilter{}
		if i%2 == 1 {
			f.Kind = "tun"
		}
		var links []rtnl.Link
		var err error
		if i%4 < 2 {
			links, err = e.c.Links(ctx, f)
		} else {
			// The same through WalkLinks, counting the retries.
			resets := 0
			err = e.c.WalkLinks(ctx, f, func(l *rtnl.Link) error {
				links = append(links, *l)
				return nil
			}, func() {
				resets++
				links = nil
			})
			retries += resets - 1
			if err != nil {
				links = nil
			}
		}
		if errors.Is(err, rtnl.ErrDumpInterrupted) {
			if links != nil {
				t.Errorf("Links(%+v) = %d links with ErrDumpInterrupted, want none", f, len(links))
			}
			interrupted++
			continue
		}
		if err != nil {
			t.Fatalf("Links(%+v) = %v, want nil or ErrDumpInterrupted", f, err)
		}
		ok++
		names := map[string]bool{}
		seen := 0
		for j, l := range links {
			if j > 0 && l.Index <= links[j-1].Index {
				t.Fatalf("Links(%+v): index %d after %d, want strictly ascending", f, l.Index, links[j-1].Index)
			}
			if names[l.Name] {
				t.Fatalf("Links(%+v): %s twice", f, l.Name)
			}
			names[l.Name] = true
			if strings.HasPrefix(l.Name, "s") {
				seen++
			}
			if f.Kind == "tun" && l.Kind != "tun" {
				t.Fatalf("Links(%+v) returned %s of kind %q", f, l.Name, l.Kind)
			}
		}
		if seen != stable {
			t.Fatalf("Links(%+v) = %d of the %d stable TAPs with a nil error: a partial result", f, seen, stable)
		}
	}
	close(stop)
	wg.Wait()
	if churnErr != nil {
		t.Fatalf("churn: %v", churnErr)
	}
	t.Logf("%d complete dumps, %d interrupted after every retry, %d retries in WalkLinks, %d TAPs created and deleted meanwhile",
		ok, interrupted, retries, churned)
	if ok == 0 {
		t.Errorf("no dump completed in 2s of churn")
	}
}

// TestIntegrationConcurrentUse shares one Conn between goroutines that each
// change and read back their own TAP, list links and run batches. Run it
// with -race.
func TestIntegrationConcurrentUse(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 25
	)
	var idx [workers]uint32
	for w := range idx {
		idx[w] = e.tap(fmt.Sprintf("w%d", w), tap.Options{})
	}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			name := fmt.Sprintf("w%d", w)
			var b rtnl.Batch
			var l rtnl.Link
			for r := range rounds {
				mtu := uint32(1000 + r)
				alias := fmt.Sprintf("%s round %d", name, r)
				if err := e.c.SetLink(ctx, &rtnl.LinkChange{Index: idx[w], MTU: mtu, Alias: &alias}); err != nil {
					errs <- err
					return
				}
				got, err := e.c.LinkByIndex(ctx, idx[w])
				if err != nil || got.MTU != mtu || got.Alias != alias {
					errs <- fmt.Errorf("LinkByIndex(%s) = %+v, %v, want MTU %d alias %q", name, got, err, mtu, alias)
					return
				}
				b.Reset()
				b.SetLink(&rtnl.LinkChange{Index: idx[w], TxQueueLen: ptr(uint32(r + 1))})
				b.GetLinkByName(name, &l)
				if _, err := e.c.Exec(ctx, &b); err != nil || l.TxQueueLen != uint32(r+1) {
					errs <- fmt.Errorf("Exec(%s) = %v, txqlen %d, want nil, %d", name, err, l.TxQueueLen, r+1)
					return
				}
				if i, err := e.c.IndexByName(ctx, name); err != nil || i != idx[w] {
					errs <- fmt.Errorf("IndexByName(%s) = %d, %v, want %d", name, i, err, idx[w])
					return
				}
				links, err := e.c.Links(ctx, &rtnl.LinkFilter{Kind: "tun"})
				if err != nil || len(links) != workers {
					errs <- fmt.Errorf("Links(kind tun) = %d links, %v, want %d", len(links), err, workers)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range workers {
		name := fmt.Sprintf("w%d", w)
		if l := e.link(name); l.MTU != 1000+rounds-1 || l.TxQLen != rounds {
			t.Errorf("%s: MTU %d txqlen %d, want %d, %d", name, l.MTU, l.TxQLen, 1000+rounds-1, rounds)
		}
	}
}

func TestIntegrationClose(t *testing.T) {
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	fds := testutil.FDCount(t)
	c, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	if _, err := c.LinkByIndex(t.Context(), 1); err != nil {
		t.Fatalf("LinkByIndex(1) = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := testutil.FDCount(t); got != fds {
		t.Errorf("open fds after Dial and Close = %d, want %d", got, fds)
	}
	if _, err := c.LinkByIndex(t.Context(), 1); err == nil {
		t.Error("LinkByIndex after Close = nil error, want an error")
	}
	if err := c.DeleteLink(t.Context(), 1); err == nil {
		t.Error("DeleteLink after Close = nil error, want an error")
	}
	if _, err := c.Links(t.Context(), nil); err == nil {
		t.Error("Links after Close = nil error, want an error")
	}
}

func TestIntegrationDialBadNetNS(t *testing.T) {
	testutil.RequireTUN(t)
	fds := testutil.FDCount(t)
	// An fd that is not a namespace.
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if c, err := rtnl.Dial(&rtnl.Config{NetNS: fd}); err == nil {
		c.Close()
		t.Fatal("Dial(NetNS: /dev/null) = nil error, want an error")
	}
	if got := testutil.FDCount(t); got != fds+1 {
		t.Errorf("open fds after a failed Dial = %d, want %d", got, fds+1)
	}
}
