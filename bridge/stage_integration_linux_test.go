package bridge

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/frames"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/types"
)

const (
	stagedVM  = "mig-vm"
	stagedMAC = "02:99:00:00:00:01"
	vxlanDev  = "vxlan100"
)

// addVxlan puts a vxlan port on the bridge with what a control plane
// (zebra) installs for a guest on another host: the bridge's extern_learn
// entry on the vxlan port and the vxlan device's own entry to the VTEP.
func addVxlan(t *testing.T, f *fixture, macs ...string) {
	t.Helper()
	f.ip(t, "link", "add", vxlanDev, "type", "vxlan", "id", "100", "local", "192.0.2.1", "dstport", "4789", "nolearning")
	f.ip(t, "link", "set", vxlanDev, "master", testBridge, "up")
	f.run(t, "bridge", "link", "set", "dev", vxlanDev, "learning", "off")
	for _, m := range macs {
		f.run(t, "bridge", "fdb", "add", m, "dev", vxlanDev, "master", "extern_learn")
		f.run(t, "bridge", "fdb", "add", m, "dev", vxlanDev, "self", "dst", "192.0.2.2")
	}
}

// vxlanEntries lists the entries for mac on the vxlan device, as
// "master ..." and "self ..." with their flags.
func vxlanEntries(t *testing.T, f *fixture, mac string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(string(f.run(t, "bridge", "fdb", "show", "dev", vxlanDev)), "\n") {
		if strings.HasPrefix(line, mac+" ") {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(line, mac)))
		}
	}
	return out
}

// TestIntegrationStageActivate stages a NIC whose MAC another host has
// (extern_learn on the vxlan port), checks that it is blocked both ways
// while its VMM holds it, activates it and checks that it forwards, that
// the take-over cleared extern_learn and removed the vxlan device's own
// entry, and that Activate is idempotent.
func TestIntegrationStageActivate(t *testing.T) {
	g := newGuardFixture(t, guard.ModeL2)
	ctx := t.Context()
	addVxlan(t, g.fixture, stagedMAC)
	peer := g.guest(t, "peer")
	peerIP := netip.MustParseAddr("10.0.0.7")
	stIP := netip.MustParseAddr("10.0.0.8")

	if err := g.b.Activate(ctx, stagedVM); !errors.Is(err, network.ErrNotFound) {
		t.Errorf("Activate(unknown VM) = %v, want network.ErrNotFound", err)
	}
	if err := g.b.Activate(ctx, "bad id!"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Activate(bad ID) = %v, want ErrInvalidArgument", err)
	}

	recs, err := g.b.Stage(ctx, stagedVM, 1, nil, &types.NetworkConfig{Mac: stagedMAC})
	if err != nil {
		t.Fatalf("Stage(%s, MAC %s remote on vxlan) = %v", stagedVM, stagedMAC, err)
	}
	tapName := recs[0].Tap
	if again, err := g.b.Stage(ctx, stagedVM, 1, nil, &types.NetworkConfig{Mac: stagedMAC}); err != nil || again[0].Tap != tapName {
		t.Errorf("Stage again = %v, %v, want the same records", again, err)
	}
	// Not a Verify failure, and not yet activatable: no VMM holds it.
	if err := g.b.Verify(ctx, stagedVM); err != nil {
		t.Errorf("Verify(staged) = %v, want nil", err)
	}
	if n, err := g.b.Inspect(ctx, stagedVM); err != nil || n.Links[0].FDB || !n.Links[0].Staged {
		t.Errorf("Inspect(staged) = %+v, %v, want FDB false, Staged true", n.Links[0], err)
	}
	if err := g.b.Activate(ctx, stagedVM); !errors.Is(err, ErrNoCarrier) {
		t.Errorf("Activate(staged, TAP not open) = %v, want ErrNoCarrier", err)
	}
	if !strings.Contains(g.link(t, tapName).Alias, " s=1 ") {
		t.Errorf("staged TAP alias %q has no s=1", g.link(t, tapName).Alias)
	}
	p := g.ports(t)[tapName]
	if !p.Locked || p.Flood || p.McastFlood || p.BcastFlood || p.Learning {
		t.Errorf("staged port = %+v, want locked, no flooding, no learning", p)
	}
	if !g.hasGuardFilter(t, tapName) {
		t.Errorf("staged TAP %s has no guard filter", tapName)
	}
	for _, e := range g.fdbFor(t, stagedMAC) {
		if e.Ifname == tapName {
			t.Errorf("staged TAP has an FDB entry for %s: %+v", stagedMAC, e)
		}
	}

	// The VMM opens it: carrier up, the port forwards, yet nothing passes.
	fd := int(gcHold(t, g.fixture, tapName, false, 1).Queues()[0].Fd())
	g.waitForwarding(t, tapName)
	st := &guest{id: stagedVM, mac: mustMAC(t, stagedMAC), fd: fd, tap: tapName}
	toStaged := frames.ARPReplyFrame(peer.mac, peerIP, st.mac, stIP)
	peer.send(t, toStaged)
	if _, seen := st.received(t, toStaged, 300*time.Millisecond); seen {
		t.Errorf("a frame for %s from another TAP reached the staged TAP", stagedMAC)
	}
	toPeer := frames.ARPReplyFrame(st.mac, stIP, peer.mac, peerIP)
	st.send(t, toPeer)
	if _, seen := peer.received(t, toPeer, 300*time.Millisecond); seen {
		t.Errorf("a frame the staged guest sent reached another TAP")
	}

	start := time.Now()
	if err := g.b.Activate(ctx, stagedVM); err != nil {
		t.Fatalf("Activate(%s) = %v", stagedVM, err)
	}
	t.Logf("Activate took %v", time.Since(start))
	g.checkStaticFDB(t, stagedMAC, tapName)
	for _, e := range g.fdbFor(t, stagedMAC) {
		for _, fl := range e.Flags {
			if fl == "extern_learn" {
				t.Errorf("activated entry %+v still extern_learn", e)
			}
		}
	}
	if got := vxlanEntries(t, g.fixture, stagedMAC); len(got) != 0 {
		t.Errorf("after Activate the vxlan device still has %v for %s", got, stagedMAC)
	}
	p = g.ports(t)[tapName]
	want := g.ports(t)[peer.tap]
	if p.Locked != want.Locked || p.Flood != want.Flood || p.McastFlood != want.McastFlood || p.BcastFlood != want.BcastFlood {
		t.Errorf("activated port = %+v, want a Config port's %+v", p, want)
	}
	if strings.Contains(g.link(t, tapName).Alias, " s=1 ") {
		t.Errorf("activated TAP alias %q still has s=1", g.link(t, tapName).Alias)
	}
	peer.send(t, toStaged)
	if _, seen := st.received(t, toStaged, 2*time.Second); !seen {
		t.Errorf("after Activate a frame for %s did not reach its TAP", stagedMAC)
	}
	st.send(t, toPeer)
	if _, seen := peer.received(t, toPeer, 2*time.Second); !seen {
		t.Errorf("after Activate the guest's frame did not reach the peer")
	}
	if err := g.b.Verify(ctx, stagedVM); err != nil {
		t.Errorf("Verify(activated) = %v, want nil", err)
	}
	if err := g.b.Activate(ctx, stagedVM); err != nil {
		t.Errorf("Activate again = %v, want nil (idempotent)", err)
	}
	g.checkStaticFDB(t, stagedMAC, tapName)
	n, err := g.b.Inspect(ctx, stagedVM)
	if err != nil || !n.Links[0].FDB || n.Links[0].Staged {
		t.Errorf("Inspect(activated) = %+v, %v, want FDB true, Staged false", n.Links[0], err)
	}
	// An active NIC without its entry is a Verify failure.
	g.run(t, "bridge", "fdb", "del", stagedMAC, "dev", tapName, "master")
	if err := g.b.Verify(ctx, stagedVM); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "no FDB entry") {
		t.Errorf("Verify(active, entry deleted) = %v, want ErrMismatch naming the FDB entry", err)
	}
}

