package bridge

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/types"
)

// Outside interference, a bridge that goes away and comes back, and
// hostile input.
//
// Each interference on its own is covered elsewhere: Verify's exact line for
// a detached port, a rewritten MAC, a TAP set down and a TAP deleted by
// someone else in TestIntegrationVerify (inspect_integration_linux_test.go);
// Config repairing each of the first three (and learning, the FDB entry) in
// TestIntegrationConfigRepairs; GC leaving foreign bt* devices alone, tagged
// like ours or not, in TestIntegrationGCLeavesForeignDevices. Here they
// happen together, as NetworkManager or udev would do them to one VM, with a
// foreign device taking the name of a TAP someone deleted.

func TestIntegrationInterference(t *testing.T) {
	f := newFixture(t, &config.Config{GCGrace: -1})
	ctx := t.Context()
	const vm = "vm-nm"
	recs := f.config(t, vm, 5, &types.VMConfig{CPU: 2})
	keep := f.config(t, "vm-other", 1, nil)
	before := f.links(t)

	// A port released from the bridge (NetworkManager deactivating it).
	f.ip(t, "link", "set", recs[0].Tap, "nomaster")
	// Its MAC rewritten (udev MACAddressPolicy, a cloned MAC).
	f.ip(t, "link", "set", recs[1].Tap, "address", "02:00:00:00:00:09")
	// Set down.
	f.ip(t, "link", "set", recs[2].Tap, "down")
	// Deleted by someone else.
	f.ip(t, "link", "del", recs[3].Tap)
	// Deleted, and its name taken by a foreign TAP that someone put on the
	// bridge.
	f.ip(t, "link", "del", recs[4].Tap)
	f.addForeignTAP(t, recs[4].Tap)
	f.ip(t, "link", "set", recs[4].Tap, "master", testBridge, "up")
	// A foreign bt* device named like one of the VM's NICs could be, and a
	// foreign veth with a bt* name on the bridge.
	f.addForeignTAP(t, owner.Name(vm, 9, 0))
	f.addVeth(t, "btvm-nm-x", "nmpeer0", true)
	foreign := []string{recs[4].Tap, owner.Name(vm, 9, 0), "btvm-nm-x", "nmpeer0"}
	foreignBefore := map[string]string{}
	for _, name := range foreign {
		foreignBefore[name] = foreignState(f.link(t, name))
	}
	checkForeign := func(when string) {
		t.Helper()
		links := f.links(t)
		for _, name := range foreign {
			if l := links[name]; l == nil || foreignState(l) != foreignBefore[name] {
				t.Errorf("foreign device %s %s = %+v, want it unchanged", name, when, l)
			}
		}
	}

	err := f.b.Verify(ctx, vm)
	errIs(t, "Verify after the interference", err, ErrMismatch)
	want := []string{
		"verify vm " + vm + ": " + ErrMismatch.Error() + ":",
		fmt.Sprintf("nic 0 (%s): not a port of br0 (master: none)", recs[0].Tap),
		fmt.Sprintf("nic 1 (%s): MAC 02:00:00:00:00:09, want %s", recs[1].Tap, hostMACOf(t, recs[1].Mac)),
		fmt.Sprintf("nic 2 (%s): down", recs[2].Tap),
		"nic 3: TAP missing (the VM has 5 NICs)",
		"nic 4: TAP missing (the VM has 5 NICs)",
	}
	if err != nil {
		if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
			t.Errorf("Verify after the interference =\n%s\nwant\n%s", err, strings.Join(want, "\n"))
		}
	}
	if err := f.b.Verify(ctx, "vm-other"); err != nil {
		t.Errorf("Verify(vm-other) = %v, want nil: nothing of it was touched", err)
	}
	// GC with the VM live touches nothing.
	v := newGCLive(vm, "vm-other")
	gcCheckReport(t, gcRun(t, gcOrch(f.b, v), f.b.inst), gcNames(recs[:3], keep), nil)
	checkForeign("after a GC")

	// Config with the VM's records (as a control plane keeps them) repairs
	// what it owns: the same TAPs for NICs 0-2, NIC 3 made again under its
	// name and MAC, NIC 4 under its next name candidate (the foreign TAP
	// keeps the first) with its MAC.
	got := f.config(t, vm, 5, &types.VMConfig{CPU: 2}, recs...)
	for k := range got {
		w := *recs[k]
		if k == 4 {
			w.Tap = owner.Name(vm, 4, 1)
		}
		if *got[k] != w {
			t.Errorf("repairing Config nic %d = %+v, want %+v", k, *got[k], w)
		}
	}
	after := f.links(t)
	for k := range 3 {
		if a, b := after[recs[k].Tap], before[recs[k].Tap]; a == nil || a.Index != b.Index {
			t.Errorf("TAP %s of nic %d replaced by the repair, want it repaired in place", recs[k].Tap, k)
		}
	}
	f.checkNICs(t, vm, got, true)
	if err := f.b.Verify(ctx, vm); err != nil {
		t.Errorf("Verify after the repair = %v, want nil", err)
	}
	checkForeign("after the repair")

	// GC with the VM gone reclaims its TAPs, and only those.
	v.remove(vm)
	gcCheckReport(t, gcRun(t, gcOrch(f.b, v), f.b.inst), gcNames(got, keep), gcNames(got))
	checkForeign("after a GC reclaimed the VM")
	f.checkLinks(t, append([]string{"lo", testBridge, keep[0].Tap}, foreign...))
}

