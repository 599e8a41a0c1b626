package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/internal/testutil"
)

var learnRuns = flag.Int("e2e.evpn-runs", 10, "learn/withdraw runs whose medians TestE2EEVPN reports")

// TestE2EEVPN is the many-hosts test: two hosts (namespaces) joined by a
// veth underlay, each with br0 + vxlan100 and its own FRR (zebra, bgpd,
// iBGP l2vpn evpn, advertise-all-vni), and tapbridge's CLI on each.
//
//   - learn: the other host learns a guest MAC from BGP EVPN right after
//     `tapbridge up` returns, before any guest exists to send a frame, and
//     forgets it right after `tapbridge down`; medians of repeated runs.
//   - reach: a guest on host b gets its lease from dnsmasq on host a and
//     pings a guest on host a.
//   - migrate-control: a guest pinging a peer migrates from a to b while
//     b's TAP has the guest MAC's static entry from the start (what
//     Config does today): logged, not asserted; it black-holes.
//   - migrate-staged: the same with the destination NIC staged (no entry,
//     blocked: `tapbridge up --staged`, the library's Stage) and activated
//     when QEMU on b resumes the guest (`tapbridge activate`). It must end with
//     the pings back and no stale or duplicate entry on either host.
func TestE2EEVPN(t *testing.T) {
	rep := beginE2E(t)
	requireFRR(t, rep)

	dir := t.TempDir()
	rep.stage = "build tapbridge"
	drv := buildCLI(t, rep, dir)

	t.Run("learn", func(t *testing.T) {
		rep.stage = "evpn learn"
		hosts := newEVPNHosts(t, rep)
		testLearn(t, rep, drv, hosts[0], hosts[1])
	})

	rep.stage = "guest artefacts"
	g := prepareGuest(t, rep, cacheDir(), dir)
	accel := pickAccel(t, rep)
	t.Run("reach", func(t *testing.T) {
		rep.stage = "evpn reach"
		hosts := newEVPNHosts(t, rep)
		testReach(t, rep, drv, g, accel, hosts[0], hosts[1])
	})
	var control, staged migration
	t.Run("migrate-control", func(t *testing.T) {
		rep.stage = "evpn migrate (control)"
		hosts := newEVPNHosts(t, rep)
		control = testMigrate(t, rep, drv, g, accel, hosts[0], hosts[1], false)
		// Not asserted: the control shows what goes wrong.
		for _, p := range convergence(t, hosts[0], hosts[1], "btmig-vm-0") {
			t.Logf("control ends with: %s", p)
		}
	})
	t.Run("migrate-staged", func(t *testing.T) {
		rep.stage = "evpn migrate (staged)"
		hosts := newEVPNHosts(t, rep)
		staged = testMigrate(t, rep, drv, g, accel, hosts[0], hosts[1], true)
		if !staged.recovered {
			rep.errorf(t, "the guest's pings did not come back on host b after the migration")
		}
		checkConverged(t, rep, hosts[0], hosts[1], "btmig-vm-0")
	})
	if control.total == 0 || staged.total == 0 {
		return
	}
	t.Logf("EVPN-MIGRATION-GAP control (destination entry at TAP creation) %v, %d pings lost, recovered %v; staged (entry at RESUME) %v, %d pings lost; QEMU downtime %v / %v",
		control.gap.gap.Round(time.Millisecond), control.gap.lost, control.recovered,
		staged.gap.gap.Round(time.Millisecond), staged.gap.lost, control.downtime, staged.downtime)
}

