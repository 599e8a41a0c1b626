package tap_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"os/exec"
	"os/user"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/tap"
)

// Every test here works in its own throwaway network namespace: devices are
// created with Options.NetNS set and inspected with iproute2 run inside that
// namespace. Nothing is created in, or changed on, the host namespace.

// forkMu orders the child processes the tests start against the closing of
// queue files. A child forked while a queue file is open holds a duplicate
// of it until its execve closes close-on-exec fds; a Close in that window
// drops only our reference, so the queue stays attached and a
// non-persistent TAP outlives its Close for a moment (seen under -count=3
// as a TAP still listed by ip after Close). Children run under RLock until
// they exit; closes take Lock, so no child exists when a queue file closes.
var forkMu sync.RWMutex

// spawning runs f, which starts child processes and waits for them, under
// forkMu.RLock.
func spawning[T any](f func() T) T {
	forkMu.RLock()
	defer forkMu.RUnlock()
	return f()
}

// closeQ closes a Device or a queue file while no child process exists.
func closeQ(c io.Closer) error {
	forkMu.Lock()
	defer forkMu.Unlock()
	return c.Close()
}

func ipLinks(t *testing.T, ns int) map[string]*testutil.IPLink {
	t.Helper()
	return spawning(func() map[string]*testutil.IPLink { return testutil.IPLinks(t, ns) })
}

func ipLinkByName(t *testing.T, ns int, name string) *testutil.IPLink {
	t.Helper()
	return ipLinks(t, ns)[name]
}

func run(t *testing.T, ns int, name string, args ...string) []byte {
	t.Helper()
	return spawning(func() []byte { return testutil.Run(t, ns, name, args...) })
}

// newNS skips the test unless TAPs can be made, and returns a fresh network
// namespace for it.
func newNS(t *testing.T) int {
	t.Helper()
	testutil.RequireTUN(t)
	return testutil.NetNS(t)
}

// mustCreate creates a TAP in ns and closes it at cleanup.
func mustCreate(t *testing.T, ns int, name string, o tap.Options) *tap.Device {
	t.Helper()
	o.NetNS = ns
	d, err := tap.Create(name, &o)
	if err != nil {
		t.Fatalf("Create(%q, %+v) = %v, want nil error", name, o, err)
	}
	t.Cleanup(func() { closeQ(d) })
	return d
}

// mustPersist creates a persistent TAP in ns and closes its queue files, the
// way a VMM-facing TAP is prepared; the namespace takes the device with it.
func mustPersist(t *testing.T, ns int, name string, o tap.Options) {
	t.Helper()
	o.Persist = true
	d := mustCreate(t, ns, name, o)
	if err := closeQ(d); err != nil {
		t.Fatalf("Close() of new persistent %s = %v, want nil", name, err)
	}
}

// tunData returns iproute2's linkinfo.info_data for the TUN/TAP device name
// in ns, failing the test if it is absent or not a TUN/TAP.
func tunData(t *testing.T, ns int, name string) map[string]any {
	t.Helper()
	l := ipLinkByName(t, ns, name)
	if l == nil {
		t.Fatalf("ip link show %s: device not found in the test namespace", name)
	}
	if l.LinkInfo.Kind != "tun" {
		t.Fatalf("ip -d link show %s: info_kind = %q, want %q", name, l.LinkInfo.Kind, "tun")
	}
	return l.LinkInfo.Data
}

// checkData compares the keys of want with iproute2's info_data for name; a
// nil value in want means the key must be absent. JSON numbers are float64.
func checkData(t *testing.T, ns int, name string, want map[string]any) {
	t.Helper()
	got := tunData(t, ns, name)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		w := want[k]
		switch {
		case w == nil && ok:
			t.Errorf("ip -d link show %s: info_data[%q] = %v, want absent", name, k, g)
		case w != nil && !ok:
			t.Errorf("ip -d link show %s: info_data[%q] absent, want %v (info_data %v)", name, k, w, got)
		case w != nil && !reflect.DeepEqual(g, w):
			t.Errorf("ip -d link show %s: info_data[%q] = %v (%T), want %v (%T)", name, k, g, g, w, w)
		}
	}
}

// numQueues returns iproute2's count of attached queues of a multi-queue TAP.
func numQueues(t *testing.T, ns int, name string) int {
	t.Helper()
	d := tunData(t, ns, name)
	n, ok := d["numqueues"].(float64)
	if !ok {
		t.Fatalf("ip -d link show %s: info_data[numqueues] = %v, want a number (info_data %v)", name, d["numqueues"], d)
	}
	return int(n)
}

func checkNumQueues(t *testing.T, ns int, name string, want int) {
	t.Helper()
	if got := numQueues(t, ns, name); got != want {
		t.Errorf("ip -d link show %s: numqueues = %d, want %d", name, got, want)
	}
}

// linkState is what a test compares to prove a call left the namespace as
// it was: every link's name and TUN/TAP info (including attached queues).
func linkState(t *testing.T, ns int) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for name, l := range ipLinks(t, ns) {
		b, err := json.Marshal(l.LinkInfo)
		if err != nil {
			t.Fatalf("encode linkinfo of %s: %v", name, err)
		}
		m[name] = string(b)
	}
	return m
}

// idMatches reports whether iproute2's rendering of a user or group, a name
// when the id resolves and a number otherwise, is id.
func idMatches(got any, id uint32, lookup func(string) (string, error)) bool {
	switch g := got.(type) {
	case float64:
		return g == float64(id)
	case string:
		if g == strconv.FormatUint(uint64(id), 10) {
			return true
		}
		name, err := lookup(strconv.FormatUint(uint64(id), 10))
		return err == nil && g == name
	}
	return false
}

