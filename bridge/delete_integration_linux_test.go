package bridge

import (
	"errors"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/types"
	"golang.org/x/sys/unix"
)

func TestIntegrationDelete(t *testing.T) {
	// The synchronous Delete: the TAPs are gone when it returns.
	f := newFixture(t, &config.Config{SyncDelete: true})
	ctx := t.Context()
	// Another instance on the same bridge with a VM of the same ID, and a
	// foreign device named like one of our TAPs could be.
	other := f.newBridge(t, nil)
	foreign := owner.Name("vm-del-a", 7, 0)
	f.addForeignTAP(t, foreign)
	f.ip(t, "link", "set", foreign, "master", testBridge)
	otherRecs := mustConfig(t, other, "vm-del-a", 2, nil)

	a := f.config(t, "vm-del-a", 4, &types.VMConfig{CPU: 2})
	f.config(t, "vm-del-b", 1, nil)
	c := f.config(t, "vm-del-c", 2, nil)
	// A gap in vm-del-a's NIC indices: NIC 1 was deleted by someone else.
	f.ip(t, "link", "del", a[1].Tap)
	// vm-del-c's NIC 0 was renamed: Delete finds it by its alternative
	// name, not by the name Config gave it.
	f.ip(t, "link", "set", c[0].Tap, "down")
	f.ip(t, "link", "set", c[0].Tap, "name", "renamed0")

	ids := []string{"vm-del-a", "vm-del-a", "vm-never", "", "vm/x", "vm-del-b", "vm-del-c", "vm-del-b"}
	got, err := f.b.Delete(ctx, ids)
	want := []string{"vm-del-a", "vm-never", "vm-del-b", "vm-del-c"}
	if !slices.Equal(got, want) {
		t.Errorf("Delete(%q) = %q, want %q", ids, got, want)
	}
	errIs(t, "Delete with invalid IDs", err, ErrInvalidArgument, owner.ErrInvalidVMID)
	if err != nil && !strings.Contains(err.Error(), `"vm/x"`) {
		t.Errorf("Delete error %q does not name the invalid ID vm/x", err)
	}
	for _, id := range []string{"vm-del-a", "vm-del-b", "vm-del-c"} {
		f.checkNoTAPs(t, id)
	}
	if _, ok := f.links(t)["renamed0"]; ok {
		t.Errorf("renamed TAP renamed0 of vm-del-c survived Delete")
	}
	// Only our TAPs went.
	if l := f.links(t)[foreign]; l == nil || l.Master != testBridge {
		t.Errorf("foreign device %s = %+v, want it untouched on %s", foreign, l, testBridge)
	}
	if err := other.Verify(ctx, "vm-del-a"); err != nil {
		t.Errorf("other instance's Verify(vm-del-a) = %v, want nil", err)
	}
	if n := len(f.vmTAPs(t, other.inst, "vm-del-a")); n != len(otherRecs) {
		t.Errorf("other instance's vm-del-a has %d TAPs, want %d", n, len(otherRecs))
	}
	if fdb := f.fdb(t); len(fdb) != 2*len(otherRecs)+1 {
		t.Errorf("FDB after Delete = %+v, want only the other instance's and the foreign port's entries", fdb)
	}

	// Idempotent.
	got, err = f.b.Delete(ctx, want)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Delete(%q) again = %q, %v; want %q, nil", want, got, err, want)
	}
	// Only invalid IDs: nothing deleted, every ID reported.
	got, err = f.b.Delete(ctx, []string{"..", "a b"})
	if len(got) != 0 {
		t.Errorf("Delete of invalid IDs = %q, want none", got)
	}
	errIs(t, "Delete of invalid IDs", err, ErrInvalidArgument)
	if err != nil && (!strings.Contains(err.Error(), `".."`) || !strings.Contains(err.Error(), `"a b"`)) {
		t.Errorf("Delete of invalid IDs = %q, want both IDs named", err)
	}
	// Empty list.
	if got, err := f.b.Delete(ctx, nil); len(got) != 0 || err != nil {
		t.Errorf("Delete(nil) = %q, %v; want none, nil", got, err)
	}

	// A VM made by another process (here another Bridge of the same
	// instance): this Bridge has no record of it and finds it by its
	// alternative names.
	same := f.newBridge(t, &config.Config{RootDir: f.dir})
	d := mustConfig(t, same, "vm-del-d", 3, nil)
	f.ip(t, "link", "del", d[0].Tap) // and a gap at NIC 0
	if got, err := f.b.Delete(ctx, []string{"vm-del-d"}); err != nil || !slices.Equal(got, []string{"vm-del-d"}) {
		t.Errorf("Delete(vm-del-d) = %q, %v; want [vm-del-d], nil", got, err)
	}
	f.checkNoTAPs(t, "vm-del-d")
	f.checkLinks(t, append([]string{"lo", testBridge, foreign}, otherRecs[0].Tap, otherRecs[1].Tap))
}