// requireFRR fails the test unless FRR's daemons and vtysh are installed.
func requireFRR(t *testing.T, rep *report) {
	t.Helper()
	var missing []string
	for _, d := range []string{"zebra", "bgpd"} {
		if _, err := exec.LookPath(filepath.Join(frrDir, d)); err != nil {
			missing = append(missing, filepath.Join(frrDir, d))
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		missing = append(missing, "vtysh")
	}
	if _, _, err := frrIDs(); err != nil {
		missing = append(missing, "user frr")
	}
	if len(missing) > 0 {
		rep.fatalf(t, "missing %s (make deps installs frr)", strings.Join(missing, ", "))
	}
}

// upOn runs `tapbridge up` for vm on host h, with the given guest MACs.
func (c cli) upOn(ctx context.Context, h *evpnHost, vm string, cpus int, macs ...string) ([]nic, error) {
	args := []string{"up", "--bridge", bridgeName, "--vm", vm, "--hypervisor", "qemu",
		"--cpus", strconv.Itoa(cpus), "--netns", h.nsPath, "--root", h.root, "--json"}
	for _, m := range macs {
		if strings.HasPrefix(m, "--") {
			args = append(args, m) // a flag such as --staged
			continue
		}
		args = append(args, "--mac", m)
	}
	out, err := c.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var nics []nic
	if err := json.Unmarshal(out, &nics); err != nil || len(nics) != 1 {
		return nil, fmt.Errorf("tapbridge up --json: %v, %d NICs in %q", err, len(nics), out)
	}
	return nics, nil
}

// testLearn measures, over repeated runs, how long after `tapbridge up` on
// host a returns host b has the guest MAC as a remote entry on its VXLAN
// port, and how long after `tapbridge down` returns it is gone. No guest
// runs: the entry comes from the static FDB entry up pins (kernel fact
// 19), so the guest is reachable before it sends a frame.
func testLearn(t *testing.T, rep *report, drv cli, a, b *evpnHost) {
	mon := b.monitorFDB(t, rep)
	var learn, withdraw, fromStart []time.Duration
	for i := range *learnRuns + 1 {
		warm := i == 0 // the first run also proves the monitor is listening
		vm := fmt.Sprintf("learn-%d", i)
		t0 := time.Now()
		nics, err := drv.upOn(t.Context(), a, vm, 1)
		tUp := time.Now()
		if err != nil {
			rep.fatalf(t, "host a: %v", err)
		}
		mac := nics[0].Mac
		if es := a.macEntries(t, mac); len(es) != 1 || es[0].Dev != nics[0].Tap || es[0].State != "static" {
			rep.fatalf(t, "host a: FDB entries for %s = %v, want one static on %s", mac, es, nics[0].Tap)
		}
		if err := b.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return remoteOn(es, mac) }); err != nil {
			rep.fatalf(t, "host b: %s not remote on %s after tapbridge up on a: %v\n%s", mac, vxlanDev, err, b.vtysh(t, "show evpn mac vni "+vni))
		}
		at, err := mon.waitRemote(mac, false, t0, 5*time.Second)
		if err != nil && !warm {
			rep.fatalf(t, "host b: monitor did not see %s arrive: %v", mac, err)
		}
		if i == 1 {
			macs, err := b.evpnMACs(t)
			if m, ok := macs[mac]; err != nil || !ok || m.Type != "remote" || m.RemoteVTEP != a.underlay {
				rep.errorf(t, "host b: zebra's %s = %+v (%v), want remote via %s", mac, m, err, a.underlay)
			}
		}

		tD0 := time.Now()
		if err := drv.down(t.Context(), a.nsPath, a.root, vm); err != nil {
			rep.fatalf(t, "host a: %v", err)
		}
		tDown := time.Now()
		if err := b.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return !anyOf(es, mac) }); err != nil {
			rep.fatalf(t, "host b: %s still known after tapbridge down on a: %v", mac, err)
		}
		gone, err := mon.waitRemote(mac, true, tD0, 5*time.Second)
		if err != nil {
			rep.fatalf(t, "host b: monitor did not see %s go: %v", mac, err)
		}
		if warm {
			continue
		}
		learn = append(learn, at.Sub(tUp))
		fromStart = append(fromStart, at.Sub(t0))
		withdraw = append(withdraw, gone.Sub(tDown))
		t.Logf("run %d: up took %v; b learned %s %v after up returned; down took %v; b forgot it %v after down returned",
			i, tUp.Sub(t0).Round(time.Microsecond), mac, at.Sub(tUp).Round(time.Microsecond),
			tDown.Sub(tD0).Round(time.Microsecond), gone.Sub(tDown).Round(time.Microsecond))
	}
	testGCLeavesEVPN(t, rep, drv, a, b)
	t.Logf("EVPN-LEARN median %v (from up's start %v), EVPN-WITHDRAW median %v, over %d runs (learn %v; withdraw %v)",
		median(learn), median(fromStart), median(withdraw), len(learn), rounded(learn), rounded(withdraw))
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2].Round(time.Microsecond)
	}
	return ((s[len(s)/2-1] + s[len(s)/2]) / 2).Round(time.Microsecond)
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// testGCLeavesEVPN runs a GC cycle on both hosts while one VM lives on a
// and one is an orphan there: the orphan goes (and with it its route), and
// nothing of EVPN's is touched: the VXLAN port stays on the bridge with
// learning off, the remote entries and the VTEP flood entries stay.
func testGCLeavesEVPN(t *testing.T, rep *report, drv cli, a, b *evpnHost) {
	live, err := drv.upOn(t.Context(), a, "gc-live", 1)
	if err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
	orphan, err := drv.upOn(t.Context(), a, "gc-orphan", 1)
	if err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
	for _, n := range []nic{live[0], orphan[0]} {
		if err := b.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return remoteOn(es, n.Mac) }); err != nil {
			rep.fatalf(t, "host b: %s not remote: %v", n.Mac, err)
		}
	}
	empty := filepath.Join(t.TempDir(), "live")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		rep.fatalf(t, "%v", err)
	}
	if out, err := drv.run(t.Context(), "gc", "--live", "gc-live", "--grace", "-1s", "--netns", a.nsPath, "--root", a.root); err != nil {
		rep.fatalf(t, "host a: %v\n%s", err, out)
	}
	if out, err := drv.run(t.Context(), "gc", "--live-file", empty, "--grace", "-1s", "--netns", b.nsPath, "--root", b.root); err != nil {
		rep.fatalf(t, "host b: %v\n%s", err, out)
	}
	if err := b.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return !anyOf(es, orphan[0].Mac) }); err != nil {
		rep.errorf(t, "host b: the orphan's %s still known after GC on a: %v", orphan[0].Mac, err)
	}
	if !remoteOn(b.fdb(t), live[0].Mac) {
		rep.errorf(t, "host b: GC lost the live VM's remote entry %s", live[0].Mac)
	}
	for _, h := range []*evpnHost{a, b} {
		l := testutil.IPLinkByName(t, h.ns, vxlanDev)
		if l == nil || l.Master != bridgeName {
			rep.errorf(t, "host %s: after GC, %s = %+v, want a port of %s", h.name, vxlanDev, l, bridgeName)
			continue
		}
		if learning, _ := l.LinkInfo.SlaveData["learning"].(bool); learning {
			rep.errorf(t, "host %s: after GC, learning is on on %s", h.name, vxlanDev)
		}
		o := a
		if h == a {
			o = b
		}
		if !hasEntry(h.fdb(t), func(e fdbEntry) bool { return e.MAC == zeroMAC && e.Dst == o.underlay }) {
			rep.errorf(t, "host %s: after GC, no flood entry for VTEP %s", h.name, o.underlay)
		}
	}
	if err := drv.down(t.Context(), a.nsPath, a.root, "gc-live"); err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
}