func lookupUser(id string) (string, error) {
	u, err := user.LookupId(id)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func lookupGroup(id string) (string, error) {
	g, err := user.LookupGroupId(id)
	if err != nil {
		return "", err
	}
	return g.Name, nil
}

func ptr[T any](v T) *T { return &v }

// nsInode returns the inode of the namespace file behind fd.
func nsInode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat namespace fd %d: %v", fd, err)
	}
	return st.Ino
}

func TestIntegrationCreatePersistent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		o    tap.Options
		want map[string]any
	}{
		{
			desc: "single-queue",
			o:    tap.Options{},
			want: map[string]any{"type": "tap", "pi": false, "vnet_hdr": false, "multi_queue": false, "persist": true, "user": nil, "group": nil},
		},
		{
			desc: "single-queue vnet_hdr",
			o:    tap.Options{VnetHdr: true, Queues: 1},
			want: map[string]any{"type": "tap", "pi": false, "vnet_hdr": true, "multi_queue": false, "persist": true},
		},
		{
			desc: "multi-queue one file",
			o:    tap.Options{MultiQueue: true, Queues: 1, VnetHdr: true},
			want: map[string]any{"type": "tap", "pi": false, "vnet_hdr": true, "multi_queue": true, "persist": true, "numqueues": 0.0, "numdisabled": 0.0},
		},
		{
			desc: "multi-queue zero queues means one",
			o:    tap.Options{MultiQueue: true},
			want: map[string]any{"type": "tap", "pi": false, "vnet_hdr": false, "multi_queue": true, "persist": true, "numqueues": 0.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			before := linkState(t, ns)
			o := tt.o
			o.Persist = true
			d := mustCreate(t, ns, "vm0", o)

			if got := len(d.Queues()); got != 1 {
				t.Errorf("Create(vm0, %+v): %d queue files, want 1", o, got)
			}
			wantFlags := tap.Flags{NoPI: true, VnetHdr: o.VnetHdr, MultiQueue: o.MultiQueue, Persist: true}
			if got := d.Flags(); got != wantFlags {
				t.Errorf("Create(vm0, %+v).Flags() = %+v, want %+v", o, got, wantFlags)
			}
			if d.Name() != "vm0" {
				t.Errorf("Create(vm0, %+v).Name() = %q, want %q", o, d.Name(), "vm0")
			}
			if o.MultiQueue {
				checkNumQueues(t, ns, "vm0", 1)
			}

			if err := closeQ(d); err != nil {
				t.Fatalf("Close() = %v, want nil", err)
			}
			after := linkState(t, ns)
			if len(after) != len(before)+1 {
				t.Errorf("links after Create+Close = %v, want %v plus vm0", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
			}
			checkData(t, ns, "vm0", tt.want)

			// Nothing is attached any more: a single-queue TAP can be opened
			// again (it would be EBUSY otherwise).
			if !o.MultiQueue {
				r, err := tap.Open("vm0", &tap.Options{NetNS: ns, VnetHdr: o.VnetHdr})
				if err != nil {
					t.Fatalf("Open(vm0) after Close = %v, want nil (queue still attached?)", err)
				}
				closeQ(r)
			}
		})
	}
}

func TestIntegrationCreateTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		o    tap.Options
	}{
		{"single-queue", tap.Options{}},
		{"single-queue vnet_hdr", tap.Options{VnetHdr: true}},
		{"multi-queue one file", tap.Options{MultiQueue: true, Queues: 1}},
		{"multi-queue 4 files", tap.Options{MultiQueue: true, Queues: 4, VnetHdr: true}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			d := mustCreate(t, ns, "tr0", tt.o)
			n := max(tt.o.Queues, 1)
			if got := len(d.Queues()); got != n {
				t.Errorf("Create(tr0, %+v): %d queue files, want %d", tt.o, got, n)
			}
			if d.Flags().Persist {
				t.Errorf("Create(tr0, %+v).Flags().Persist = true, want false", tt.o)
			}
			checkData(t, ns, "tr0", map[string]any{"type": "tap", "persist": false, "vnet_hdr": tt.o.VnetHdr, "multi_queue": tt.o.MultiQueue})
			if tt.o.MultiQueue {
				checkNumQueues(t, ns, "tr0", n)
			}
			if err := closeQ(d); err != nil {
				t.Fatalf("Close() = %v, want nil", err)
			}
			if l := ipLinkByName(t, ns, "tr0"); l != nil {
				t.Errorf("ip link show tr0 after closing a non-persistent TAP = %+v, want no device", l)
			}
		})
	}
}