// TestIntegrationDeleteReaper runs Delete asynchronously. The reaper's
// interval is an hour so that only Flush and StopReaper delete: the test
// then does not depend on timing.
func TestIntegrationDeleteReaper(t *testing.T) {
	f := newFixture(t, &config.Config{ReapInterval: time.Hour, ReapBatch: 1000})
	ctx := t.Context()
	f.b.StartReaper()
	f.b.StartReaper() // a no-op

	a := f.config(t, "vm-r1", 2, nil)
	if got, err := f.b.Delete(ctx, []string{"vm-r1", "bad/id"}); !slices.Equal(got, []string{"vm-r1"}) || !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Delete(vm-r1, bad/id) with the reaper = %q, %v; want [vm-r1] and an invalid-argument error", got, err)
	}
	if st := f.b.Stats(); st.Queued != 1 || st.Cycles != 0 || st.Reaped != 0 {
		t.Errorf("Stats() after one Delete = %+v, want 1 queued, nothing reaped", st)
	}
	if err := f.b.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	f.checkNoTAPs(t, "vm-r1")
	for _, r := range a {
		if e := f.fdbFor(t, r.Mac); len(e) != 0 {
			t.Errorf("FDB entry for %s left after Flush: %+v", r.Mac, e)
		}
	}
	if st := f.b.Stats(); st.Queued != 0 || st.Cycles != 1 || st.Reaped != 1 || st.Failed != 0 || st.LastErr != nil {
		t.Errorf("Stats() after Flush = %+v, want 1 cycle, 1 reaped", st)
	}

	// Config of a VM whose deletion is queued: the deletion happens
	// first, then the VM is made anew, and the reaper leaves it alone.
	r2 := f.config(t, "vm-r2", 2, nil)
	if _, err := f.b.Delete(ctx, []string{"vm-r2"}); err != nil {
		t.Fatalf("Delete(vm-r2) = %v", err)
	}
	again := f.config(t, "vm-r2", 2, nil)
	for i := range again {
		if again[i].Tap != r2[i].Tap {
			t.Errorf("Config(vm-r2) after its queued Delete: nic %d on %s, want the freed name %s", i, again[i].Tap, r2[i].Tap)
		}
	}
	if err := f.b.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	f.checkNICs(t, "vm-r2", again, false)
	if err := f.b.Verify(ctx, "vm-r2"); err != nil {
		t.Errorf("Verify(vm-r2) after Config, Delete, Config, Flush = %v, want nil", err)
	}

	// A VM this Bridge did not make (another Bridge of the instance did):
	// queued by ID, found by alternative name when reaped.
	same := f.newBridge(t, &config.Config{RootDir: f.dir})
	mustConfig(t, same, "vm-r3", 2, nil)
	if _, err := f.b.Delete(ctx, []string{"vm-r3", "vm-r3", "vm-never"}); err != nil {
		t.Fatalf("Delete(vm-r3) = %v", err)
	}
	if st := f.b.Stats(); st.Queued != 2 {
		t.Errorf("Stats().Queued after Delete(vm-r3, vm-r3, vm-never) = %d, want 2", st.Queued)
	}
	if err := f.b.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	f.checkNoTAPs(t, "vm-r3")

	// StopReaper drains the queue.
	f.config(t, "vm-r4", 3, nil)
	if _, err := f.b.Delete(ctx, []string{"vm-r4"}); err != nil {
		t.Fatalf("Delete(vm-r4) = %v", err)
	}
	if err := f.b.StopReaper(ctx); err != nil {
		t.Fatalf("StopReaper() = %v", err)
	}
	f.checkNoTAPs(t, "vm-r4")
	if st := f.b.Stats(); st.Queued != 0 || st.Reaped == 0 || st.Failed != 0 || st.LastErr != nil {
		t.Errorf("Stats() after StopReaper = %+v, want the stopped reaper's counts, nothing queued", st)
	}
	if err := f.b.StopReaper(ctx); err != nil {
		t.Errorf("StopReaper() again = %v, want nil", err)
	}
	if err := f.b.Flush(ctx); err != nil {
		t.Errorf("Flush() without a reaper = %v, want nil", err)
	}
	// Delete is synchronous again.
	f.config(t, "vm-r5", 1, nil)
	if _, err := f.b.Delete(ctx, []string{"vm-r5"}); err != nil {
		t.Fatalf("Delete(vm-r5) = %v", err)
	}
	f.checkNoTAPs(t, "vm-r5")
	f.checkNICs(t, "vm-r2", again, false)
	f.checkLinks(t, []string{"lo", testBridge, again[0].Tap, again[1].Tap})
}