// TestIntegrationBridgeGoneAndBack deletes the bridge under running
// Bridges, replaces it with a device that is not a bridge, then makes the
// bridge again (another ifindex).
func TestIntegrationBridgeGoneAndBack(t *testing.T) {
	f := newFixture(t, &config.Config{GCGrace: -1, SyncDelete: true})
	ctx := t.Context()
	rb := f.newBridge(t, &config.Config{RootDir: f.dir, GCGrace: -1, ReapInterval: time.Hour, ReapBatch: 1 << 20})
	rb.StartReaper()
	old := f.config(t, "vm-old", 2, &types.VMConfig{CPU: 2})
	del := f.config(t, "vm-del", 1, nil)
	queued := f.config(t, "vm-queued", 1, nil)
	crashed := f.config(t, "vm-crashed", 1, nil)
	oldIndex := f.link(t, testBridge).Index

	f.ip(t, "link", "del", testBridge)
	// The kernel released the ports (br_dev_delete): the TAPs stay,
	// detached.
	f.checkLinks(t, append([]string{"lo"}, gcNames(old, del, queued, crashed)...))
	fds := testutil.FDCountBusy(t)
	links := f.linkNames(t)

	gone := func(what string) {
		t.Helper()
		_, err := f.b.Config(ctx, "vm-new", 2, nil)
		errIs(t, "Config(vm-new) "+what, err, ErrBridgeNotFound)
		h, err := f.b.ConfigHandoff(ctx, "vm-new", 1, nil)
		if h != nil {
			t.Errorf("ConfigHandoff(vm-new) %s = %v, want nothing", what, h)
		}
		errIs(t, "ConfigHandoff(vm-new) "+what, err, ErrBridgeNotFound)
		_, err = f.b.Config(ctx, "vm-old", 2, &types.VMConfig{CPU: 2})
		errIs(t, "Config(vm-old) "+what, err, ErrBridgeNotFound)
		errIs(t, "Verify(vm-old) "+what, f.b.Verify(ctx, "vm-old"), ErrBridgeNotFound)
		if err := f.b.Verify(ctx, "vm-old"); err != nil && !strings.Contains(err.Error(), "bridge "+testBridge) {
			t.Errorf("Verify(vm-old) %s = %q, want it to name the bridge", what, err)
		}
		// Inspect and List read the TAPs' tags, not the bridge: they work,
		// and show the TAPs without a master.
		n, err := f.b.Inspect(ctx, "vm-old")
		if err != nil || len(n.Links) != 2 || n.Links[0].Master != "" || n.Links[1].Master != "" {
			t.Errorf("Inspect(vm-old) %s = %+v, %v; want its 2 NICs, no master", what, n, err)
		}
		l, err := f.b.List(ctx)
		if err != nil || len(l) != 4 {
			t.Errorf("List() %s = %d networks, %v; want 4", what, len(l), err)
		}
		f.checkLinks(t, links)
		checkFDs(t, fds, "calls "+what)
	}
	gone("without the bridge")

	// Delete (synchronous and through the reaper) and GC need no bridge.
	if got, err := f.b.Delete(ctx, []string{"vm-del"}); err != nil || !slices.Equal(got, []string{"vm-del"}) {
		t.Errorf("Delete(vm-del) without the bridge = %q, %v; want [vm-del], nil", got, err)
	}
	f.checkNoTAPs(t, "vm-del")
	if got, err := rb.Delete(ctx, []string{"vm-queued"}); err != nil || !slices.Equal(got, []string{"vm-queued"}) {
		t.Errorf("reaper Delete(vm-queued) without the bridge = %q, %v; want [vm-queued], nil", got, err)
	}
	if err := rb.Flush(ctx); err != nil {
		t.Errorf("Flush() without the bridge = %v, want nil", err)
	}
	f.checkNoTAPs(t, "vm-queued")
	v := newGCLive("vm-old")
	gcCheckReport(t, gcRun(t, gcOrch(f.b, v), f.b.inst), gcNames(old, crashed), gcNames(crashed))
	f.checkLinks(t, append([]string{"lo"}, gcNames(old)...))
	links = f.linkNames(t)

	// Something else takes the name: not a bridge.
	f.addVeth(t, testBridge, "brpeer", false)
	links = f.linkNames(t)
	_, err := f.b.Config(ctx, "vm-new", 1, nil)
	errIs(t, "Config(vm-new) with a veth named "+testBridge, err, ErrNotBridge)
	errIs(t, "Verify(vm-old) with a veth named "+testBridge, f.b.Verify(ctx, "vm-old"), ErrNotBridge)
	f.checkLinks(t, links)
	f.ip(t, "link", "del", testBridge)

	// The bridge is back: another device, another ifindex.
	testutil.AddBridge(t, f.ns, testBridge)
	br := f.link(t, testBridge)
	if br.Index == oldIndex {
		t.Fatalf("re-made bridge has ifindex %d again; the test needs a new one", br.Index)
	}
	mac := br.Address
	err = f.b.Verify(ctx, "vm-old")
	errIs(t, "Verify(vm-old) on the re-made bridge", err, ErrMismatch)
	for k, r := range old {
		if line := fmt.Sprintf("nic %d (%s): not a port of br0 (master: none)", k, r.Tap); err != nil && !strings.Contains(err.Error(), line) {
			t.Errorf("Verify(vm-old) on the re-made bridge = %q, want the line %q", err, line)
		}
	}
	// Config repairs the old VM (re-enslaves its TAPs) and makes new ones.
	if got := f.config(t, "vm-old", 2, &types.VMConfig{CPU: 2}); *got[0] != *old[0] || *got[1] != *old[1] {
		t.Errorf("Config(vm-old) on the re-made bridge = %v, want %v", got, old)
	}
	f.checkNICs(t, "vm-old", old, true)
	newRecs := f.config(t, "vm-new", 2, nil)
	f.checkNICs(t, "vm-new", newRecs, false)
	for _, id := range []string{"vm-old", "vm-new"} {
		if err := f.b.Verify(ctx, id); err != nil {
			t.Errorf("Verify(%s) on the re-made bridge = %v, want nil", id, err)
		}
	}
	// The re-made bridge's MAC is pinned as New pinned the old one: the
	// TAPs' 0xfe host MACs never become the gateway MAC.
	for i, step := range []func(){
		func() {},
		func() { f.b.Delete(ctx, []string{"vm-new"}) },
		func() { f.config(t, "vm-new2", 1, nil) },
		func() { f.b.Delete(ctx, []string{"vm-old", "vm-new2"}) },
	} {
		step()
		if got := f.link(t, testBridge).Address; got != mac {
			t.Errorf("re-made bridge's MAC after step %d = %s, want %s as it was made", i, got, mac)
		}
	}
	f.checkLinks(t, []string{"lo", testBridge})
}