// TestIntegrationStageConflictAndDelete: a MAC that is local on another
// port cannot be staged; a staged VM deletes like any other; Config,
// Stage, Delete and GC never touch the vxlan port or remote entries.
func TestIntegrationStageConflictAndDelete(t *testing.T) {
	f := newFixture(t, &config.Config{SyncDelete: true, GCGrace: -1})
	ctx := t.Context()
	remote := "02:99:00:00:00:02"
	addVxlan(t, f, remote)
	before := vxlanEntries(t, f, remote)
	local := f.config(t, "local", 1, nil)[0]
	if _, err := f.b.Stage(ctx, "dup", 1, nil, &types.NetworkConfig{Mac: local.Mac}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Stage(MAC static on another local port) = %v, want ErrInvalidArgument", err)
	}
	f.checkNoTAPs(t, "dup")
	recs, err := f.b.Stage(ctx, stagedVM, 2, nil)
	if err != nil {
		t.Fatalf("Stage(%s, 2 NICs) = %v", stagedVM, err)
	}
	if _, err := f.b.Delete(ctx, []string{stagedVM, "local"}); err != nil {
		t.Fatalf("Delete(staged, local) = %v", err)
	}
	f.checkNoTAPs(t, stagedVM)
	for _, r := range recs {
		if got := f.fdbFor(t, r.Mac); len(got) != 0 {
			t.Errorf("after Delete: entries for %s = %+v", r.Mac, got)
		}
	}
	f.config(t, "orphan", 1, nil)
	gcRun(t, gcOrch(f.b, &gcLive{live: map[string]struct{}{}}), f.b.inst)
	f.checkNoTAPs(t, "orphan")
	if _, ok := f.links(t)[vxlanDev]; !ok {
		t.Fatalf("%s is gone", vxlanDev)
	}
	if got := vxlanEntries(t, f, remote); strings.Join(got, "|") != strings.Join(before, "|") {
		t.Errorf("vxlan entries for %s = %v after Config/Stage/Delete/GC, want %v", remote, got, before)
	}
}

// TestIntegrationSticky: with Config.Sticky the guest MAC's entry is
// static and sticky.
func TestIntegrationSticky(t *testing.T) {
	f := newFixture(t, &config.Config{Sticky: true})
	rec := f.config(t, "sticky", 1, nil)[0]
	f.checkStaticFDB(t, rec.Mac, rec.Tap)
	if got := f.fdbFor(t, rec.Mac); len(got) != 1 || !slices.Contains(got[0].Flags, "sticky") {
		t.Errorf("Config with Sticky: entries for %s = %+v, want static sticky", rec.Mac, got)
	}
	f.config(t, "sticky", 1, nil) // the repair keeps it sticky
	if got := f.fdbFor(t, rec.Mac); len(got) != 1 || !slices.Contains(got[0].Flags, "sticky") {
		t.Errorf("Config again with Sticky: entries for %s = %+v, want static sticky", rec.Mac, got)
	}
}