// TestIntegrationCreateExisting covers Create on a name that is taken.
func TestIntegrationCreateExisting(t *testing.T) {
	t.Parallel()
	existing := tap.Options{MultiQueue: true, VnetHdr: true, Owner: ptr[uint32](1000), Group: ptr[uint32](1000)}

	t.Run("exclusive", func(t *testing.T) {
		t.Parallel()
		ns := newNS(t)
		mustPersist(t, ns, "vm0", existing)
		before := linkState(t, ns)
		o := tap.Options{NetNS: ns, Exclusive: true, MultiQueue: true, VnetHdr: true, Persist: true}
		d, err := tap.Create("vm0", &o)
		if d != nil {
			closeQ(d)
		}
		if !errors.Is(err, unix.EBUSY) {
			t.Fatalf("Create(vm0, %+v) on an existing TAP = %v, want an error wrapping %v", o, err, unix.EBUSY)
		}
		if !strings.Contains(err.Error(), "exists") || !strings.Contains(err.Error(), "vm0") {
			t.Errorf("Create(vm0, %+v) = %q, want it to name vm0 and say it exists", o, err)
		}
		if after := linkState(t, ns); !reflect.DeepEqual(after, before) {
			t.Errorf("links after a refused exclusive Create = %v, want unchanged %v", after, before)
		}
	})

	t.Run("exclusive while attached", func(t *testing.T) {
		t.Parallel()
		ns := newNS(t)
		held := mustCreate(t, ns, "vm0", tap.Options{MultiQueue: true, Queues: 2})
		o := tap.Options{NetNS: ns, Exclusive: true, MultiQueue: true}
		if d, err := tap.Create("vm0", &o); !errors.Is(err, unix.EBUSY) {
			if d != nil {
				closeQ(d)
			}
			t.Fatalf("Create(vm0, %+v) = %v, want an error wrapping %v", o, err, unix.EBUSY)
		}
		checkNumQueues(t, ns, "vm0", 2)
		if got := len(held.Queues()); got != 2 {
			t.Errorf("holder's queues after a refused Create = %d, want 2", got)
		}
	})

	t.Run("non-exclusive attaches", func(t *testing.T) {
		t.Parallel()
		ns := newNS(t)
		mustPersist(t, ns, "vm0", existing)
		// Persist is not asked for, yet the device is and stays persistent.
		d := mustCreate(t, ns, "vm0", tap.Options{MultiQueue: true, VnetHdr: true, Queues: 3})
		if want := (tap.Flags{NoPI: true, VnetHdr: true, MultiQueue: true, Persist: true}); d.Flags() != want {
			t.Errorf("Create(vm0) on an existing TAP: Flags() = %+v, want %+v", d.Flags(), want)
		}
		checkNumQueues(t, ns, "vm0", 3)
		if err := closeQ(d); err != nil {
			t.Fatalf("Close() = %v, want nil", err)
		}
		checkData(t, ns, "vm0", map[string]any{"persist": true, "numqueues": 0.0, "multi_queue": true})
		got := tunData(t, ns, "vm0")
		if !idMatches(got["user"], 1000, lookupUser) || !idMatches(got["group"], 1000, lookupGroup) {
			t.Errorf("ip -d link show vm0: user, group = %v, %v, want 1000, 1000 kept", got["user"], got["group"])
		}
	})
}

func TestIntegrationOpen(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 2, 4} {
		t.Run(fmt.Sprintf("multi-queue %d", n), func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			mustPersist(t, ns, "vm0", tap.Options{MultiQueue: true, VnetHdr: true})
			checkNumQueues(t, ns, "vm0", 0)

			o := tap.Options{NetNS: ns, MultiQueue: true, VnetHdr: true, Queues: n}
			d, err := tap.Open("vm0", &o)
			if err != nil {
				t.Fatalf("Open(vm0, %+v) = %v, want nil", o, err)
			}
			t.Cleanup(func() { closeQ(d) })
			want := max(n, 1)
			if got := len(d.Queues()); got != want {
				t.Errorf("Open(vm0, %+v): %d queue files, want %d", o, got, want)
			}
			if wf := (tap.Flags{NoPI: true, VnetHdr: true, MultiQueue: true, Persist: true}); d.Flags() != wf {
				t.Errorf("Open(vm0, %+v).Flags() = %+v, want %+v", o, d.Flags(), wf)
			}
			checkNumQueues(t, ns, "vm0", want)
			if err := closeQ(d); err != nil {
				t.Fatalf("Close() = %v, want nil", err)
			}
			checkNumQueues(t, ns, "vm0", 0)
			checkData(t, ns, "vm0", map[string]any{"persist": true, "multi_queue": true, "vnet_hdr": true})
		})
	}

	t.Run("single-queue", func(t *testing.T) {
		t.Parallel()
		ns := newNS(t)
		mustPersist(t, ns, "vm0", tap.Options{})
		for i := range 2 { // a closed single-queue TAP can be opened again
			d, err := tap.Open("vm0", &tap.Options{NetNS: ns})
			if err != nil {
				t.Fatalf("Open(vm0) #%d = %v, want nil", i+1, err)
			}
			if wf := (tap.Flags{NoPI: true, Persist: true}); d.Flags() != wf || len(d.Queues()) != 1 {
				t.Errorf("Open(vm0) #%d: Flags() = %+v with %d queues, want %+v with 1", i+1, d.Flags(), len(d.Queues()), wf)
			}
			closeQ(d)
		}
	})

	t.Run("nil options", func(t *testing.T) {
		t.Parallel()
		ns := newNS(t)
		mustPersist(t, ns, "vm0", tap.Options{})
		// A nil *Options means the calling thread's namespace, so run the
		// call on a thread inside the test namespace.
		var d *tap.Device
		err := netns.Do(ns, func() error {
			var err error
			d, err = tap.Open("vm0", nil)
			return err
		})
		if err != nil {
			t.Fatalf("Open(vm0, nil) = %v, want nil", err)
		}
		if wf := (tap.Flags{NoPI: true, Persist: true}); d.Flags() != wf {
			t.Errorf("Open(vm0, nil).Flags() = %+v, want %+v", d.Flags(), wf)
		}
		closeQ(d)
	})
}