// TestIntegrationDeleteReaperRuns lets the reaper delete on its own, on its
// default interval; the test waits for it with a generous deadline.
func TestIntegrationDeleteReaperRuns(t *testing.T) {
	f := newFixture(t, &config.Config{ReapInterval: time.Millisecond})
	f.b.StartReaper()
	ids := vmIDs("vm-auto", 5)
	for _, id := range ids {
		f.config(t, id, 2, nil)
	}
	if got, err := f.b.Delete(t.Context(), ids); err != nil || !slices.Equal(got, ids) {
		t.Fatalf("Delete(%q) = %q, %v", ids, got, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st := f.b.Stats()
		if st.Reaped == len(ids) {
			break
		}
		if st.Failed > 0 || time.Now().After(deadline) {
			t.Fatalf("Stats() = %+v, want %d VMs reaped", st, len(ids))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range ids {
		f.checkNoTAPs(t, id)
	}
	f.checkLinks(t, []string{"lo", testBridge})
}

// TestIntegrationCleanupTAPs calls CleanupTAPs, which works in the
// caller's namespace, from a thread inside the test's namespace. The
// caller names VMs and no instance: the VMs' TAPs go whichever instance
// made them, and nothing else does.
func TestIntegrationCleanupTAPs(t *testing.T) {
	f := newFixture(t, nil)
	other := f.newBridge(t, nil) // another instance (RootDir)
	ctx := t.Context()
	one := f.config(t, "vm-000001", 3, nil)
	f.config(t, "vm-000002", 2, nil)
	// The same VM ID in the other instance, and a gap in vm-000001's NICs.
	mustConfig(t, other, "vm-000001", 1, nil)
	three := mustConfig(t, other, "vm-000003", 1, nil)
	f.ip(t, "link", "del", one[1].Tap)
	// A foreign TAP named as vm-000001's next NIC would be.
	foreign := owner.Name("vm-000001", 5, 0)
	f.addForeignTAP(t, foreign)

	cleanup := func(ids []string) []string {
		t.Helper()
		var got []string
		if err := netns.Do(f.ns, func() error {
			got = CleanupTAPs(ids)
			return nil
		}); err != nil {
			t.Fatalf("netns.Do(CleanupTAPs) = %v", err)
		}
		return got
	}
	ids := []string{"vm-000001", "vm-none", "bad/id", "vm-000001"}
	if got, want := cleanup(ids), []string{"vm-000001", "vm-none"}; !slices.Equal(got, want) {
		t.Errorf("CleanupTAPs(%q) = %q, want %q", ids, got, want)
	}
	for _, b := range []*Bridge{f.b, other} {
		if got := f.vmTAPs(t, b.inst, "vm-000001"); len(got) != 0 {
			t.Errorf("instance %s: vm-000001 TAPs after CleanupTAPs: %v, want none", b.inst, got)
		}
		errIs(t, "Verify(vm-000001) after CleanupTAPs", b.Verify(ctx, "vm-000001"), network.ErrNotFound)
	}
	if err := f.b.Verify(ctx, "vm-000002"); err != nil {
		t.Errorf("Verify(vm-000002) after CleanupTAPs(vm-000001) = %v, want nil", err)
	}
	if err := other.Verify(ctx, "vm-000003"); err != nil {
		t.Errorf("other instance's Verify(vm-000003) = %v, want nil", err)
	}
	if _, ok := f.links(t)[foreign]; !ok {
		t.Errorf("foreign device %s was deleted by CleanupTAPs", foreign)
	}
	// Idempotent.
	if got := cleanup([]string{"vm-000001"}); !slices.Equal(got, []string{"vm-000001"}) {
		t.Errorf("CleanupTAPs(vm-000001) again = %q, want [vm-000001]", got)
	}
	if got := cleanup(nil); len(got) != 0 {
		t.Errorf("CleanupTAPs(nil) = %q, want none", got)
	}

	// A VM whose TAPs cannot be deleted is not returned: a device that
	// cannot be deleted (lo has no rtnl_link_ops) in the other instance's
	// reserved group makes its group deletion fail, and delete nothing.
	f.ip(t, "link", "set", "lo", "group", strconv.FormatUint(uint64(other.group), 10))
	if got, want := cleanup([]string{"vm-000002", "vm-000003"}), []string{"vm-000002"}; !slices.Equal(got, want) {
		t.Errorf("CleanupTAPs(vm-000002, vm-000003) with lo in the other instance's group = %q, want %q", got, want)
	}
	// Its TAP is still there, doomed (moved into the group, which the
	// kernel then refused to delete): GC or a later cleanup removes it.
	f.checkLinks(t, []string{"lo", testBridge, foreign, three[0].Tap})
	if err := other.Verify(ctx, "vm-000003"); err == nil || !strings.Contains(err.Error(), "being deleted") {
		t.Errorf("other instance's Verify(vm-000003) after a failed cleanup = %v, want it being deleted", err)
	}
	f.ip(t, "link", "set", "lo", "group", "default")
	if got := cleanup([]string{"vm-000003"}); !slices.Equal(got, []string{"vm-000003"}) {
		t.Errorf("CleanupTAPs(vm-000003) once lo left the group = %q, want [vm-000003]", got)
	}
	f.checkLinks(t, []string{"lo", testBridge, foreign})
}

// TestIntegrationDeleteDoomsAtOnce is the default Delete: when it returns,
// the VM's TAPs are doomed, carry no traffic in either direction (also
// while a VMM still holds them open, with carrier), and have no FDB entry;
// the background deletion, which runs only while deletions are pending,
// deletes them later; Close waits for it.
func TestIntegrationDeleteDoomsAtOnce(t *testing.T) {
	// The guard off: the test frames are not IP, and a doomed port must
	// carry nothing even without a filter.
	f := newFixture(t, &config.Config{Hypervisor: config.Firecracker, ReapInterval: time.Hour, ReapBatch: 1 << 20, Guard: guard.ModeOff})
	ctx := t.Context()
	ids := []string{"vm-a", "vm-b", "vm-c"}
	recs := map[string]*types.NetworkConfig{}
	macs := map[string]net.HardwareAddr{}
	fds := map[string]int{}
	for _, id := range ids {
		rec := f.config(t, id, 1, nil)[0]
		recs[id], macs[id] = rec, mustHW(t, rec.Mac)
		fds[id] = int(gcHold(t, f, rec.Tap, false, 1).Queues()[0].Fd())
		f.waitForwarding(t, rec.Tap)
	}
	goroutines := runtime.NumGoroutine()

	if got, err := f.b.Delete(ctx, []string{"vm-a"}); err != nil || !slices.Equal(got, []string{"vm-a"}) {
		t.Fatalf("Delete(vm-a) = %q, %v; want [vm-a], nil", got, err)
	}
	a := recs["vm-a"].Tap
	l := f.link(t, a)
	if want := strconv.FormatUint(uint64(f.b.group), 10); l.Group != want {
		t.Errorf("TAP %s after Delete is in group %s, want the reserved group %s", a, l.Group, want)
	}
	if p := f.ports(t)[a]; p == nil || !p.Locked || p.Flood || p.McastFlood || p.BcastFlood {
		t.Errorf("port %s after Delete = %+v, want locked, no unicast, multicast or broadcast flooding", a, p)
	}
	if e := f.fdbFor(t, recs["vm-a"].Mac); len(e) != 0 {
		t.Errorf("FDB entries for vm-a's MAC after Delete = %+v, want none", e)
	}
	n, err := f.b.Inspect(ctx, "vm-a")
	if err != nil || !n.Links[0].Deleting {
		t.Errorf("Inspect(vm-a) after Delete = %+v, %v; want its TAP being deleted", n, err)
	}
	if err := f.b.Verify(ctx, "vm-a"); err == nil || !strings.Contains(err.Error(), "being deleted") {
		t.Errorf("Verify(vm-a) after Delete = %v, want being deleted", err)
	}

	write := func(from string, frame []byte) {
		t.Helper()
		if n, err := unix.Write(fds[from], frame); err != nil || n != len(frame) {
			t.Fatalf("write %d bytes into %s's TAP = %d, %v", len(frame), from, n, err)
		}
	}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast := net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}
	const wait = 30 * time.Second
	// Towards the doomed TAP: unicast to its MAC, multicast, broadcast.
	// C sees the markers; A must see nothing.
	write("vm-b", testFrame(macs["vm-a"], macs["vm-b"], "unicast b->a"))
	write("vm-b", testFrame(mcast, macs["vm-b"], "multicast from b"))
	write("vm-b", testFrame(bcast, macs["vm-b"], "marker from b"))
	if got := readPayloads(t, fds["vm-c"], "marker from b", wait); !slices.Contains(got, "marker from b") {
		t.Fatalf("vm-c's TAP received %q, want the broadcast marker", got)
	}
	if got := readPayloads(t, fds["vm-a"], "", 300*time.Millisecond); len(got) != 0 {
		t.Errorf("the doomed TAP of vm-a received %q, want nothing", got)
	}
	// From the doomed TAP: nothing reaches anyone.
	write("vm-a", testFrame(macs["vm-b"], macs["vm-a"], "unicast a->b"))
	write("vm-a", testFrame(bcast, macs["vm-a"], "broadcast from a"))
	write("vm-c", testFrame(bcast, macs["vm-c"], "marker from c"))
	if got := readPayloads(t, fds["vm-b"], "marker from c", wait); !slices.Equal(got, []string{"marker from c"}) {
		t.Errorf("vm-b's TAP received %q, want only the marker from c (nothing from the doomed vm-a)", got)
	}

	if err := f.b.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	f.checkNoTAPs(t, "vm-a")
	// The background goroutine ends once nothing is pending.
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines a minute after Flush, want %d as before Delete", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Close waits for the pending deletions of its Bridge.
	other, err := New(&config.Config{RootDir: f.dir, NetnsPath: testutil.NSPath(f.ns), Hypervisor: config.Firecracker, ReapInterval: time.Hour, Guard: guard.ModeOff}, testBridge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Delete(ctx, []string{"vm-b"}); err != nil {
		t.Fatalf("Delete(vm-b) = %v", err)
	}
	if err := other.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	f.checkNoTAPs(t, "vm-b")
	f.checkLinks(t, []string{"lo", testBridge, recs["vm-c"].Tap})
}

func TestIntegrationDeleteDoomsTAPOffBridge(t *testing.T) {
	// A TAP someone took off the bridge is no bridge port: the kernel
	// refuses port settings on it, and Delete must still doom it (move it
	// into the reserved group) and not fail.
	f := newFixture(t, &config.Config{ReapInterval: time.Hour, ReapBatch: 1 << 20})
	ctx := t.Context()
	recs := f.config(t, "vm-a", 2, nil)
	f.ip(t, "link", "set", recs[1].Tap, "nomaster")
	if got, err := f.b.Delete(ctx, []string{"vm-a"}); err != nil || !slices.Equal(got, []string{"vm-a"}) {
		t.Fatalf("Delete(vm-a) = %q, %v; want [vm-a], nil", got, err)
	}
	want := strconv.FormatUint(uint64(f.b.group), 10)
	for _, r := range recs {
		if l := f.link(t, r.Tap); l.Group != want {
			t.Errorf("TAP %s after Delete is in group %s, want the reserved group %s", r.Tap, l.Group, want)
		}
	}
	if p := f.ports(t)[recs[0].Tap]; p == nil || !p.Locked || p.Flood {
		t.Errorf("port %s after Delete = %+v, want locked without flooding", recs[0].Tap, p)
	}
	if err := f.b.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	f.checkNoTAPs(t, "vm-a")
}