func TestIntegrationHostileInput(t *testing.T) {
	t.Run("bridge only in another namespace", func(t *testing.T) {
		f := newFixture(t, nil)
		ns2 := testutil.NetNS(t)
		testutil.AddBridge(t, ns2, "brother0")
		before, before2 := f.links(t), testutil.IPLinks(t, ns2)
		fds := testutil.FDCountBusy(t)
		conf := &config.Config{RootDir: t.TempDir(), NetnsPath: testutil.NSPath(f.ns)}
		for name, open := range map[string]func(*config.Config, string) (*Bridge, error){"New": New, "Open": Open} {
			b, err := open(conf, "brother0")
			if b != nil {
				b.Close()
			}
			errIs(t, name+"(brother0) for a namespace without it", err, ErrBridgeNotFound)
		}
		checkFDs(t, fds, "New of a bridge in another namespace")
		if after := f.links(t); !maps.EqualFunc(after, before, sameLink) {
			t.Errorf("links changed:\n%s", linksDiff(before, after))
		}
		if after := testutil.IPLinks(t, ns2); !maps.EqualFunc(after, before2, sameLink) {
			t.Errorf("the other namespace's links changed: %v, want %v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before2)))
		}
		// And a record naming that bridge is refused by a Bridge of ours.
		_, err := f.b.Config(t.Context(), "vm-1", 1, nil, &types.NetworkConfig{Mac: "02:00:00:00:00:01", BridgeDev: "brother0"})
		errIs(t, "Config with a record for brother0", err, ErrInvalidArgument)
		f.checkLinks(t, slices.Collect(maps.Keys(before)))
	})

	t.Run("nil config", func(t *testing.T) {
		fds := testutil.FDCountBusy(t)
		for name, open := range map[string]func(*config.Config, string) (*Bridge, error){"New": New, "Open": Open} {
			b, err := open(nil, testBridge)
			if b != nil {
				b.Close()
				t.Errorf("%s(nil, %q) = a Bridge, want an error", name, testBridge)
			}
			errIs(t, name+"(nil)", err, ErrInvalidArgument)
		}
		checkFDs(t, fds, "New(nil)")
	})

	t.Run("hostile VM IDs", func(t *testing.T) {
		f := newFixture(t, &config.Config{ReapInterval: time.Hour, ReapBatch: 1 << 20})
		ctx := t.Context()
		f.config(t, "vm-keep", 1, nil)
		rb := f.newBridge(t, &config.Config{RootDir: f.dir, ReapInterval: time.Hour, ReapBatch: 1 << 20})
		rb.StartReaper()
		before := f.links(t)
		fds := testutil.FDCountBusy(t)
		for _, id := range []string{
			"", strings.Repeat("a", 200), strings.Repeat("a", owner.MaxVMIDLen+1), "vm-é", "vm/1", "vm%d", "vm:1",
			"vm 1", "vm\n1", "vm\t1", "..", ".", "vm\x001", "vm\xa0", "\xff\xfe",
		} {
			call := func(name string) string { return fmt.Sprintf("%s(%q)", name, id) }
			errIs(t, call("Verify"), f.b.Verify(ctx, id), ErrInvalidArgument)
			n, err := f.b.Inspect(ctx, id)
			if n != nil {
				t.Errorf("%s = %+v, want nil", call("Inspect"), n)
			}
			errIs(t, call("Inspect"), err, ErrInvalidArgument)
			for name, b := range map[string]*Bridge{"Delete": f.b, "reaper Delete": rb} {
				got, err := b.Delete(ctx, []string{id})
				if len(got) != 0 {
					t.Errorf("%s = %q, want none", call(name), got)
				}
				errIs(t, call(name), err, ErrInvalidArgument)
			}
			got, err := Cleanup(ctx, &config.Config{RootDir: f.dir, NetnsPath: testutil.NSPath(f.ns)}, []string{id})
			if len(got) != 0 {
				t.Errorf("%s = %q, want none", call("Cleanup"), got)
			}
			errIs(t, call("Cleanup"), err, ErrInvalidArgument)
		}
		if st := rb.Stats(); st.Queued != 0 {
			t.Errorf("reaper Stats() = %+v, want nothing queued", st)
		}
		checkFDs(t, fds, "calls with hostile IDs")
		if after := f.links(t); !maps.EqualFunc(after, before, sameLink) {
			t.Errorf("links changed:\n%s", linksDiff(before, after))
		}
		if err := f.b.Verify(ctx, "vm-keep"); err != nil {
			t.Errorf("Verify(vm-keep) = %v, want nil", err)
		}
	})

	t.Run("reaper Delete with duplicate and invalid IDs mixed", func(t *testing.T) {
		// TestIntegrationDelete does this for a synchronous Delete.
		f := newFixture(t, &config.Config{ReapInterval: time.Hour, ReapBatch: 1 << 20})
		ctx := t.Context()
		f.b.StartReaper()
		f.config(t, "vm-a", 2, nil)
		f.config(t, "vm-b", 1, nil)
		keep := f.config(t, "vm-keep", 1, nil)
		fds := testutil.FDCountBusy(t)
		ids := []string{"vm-a", "", "vm-a", "vm/x", "vm-b", "..", "vm-b", strings.Repeat("x", 200), "vm-never", "vm-a"}
		got, err := f.b.Delete(ctx, ids)
		if want := []string{"vm-a", "vm-b", "vm-never"}; !slices.Equal(got, want) {
			t.Errorf("Delete(%q) = %q, want %q", ids, got, want)
		}
		errIs(t, "Delete with invalid IDs", err, ErrInvalidArgument, owner.ErrInvalidVMID)
		for _, bad := range []string{`""`, `"vm/x"`, `".."`} {
			if err != nil && !strings.Contains(err.Error(), bad) {
				t.Errorf("Delete error %q does not name the invalid ID %s", err, bad)
			}
		}
		if st := f.b.Stats(); st.Queued != 3 {
			t.Errorf("Stats() = %+v, want 3 VMs queued (each once)", st)
		}
		if err := f.b.Flush(ctx); err != nil {
			t.Fatalf("Flush() = %v", err)
		}
		if st := f.b.Stats(); st.Reaped != 3 || st.Failed != 0 {
			t.Errorf("Stats() after Flush = %+v, want 3 reaped, none failed", st)
		}
		f.checkLinks(t, append([]string{"lo", testBridge}, keep[0].Tap))
		checkFDs(t, fds, "reaper Delete")
		if err := f.b.Verify(ctx, "vm-a"); !errors.Is(err, network.ErrNotFound) {
			t.Errorf("Verify(vm-a) after its deletion = %v, want ErrNotFound", err)
		}
	})
}

// sameLink reports whether two iproute2 views of a link are the same device
// in the same state, timers aside.
// linksDiff names the links that differ between two snapshots, with both
// states.
func linksDiff(before, after map[string]*testutil.IPLink) string {
	var b strings.Builder
	names := slices.AppendSeq(slices.Collect(maps.Keys(before)), maps.Keys(after))
	slices.Sort(names)
	for _, k := range slices.Compact(names) {
		x, y := before[k], after[k]
		switch {
		case x == nil:
			fmt.Fprintf(&b, "%s: appeared: %s\n", k, foreignState(y))
		case y == nil:
			fmt.Fprintf(&b, "%s: vanished: %s\n", k, foreignState(x))
		case !sameLink(x, y):
			fmt.Fprintf(&b, "%s:\n  before %s\n  after  %s\n", k, foreignState(x), foreignState(y))
		}
	}
	return b.String()
}

func sameLink(a, b *testutil.IPLink) bool {
	return a.Index == b.Index && foreignState(a) == foreignState(b)
}