// TestIntegrationOpenFeatureFlags documents a kernel rule: vnet_hdr is a
// property of the device, not of a queue. The TUNSETIFF that attaches the
// first queue (of a single-queue TAP, or of a multi-queue TAP with nothing
// attached) overwrites it with what the opener asked for, and a persistent
// TAP keeps the new value after Close. Once a multi-queue TAP has a queue
// attached, further TUNSETIFFs leave it alone (tun_set_iff returns early),
// so the opener gets the device's setting, not the one it asked for, and
// only Device.Flags tells it so.
func TestIntegrationOpenFeatureFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc      string
		created   tap.Options // persistent
		held      bool        // a queue is attached before the Open
		openVnet  bool
		wantFlags bool // Device.Flags().VnetHdr after Open
		wantAfter bool // iproute2 vnet_hdr after the opener closes
	}{
		{desc: "multi-queue idle: Open clears", created: tap.Options{MultiQueue: true, VnetHdr: true}, wantFlags: false, wantAfter: false},
		{desc: "multi-queue idle: Open sets", created: tap.Options{MultiQueue: true}, openVnet: true, wantFlags: true, wantAfter: true},
		{desc: "single-queue: Open clears", created: tap.Options{VnetHdr: true}, wantFlags: false, wantAfter: false},
		{desc: "single-queue: Open sets", created: tap.Options{}, openVnet: true, wantFlags: true, wantAfter: true},
		{desc: "multi-queue in use: Open cannot clear", created: tap.Options{MultiQueue: true, VnetHdr: true}, held: true, wantFlags: true, wantAfter: true},
		{desc: "multi-queue in use: Open cannot set", created: tap.Options{MultiQueue: true}, held: true, openVnet: true, wantFlags: false, wantAfter: false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			mustPersist(t, ns, "vm0", tt.created)
			var held *tap.Device
			if tt.held {
				var err error
				held, err = tap.Open("vm0", &tap.Options{NetNS: ns, MultiQueue: true, VnetHdr: tt.created.VnetHdr})
				if err != nil {
					t.Fatalf("Open(vm0) for the first queue = %v, want nil", err)
				}
				t.Cleanup(func() { closeQ(held) })
			}
			o := tap.Options{NetNS: ns, MultiQueue: tt.created.MultiQueue, VnetHdr: tt.openVnet}
			d, err := tap.Open("vm0", &o)
			if err != nil {
				t.Fatalf("Open(vm0, %+v) = %v, want nil", o, err)
			}
			if got := d.Flags().VnetHdr; got != tt.wantFlags {
				t.Errorf("Open(vm0, %+v).Flags().VnetHdr = %v, want %v", o, got, tt.wantFlags)
			}
			closeQ(d)
			checkData(t, ns, "vm0", map[string]any{"vnet_hdr": tt.wantAfter})
			if held != nil {
				ifr, err := unix.NewIfreq("")
				if err != nil {
					t.Fatal(err)
				}
				if err := unix.IoctlIfreq(int(held.Queues()[0].Fd()), unix.TUNGETIFF, ifr); err != nil {
					t.Fatalf("TUNGETIFF on the held queue: %v", err)
				}
				if got := ifr.Uint16()&unix.IFF_VNET_HDR != 0; got != tt.created.VnetHdr {
					t.Errorf("TUNGETIFF on the held queue after another Open: IFF_VNET_HDR = %v, want %v unchanged", got, tt.created.VnetHdr)
				}
			}
		})
	}
}

// badCase is one call that must fail and leave the namespace and the fd
// table as they were.
type badCase struct {
	desc string
	// setup prepares the namespace (before the snapshot) and returns the
	// NetNS fd to pass; nil means the test namespace.
	setup func(t *testing.T, ns int) int
	open  bool // Open instead of Create
	name  string
	o     tap.Options
	want  []error // each must match errors.Is
	text  string  // a substring of the error text
}

func TestIntegrationBadInput(t *testing.T) {
	// Not parallel: the fd count is process-wide.
	persistSQ := func(t *testing.T, ns int) int { mustPersist(t, ns, "vm0", tap.Options{}); return ns }
	persistMQ := func(t *testing.T, ns int) int { mustPersist(t, ns, "vm0", tap.Options{MultiQueue: true}); return ns }
	persistTUN := func(t *testing.T, ns int) int {
		run(t, ns, "ip", "tuntap", "add", "vm0", "mode", "tun")
		return ns
	}
	holdSQ := func(t *testing.T, ns int) int { mustCreate(t, ns, "vm0", tap.Options{Persist: true}); return ns }
	holdTransientMQ := func(t *testing.T, ns int) int {
		mustCreate(t, ns, "vm0", tap.Options{MultiQueue: true, Queues: 2})
		return ns
	}
	tests := []badCase{
		{desc: "invalid name", name: "a/b", want: []error{tap.ErrInvalidName}, text: `"a/b"`},
		{desc: "name too long", name: "abcdefghijklmnop", want: []error{tap.ErrInvalidName}},
		{desc: "template name", name: "vm%d", want: []error{tap.ErrInvalidName}},
		{desc: "open invalid name", open: true, name: "..", want: []error{tap.ErrInvalidName}},
		{desc: "negative queues", name: "vm0", o: tap.Options{Queues: -1}, want: []error{tap.ErrInvalidOptions}},
		{desc: "257 queues", name: "vm0", o: tap.Options{Queues: 257, MultiQueue: true}, want: []error{tap.ErrInvalidOptions}},
		{desc: "2 queues without multi-queue", name: "vm0", o: tap.Options{Queues: 2}, want: []error{tap.ErrInvalidOptions}},
		{desc: "open 2 queues without multi-queue", open: true, name: "vm0", o: tap.Options{Queues: 2}, setup: persistSQ, want: []error{tap.ErrInvalidOptions}},
		{
			desc:  "netns fd not open",
			setup: func(*testing.T, int) int { return math.MaxInt32 },
			name:  "vm0", want: []error{unix.EBADF},
		},
		{
			desc: "netns fd not a namespace",
			setup: func(t *testing.T, _ int) int {
				f, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return int(f.Fd())
			},
			name: "vm0", want: []error{unix.EINVAL},
		},
		{desc: "exclusive on existing TAP", setup: persistSQ, name: "vm0", o: tap.Options{Exclusive: true, Persist: true}, want: []error{unix.EBUSY}, text: "exists"},
		{desc: "exclusive on lo", name: "lo", o: tap.Options{Exclusive: true}, want: []error{unix.EBUSY}, text: "exists"},
		{desc: "not a TUN/TAP", name: "lo", want: []error{unix.EINVAL}},
		{desc: "TAP over a TUN", setup: persistTUN, name: "vm0", want: []error{unix.EINVAL}},
		{desc: "multi-queue over single-queue", setup: persistSQ, name: "vm0", o: tap.Options{MultiQueue: true, Persist: true}, want: []error{unix.EINVAL}, text: "multi-queue"},
		{desc: "single-queue over multi-queue", setup: persistMQ, name: "vm0", o: tap.Options{Persist: true}, want: []error{unix.EINVAL}},
		{desc: "single-queue TAP in use", setup: holdSQ, name: "vm0", want: []error{unix.EBUSY}, text: "already attached"},
		{desc: "invalid owner rolls back", name: "vm0", o: tap.Options{Persist: true, Owner: ptr[uint32](math.MaxUint32)}, want: []error{unix.EINVAL}, text: "TUNSETOWNER"},
		{desc: "invalid group rolls back", name: "vm0", o: tap.Options{Persist: true, MultiQueue: true, Queues: 3, Group: ptr[uint32](math.MaxUint32)}, want: []error{unix.EINVAL}, text: "TUNSETGROUP"},
		{desc: "invalid owner on existing TAP", setup: persistMQ, name: "vm0", o: tap.Options{MultiQueue: true, Owner: ptr[uint32](math.MaxUint32)}, want: []error{unix.EINVAL}},

		{desc: "open missing", open: true, name: "vm0", want: []error{tap.ErrNotPersistent, unix.ENODEV}},
		{desc: "open missing multi-queue", open: true, name: "vm0", o: tap.Options{MultiQueue: true, Queues: 4, VnetHdr: true}, want: []error{tap.ErrNotPersistent, unix.ENODEV}},
		{desc: "open transient TAP of another owner", open: true, setup: holdTransientMQ, name: "vm0", o: tap.Options{MultiQueue: true, Queues: 2}, want: []error{tap.ErrNotPersistent, unix.ENODEV}},
		{desc: "open multi-queue as single-queue", open: true, setup: persistMQ, name: "vm0", want: []error{unix.EINVAL}},
		{desc: "open single-queue as multi-queue", open: true, setup: persistSQ, name: "vm0", o: tap.Options{MultiQueue: true}, want: []error{unix.EINVAL}},
		{desc: "open single-queue TAP in use", open: true, setup: holdSQ, name: "vm0", want: []error{unix.EBUSY}},
		{desc: "open a TUN", open: true, setup: persistTUN, name: "vm0", want: []error{unix.EINVAL}},
		{desc: "open lo", open: true, name: "lo", want: []error{unix.EINVAL}},
		{desc: "open ignores exclusive", open: true, setup: holdSQ, name: "vm0", o: tap.Options{Exclusive: true}, want: []error{unix.EBUSY}, text: "already attached"},
		{
			// 1 queue held + 256 asked: the 256th TUNSETIFF fails, and the
			// 255 queues attached before it must be detached again.
			desc: "too many queues rolls back", open: true,
			setup: func(t *testing.T, ns int) int {
				mustPersist(t, ns, "vm0", tap.Options{MultiQueue: true})
				d, err := tap.Open("vm0", &tap.Options{NetNS: ns, MultiQueue: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { closeQ(d) })
				return ns
			},
			name: "vm0", o: tap.Options{MultiQueue: true, Queues: tap.MaxQueues}, want: []error{unix.E2BIG}, text: "too many queues",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			ns := newNS(t)
			o := tt.o
			o.NetNS = ns
			if tt.setup != nil {
				o.NetNS = tt.setup(t, ns)
			}
			call, f := "Create", tap.Create
			if tt.open {
				call, f = "Open", tap.Open
			}

			links := linkState(t, ns) // also warms up os/exec's poller fds
			fds := testutil.FDCount(t)
			d, err := f(tt.name, &o)
			gotFDs := testutil.FDCount(t)
			if d != nil {
				closeQ(d)
				t.Fatalf("%s(%q, %+v) returned a Device with %d queues, want an error", call, tt.name, o, len(d.Queues()))
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("%s(%q, %+v) = %v, want an error wrapping %v", call, tt.name, o, err, w)
				}
			}
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("%s(%q, %+v) = %q, want it to contain %q", call, tt.name, o, err, tt.text)
			}
			if gotFDs != fds {
				t.Errorf("%s(%q, %+v): %d open fds after, want %d as before (leak)", call, tt.name, o, gotFDs, fds)
			}
			if after := linkState(t, ns); !reflect.DeepEqual(after, links) {
				t.Errorf("%s(%q, %+v): links after = %v, want unchanged %v", call, tt.name, o, after, links)
			}
		})
	}
}

func TestIntegrationOwnerGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc         string
		owner, group *uint32
	}{
		{"owner and group", ptr[uint32](1000), ptr[uint32](1000)},
		{"owner only", ptr[uint32](1000), nil},
		{"group only", nil, ptr[uint32](1000)},
		{"root", ptr[uint32](0), ptr[uint32](0)},
		{"unresolvable ids", ptr[uint32](54321), ptr[uint32](54322)},
		{"unset", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			mustPersist(t, ns, "vm0", tap.Options{MultiQueue: true, Owner: tt.owner, Group: tt.group})
			got := tunData(t, ns, "vm0")
			for _, c := range []struct {
				key    string
				id     *uint32
				lookup func(string) (string, error)
			}{{"user", tt.owner, lookupUser}, {"group", tt.group, lookupGroup}} {
				v, ok := got[c.key]
				switch {
				case c.id == nil && ok:
					t.Errorf("ip -d link show vm0: %s = %v, want unset", c.key, v)
				case c.id != nil && !idMatches(v, *c.id, c.lookup):
					t.Errorf("ip -d link show vm0: %s = %v, want %d", c.key, v, *c.id)
				}
			}
		})
	}

	t.Run("ignored by Open", func(t *testing.T) {
		t.Parallel()
		ns := newNS(t)
		mustPersist(t, ns, "vm0", tap.Options{})
		d, err := tap.Open("vm0", &tap.Options{NetNS: ns, Owner: ptr[uint32](1000), Group: ptr[uint32](1000), Persist: false})
		if err != nil {
			t.Fatalf("Open(vm0) = %v, want nil", err)
		}
		closeQ(d)
		checkData(t, ns, "vm0", map[string]any{"user": nil, "group": nil, "persist": true})
	})
}

// The helper process: the test binary re-executed by runHelper inside a test
// namespace. It runs as root in a private mount namespace, mounts a tmpfs on
// /dev/net with a world-accessible /dev/net/tun (the host's node is mode
// 0600, which would stop an unprivileged user at open(2) with EACCES before
// the TAP's owner is ever checked), drops to uid/gid 65534 on every thread,
// then calls tap.Open and prints the outcome.
const (
	helperEnv      = "TAPBRIDGE_TAP_HELPER"
	helperNameEnv  = "TAPBRIDGE_TAP_HELPER_NAME"
	helperMQEnv    = "TAPBRIDGE_TAP_HELPER_MQ"
	helperUID      = 65534
	helperGID      = 65534
	helperSkipLine = "skip: "
)

func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	os.Exit(helperMain())
}

func helperMain() int {
	fail := func(format string, args ...any) int {
		fmt.Printf(helperSkipLine+format+"\n", args...)
		return 0
	}
	if err := unix.Mount("tmpfs", "/dev/net", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755"); err != nil {
		return fail("mount tmpfs on /dev/net: %v", err)
	}
	if err := unix.Mknod("/dev/net/tun", unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
		return fail("mknod /dev/net/tun: %v", err)
	}
	if err := os.Chmod("/dev/net/tun", 0o666); err != nil {
		return fail("chmod /dev/net/tun: %v", err)
	}
	// The syscall package applies these to every thread of the process.
	if err := syscall.Setgroups(nil); err != nil {
		return fail("setgroups: %v", err)
	}
	if err := syscall.Setresgid(helperGID, helperGID, helperGID); err != nil {
		return fail("setresgid: %v", err)
	}
	if err := syscall.Setresuid(helperUID, helperUID, helperUID); err != nil {
		return fail("setresuid: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return fail("stat own namespace: %v", err)
	}
	fmt.Printf("netns: %d\n", st.Ino)
	fmt.Printf("uid: %d %d\n", os.Getuid(), os.Geteuid())

	d, err := tap.Open(os.Getenv(helperNameEnv), &tap.Options{MultiQueue: os.Getenv(helperMQEnv) == "1"})
	if err != nil {
		var errno unix.Errno
		if !errors.As(err, &errno) {
			errno = 0
		}
		fmt.Printf("errno: %d\nerror: %v\n", int(errno), err)
		return 0
	}
	fmt.Printf("errno: 0\nqueues: %d\n", len(d.Queues()))
	if err := d.Close(); err != nil {
		fmt.Printf("close: %v\n", err)
	}
	return 0
}

// runHelper runs the helper process inside ns and returns its output as
// key: value pairs. The fork happens on a thread inside ns, so the child
// starts there; it never needs to open the namespace itself.
func runHelper(t *testing.T, ns int, name string, mq bool) map[string]string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("os.Executable() = %v", err)
	}
	out, err := os.CreateTemp(t.TempDir(), "helper")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	mqv := "0"
	if mq {
		mqv = "1"
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperNameEnv+"="+name, helperMQEnv+"="+mqv)
	// An *os.File, not a buffer: os/exec then starts no copying goroutine
	// from the thread that is inside ns.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / MS_PRIVATE|MS_REC
	err = spawning(func() error {
		if err := netns.Do(ns, cmd.Start); err != nil {
			return fmt.Errorf("start in the test namespace: %w", err)
		}
		return cmd.Wait()
	})
	if err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("helper process: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	res := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, helperSkipLine); ok {
			t.Skipf("skipping: helper process cannot become uid %d: %s", helperUID, rest)
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			if _, dup := res[k]; !dup {
				res[k] = v
			}
		}
	}
	if res["netns"] != strconv.FormatUint(nsInode(t, ns), 10) {
		t.Fatalf("helper process ran in namespace %s, want the test namespace %d; output:\n%s", res["netns"], nsInode(t, ns), b)
	}
	if want := fmt.Sprintf("%d %d", helperUID, helperUID); res["uid"] != want {
		t.Fatalf("helper process uid, euid = %s, want %s; output:\n%s", res["uid"], want, b)
	}
	return res
}

// TestIntegrationAttachPermission has an unprivileged process attach to
// TAPs with various owners: tun_not_capable refuses with EPERM when the
// owner or group is set and does not match, and lets anyone in when both
// are unset.
func TestIntegrationAttachPermission(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc         string
		mq           bool
		owner, group *uint32
		want         unix.Errno
	}{
		{desc: "owner 1000", owner: ptr[uint32](1000), want: unix.EPERM},
		{desc: "owner and group 1000 multi-queue", mq: true, owner: ptr[uint32](1000), group: ptr[uint32](1000), want: unix.EPERM},
		{desc: "group 1000", group: ptr[uint32](1000), want: unix.EPERM},
		{desc: "owner matches, group does not", owner: ptr[uint32](helperUID), group: ptr[uint32](1000), want: unix.EPERM},
		{desc: "owner matches", owner: ptr[uint32](helperUID), want: 0},
		{desc: "group matches", mq: true, group: ptr[uint32](helperGID), want: 0},
		{desc: "unset: anyone may attach", want: 0},
		{desc: "unset multi-queue: anyone may attach", mq: true, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			mustPersist(t, ns, "vm0", tap.Options{MultiQueue: tt.mq, Owner: tt.owner, Group: tt.group})
			before := linkState(t, ns)
			res := runHelper(t, ns, "vm0", tt.mq)
			if res["errno"] != strconv.Itoa(int(tt.want)) {
				t.Errorf("Open(vm0) as uid %d on a TAP with owner %v group %v: errno %s (%s), want %d (%v)",
					helperUID, deref(tt.owner), deref(tt.group), res["errno"], res["error"], int(tt.want), tt.want)
			}
			if tt.want == unix.EPERM && !strings.Contains(res["error"], "owner or group") {
				t.Errorf("Open(vm0) as uid %d = %q, want the error to name the owner or group", helperUID, res["error"])
			}
			if tt.want == 0 && res["queues"] != "1" {
				t.Errorf("Open(vm0) as uid %d: %s queues, want 1", helperUID, res["queues"])
			}
			if after := linkState(t, ns); !reflect.DeepEqual(after, before) {
				t.Errorf("links after the helper exited = %v, want unchanged %v", after, before)
			}
		})
	}
}

func deref(p *uint32) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func TestIntegrationRelease(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	d := mustCreate(t, ns, "vm0", tap.Options{MultiQueue: true, Queues: 2, Persist: true})

	q := d.Queues()
	q[0] = nil
	if d.Queues()[0] == nil {
		t.Fatalf("Device.Queues() returned the Device's own slice: changing it changed the Device")
	}

	files := d.Release()
	if len(files) != 2 {
		t.Fatalf("Device.Release() = %d files, want 2", len(files))
	}
	if got := d.Queues(); len(got) != 0 {
		t.Errorf("Device.Queues() after Release = %d files, want 0", len(got))
	}
	for i := range 2 {
		if err := closeQ(d); err != nil {
			t.Errorf("Device.Close() #%d after Release = %v, want nil", i+1, err)
		}
	}
	checkNumQueues(t, ns, "vm0", 2) // still attached: the caller holds them

	for i, f := range files {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil || ifr.Name() != "vm0" {
			t.Errorf("released queue %d: TUNGETIFF = %q, %v, want vm0, nil", i, ifr.Name(), err)
		}
		if err := closeQ(f); err != nil {
			t.Errorf("caller's Close() of released queue %d = %v, want nil", i, err)
		}
	}
	checkNumQueues(t, ns, "vm0", 0)
}

func TestIntegrationCloseIdempotent(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	d := mustCreate(t, ns, "vm0", tap.Options{MultiQueue: true, Queues: 3})
	files := d.Queues()
	for i := range 3 {
		if err := closeQ(d); err != nil {
			t.Fatalf("Device.Close() #%d = %v, want nil", i+1, err)
		}
	}
	for i, f := range files {
		if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("queue %d after Close: Stat() = %v, want %v", i, err, os.ErrClosed)
		}
	}
	if l := ipLinkByName(t, ns, "vm0"); l != nil {
		t.Errorf("ip link show vm0 after Close = %+v, want no device", l)
	}
}

func TestIntegrationNamespace(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	other := testutil.NetNS(t)
	hostBefore, err := net.Interfaces()
	if err != nil {
		t.Fatalf("net.Interfaces() = %v", err)
	}
	d := mustCreate(t, ns, "tbnsprobe0", tap.Options{})

	if ipLinkByName(t, ns, "tbnsprobe0") == nil {
		t.Errorf("ip link show tbnsprobe0 in the target namespace: not found, want the TAP")
	}
	if l := ipLinkByName(t, other, "tbnsprobe0"); l != nil {
		t.Errorf("ip link show tbnsprobe0 in another namespace = %+v, want not found", l)
	}
	hostAfter, err := net.Interfaces()
	if err != nil {
		t.Fatalf("net.Interfaces() = %v", err)
	}
	if slices.ContainsFunc(hostAfter, func(i net.Interface) bool { return i.Name == "tbnsprobe0" }) &&
		!slices.ContainsFunc(hostBefore, func(i net.Interface) bool { return i.Name == "tbnsprobe0" }) {
		t.Errorf("the TAP appeared in the test process's own namespace, want it only in the target")
	}

	// The kernel's own answer: TUNGETDEVNETNS returns the device's namespace.
	fd, err := unix.IoctlRetInt(int(d.Queues()[0].Fd()), unix.TUNGETDEVNETNS)
	if err != nil {
		t.Fatalf("ioctl TUNGETDEVNETNS = %v", err)
	}
	defer unix.Close(fd)
	if got, want := nsInode(t, fd), nsInode(t, ns); got != want {
		t.Errorf("TUNGETDEVNETNS namespace inode = %d, want %d (the target)", got, want)
	}
}

// TestIntegrationQueueFiles checks that the queue files of a multi-queue
// TAP are distinct, real /dev/net/tun fds attached to the device.
func TestIntegrationQueueFiles(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	d := mustCreate(t, ns, "vm0", tap.Options{MultiQueue: true, Queues: 2, VnetHdr: true})
	q := d.Queues()
	if len(q) != 2 {
		t.Fatalf("Create(vm0, 2 queues): %d queue files, want 2", len(q))
	}
	if q[0].Fd() == q[1].Fd() {
		t.Errorf("queue fds = %d, %d, want distinct", q[0].Fd(), q[1].Fd())
	}
	for i, f := range q {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatalf("fstat queue %d: %v", i, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(10, 200) {
			t.Errorf("fstat queue %d: mode %#o rdev %d:%d, want a character device 10:200", i, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("queue %d: F_GETFD = %#x, %v, want FD_CLOEXEC", i, flags, err)
		}
		ifr, err := unix.NewIfreq("")
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil {
			t.Fatalf("queue %d: TUNGETIFF = %v", i, err)
		}
		want := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE)
		if ifr.Name() != "vm0" || ifr.Uint16() != want {
			t.Errorf("queue %d: TUNGETIFF = %q %#x, want %q %#x", i, ifr.Name(), ifr.Uint16(), "vm0", want)
		}
	}
	checkNumQueues(t, ns, "vm0", 2)
}

// TestIntegrationValidateNameKernel holds ValidateName to its promise,
// "the kernel would accept name as is": a raw TUNSETIFF with each name
// either creates a device of exactly that name (ValidateName must accept)
// or fails or renames it (ValidateName must refuse).
func TestIntegrationValidateNameKernel(t *testing.T) {
	t.Parallel()
	names := []string{
		"tap0", "abcdefghijklmno", ".tap", "vm-1.net_0", "tap-é", "ééééééé0", "t\u0085", "tap-ü",
		"", "a/b", "eth0:1", "tap%d", "tap 0", "tap\t0", "tap0\n", "\vtap", "ta\fp", "tap\r",
		".", "..", "ta\x00p", "tap-à", "tap\u00a0", "\xa0", "x\xa0y",
	}
	ns := newNS(t)
	for _, name := range names {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			kernelName, kerr := rawTUNSETIFF(t, ns, name)
			kernelOK := kerr == nil && kernelName == name
			verr := tap.ValidateName(name)
			if (verr == nil) != kernelOK {
				t.Errorf("ValidateName(%q) = %v, want %s: the kernel's TUNSETIFF gave name %q, error %v",
					name, verr, map[bool]string{true: "nil", false: "an error"}[kernelOK], kernelName, kerr)
			}
		})
	}
}

// rawTUNSETIFF makes a transient TAP named name in ns without any checks of
// ours, and returns the name the kernel gave it; closing the fd destroys it.
func rawTUNSETIFF(t *testing.T, ns int, name string) (string, error) {
	t.Helper()
	var fd int
	err := netns.Do(ns, func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("open /dev/net/tun in the test namespace: %v", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatalf("unix.NewIfreq(%q) = %v", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return "", err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		t.Fatalf("TUNGETIFF: %v", err)
	}
	return ifr.Name(), nil
}

// TestIntegrationOpenFiles checks files opened beforehand in a namespace:
// the TAP made with them lands there whatever NetNS says, and every error
// path closes them.
func TestIntegrationOpenFiles(t *testing.T) {
	ns := newNS(t)
	fds := testutil.FDCount(t)
	files, err := tap.OpenFiles(ns, 3)
	if err != nil {
		t.Fatalf("OpenFiles(ns, 3) = %v", err)
	}
	if got := testutil.FDCount(t) - fds; got != 3 {
		t.Fatalf("OpenFiles(ns, 3) opened %d fds, want 3", got)
	}
	d, err := tap.Create("tbfiles0", &tap.Options{MultiQueue: true, Queues: 2, Files: files[:2]})
	if err != nil {
		t.Fatalf("Create(tbfiles0, Files) = %v", err)
	}
	if ipLinkByName(t, ns, "tbfiles0") == nil {
		t.Errorf("ip link show tbfiles0 in the files' namespace: not found, want the TAP")
	}
	if got := d.Queues(); len(got) != 2 || got[0] != files[0] || got[1] != files[1] {
		t.Errorf("Create(Files).Queues() = %v, want the files given", got)
	}
	d.Close() // not persistent: the TAP goes

	// Errors close the files given: a wrong count, a bad name.
	if _, err := tap.Create("tbfiles1", &tap.Options{Queues: 2, MultiQueue: true, Files: files[2:]}); !errors.Is(err, tap.ErrInvalidOptions) {
		t.Errorf("Create with 1 file for 2 queues = %v, want ErrInvalidOptions", err)
	}
	more, err := tap.OpenFiles(ns, 1)
	if err != nil {
		t.Fatalf("OpenFiles(ns, 1) = %v", err)
	}
	if _, err := tap.Create("bad name", &tap.Options{Files: more}); !errors.Is(err, tap.ErrInvalidName) {
		t.Errorf("Create(bad name, Files) = %v, want ErrInvalidName", err)
	}
	if got := testutil.FDCount(t); got != fds {
		t.Errorf("after the failed Creates: %d open fds, want %d as before", got, fds)
	}
	for _, n := range []int{0, -1, tap.MaxQueues + 1} {
		if _, err := tap.OpenFiles(ns, n); !errors.Is(err, tap.ErrInvalidOptions) {
			t.Errorf("OpenFiles(ns, %d) = %v, want ErrInvalidOptions", n, err)
		}
	}
}
