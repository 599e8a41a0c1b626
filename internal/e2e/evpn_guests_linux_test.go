package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/internal/testutil"
)

var migrateBandwidth = flag.Int64("e2e.migrate-bandwidth", 16<<20,
	"QEMU max-bandwidth (bytes/s) for the migration tests: sets how long pre-copy lasts (the final stop-and-copy is not limited)")

// Fixed guest MACs and addresses (dnsmasq reserves the addresses), so a
// guest can be told its peer's address on its kernel command line. All
// locally administered unicast.
const (
	peerMAC     = "0a:99:00:00:00:0a"
	peerIP      = "10.99.0.10"
	moverMAC    = "0a:99:00:00:00:14"
	moverIP     = "10.99.0.20"
	stagedMAC   = "0a:99:00:00:00:fe" // the placeholder the control makes its TAP with
	migratePort = "4444"
)

// startDHCP gives host h's br0 the gateway address and starts dnsmasq on
// it, serving the e2e range plus the fixed reservations ("MAC,IP"). It
// returns the lease file.
func startDHCP(t *testing.T, rep *report, h *evpnHost, reservations ...string) string {
	t.Helper()
	testutil.Run(t, h.ns, "ip", "addr", "add", gatewayCIDR, "dev", bridgeName)
	leases := filepath.Join(t.TempDir(), "leases")
	argv := []string{"nsenter", "--net=" + h.nsPath, "--",
		dnsmasqPath(), "--no-daemon", "--conf-file=/dev/null",
		"--interface=" + bridgeName, "--bind-interfaces", "--port=0",
		"--dhcp-range=" + dhcpRange, "--dhcp-option=option:router," + gateway,
		"--dhcp-leasefile=" + leases, "--no-ping", "--log-dhcp"}
	for _, r := range reservations {
		argv = append(argv, "--dhcp-host="+r)
	}
	dns, err := startProc(t, "dnsmasq-"+h.name, argv...)
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host %s dnsmasq output:\n%s", h.name, dns.out.String())
		}
	})
	if err := dns.waitOutput("DHCP, IP range", 30*time.Second); err != nil {
		rep.fatalf(t, "dnsmasq: %v", err)
	}
	return leases
}

// testReach: a guest on host b gets its lease from dnsmasq on host a and
// pings a guest on host a; each host knows the other's guest MAC from BGP
// EVPN as soon as `tapbridge up` returns, before the guest exists.
func testReach(t *testing.T, rep *report, drv cli, g *guest, accel string, a, b *evpnHost) {
	leases := startDHCP(t, rep, a, peerMAC+","+peerIP)
	monA, monB := a.monitorFDB(t, rep), b.monitorFDB(t, rep)

	t0 := time.Now()
	nA, err := drv.upOn(t.Context(), a, "reach-a", 1, peerMAC)
	if err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
	up := time.Now()
	if err := b.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return remoteOn(es, peerMAC) }); err != nil {
		rep.fatalf(t, "host b: %s not remote after up on a (no guest running yet): %v", peerMAC, err)
	}
	if at, err := monB.waitRemote(peerMAC, false, t0, 5*time.Second); err == nil {
		t.Logf("host b learned %s (host a's guest, not booted) %v after up returned", peerMAC, at.Sub(up).Round(time.Microsecond))
	}
	ga := bootGuest(t, rep, a, g, accel, nA[0], "peer", guestOpts{cmdline: "e2e.mode=serve"})
	if _, err := ga.waitMarker("E2E-SERVING", *bootTimeout); err != nil {
		rep.fatalf(t, "%v", err)
	}
	if ip, _ := ga.waitMarker("E2E-LEASE", time.Second); ip != peerIP {
		rep.fatalf(t, "peer guest lease = %q, want the reserved %s", ip, peerIP)
	}

	t0 = time.Now()
	nB, err := drv.upOn(t.Context(), b, "reach-b", 1)
	if err != nil {
		rep.fatalf(t, "host b: %v", err)
	}
	up = time.Now()
	macB := nB[0].Mac
	if err := a.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return remoteOn(es, macB) }); err != nil {
		rep.fatalf(t, "host a: %s not remote after up on b (no guest running yet): %v", macB, err)
	}
	if at, err := monA.waitRemote(macB, false, t0, 5*time.Second); err == nil {
		t.Logf("host a learned %s (host b's guest, not booted) %v after up returned", macB, at.Sub(up).Round(time.Microsecond))
	}
	gb := bootGuest(t, rep, b, g, accel, nB[0], "client", guestOpts{cmdline: "e2e.peer=" + peerIP})
	if !gb.qemu.wait(*bootTimeout) {
		rep.fatalf(t, "guest on b did not power off within %v", *bootTimeout)
	}
	m := parseMarkers([]byte(gb.console.text()))
	t.Logf("guest on b: %s", strings.Join(m.lines, " | "))
	switch {
	case m.has("E2E-PING-OK"):
	case m.has("E2E-LEASE-FAIL"):
		rep.fatalf(t, "guest on b got no DHCP lease from dnsmasq on a")
	default:
		rep.fatalf(t, "guest on b got lease %q but could not ping the guest on a (%s)", m.val("E2E-LEASE"), peerIP)
	}
	if err := waitLease(leases, macB, m.val("E2E-LEASE"), 15*time.Second); err != nil {
		rep.errorf(t, "host a lease file: %v", err)
	}

	// Delete withdraws at once, from both sides.
	if err := drv.down(t.Context(), b.nsPath, b.root, "reach-b"); err != nil {
		rep.fatalf(t, "host b: %v", err)
	}
	if err := a.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return !anyOf(es, macB) }); err != nil {
		rep.errorf(t, "host a still has %s after down on b: %v", macB, err)
	}
	ga.qemu.kill()
	if err := drv.down(t.Context(), a.nsPath, a.root, "reach-a"); err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
	if err := b.waitFDB(t, 10*time.Second, func(es []fdbEntry) bool { return !anyOf(es, peerMAC) }); err != nil {
		rep.errorf(t, "host b still has %s after down on a: %v", peerMAC, err)
	}
}

// Port flags Stage turns off, and Activate restores:
// with the port locked and nothing in the FDB for it, nothing the TAP
// sends is forwarded, and with flooding off nothing reaches it; the
// bridge keeps this when QEMU's open brings the carrier up (unlike a
// disabled port state, which carrier-up re-enables: net/bridge/br_if.c
// br_port_carrier_check -> br_stp_enable_port).
var stagedFlags = []string{"locked", "flood", "mcast_flood", "bcast_flood"}

// portFlags returns the bridge-port flags of dev as iproute2 reports them.
func portFlags(t testing.TB, h *evpnHost, dev string) map[string]bool {
	t.Helper()
	l := testutil.IPLinkByName(t, h.ns, dev)
	if l == nil {
		t.Fatalf("host %s: no link %s", h.name, dev)
	}
	out := map[string]bool{}
	for _, f := range stagedFlags {
		v, _ := l.LinkInfo.SlaveData[f].(bool)
		out[f] = v
	}
	return out
}

// bridgeBatch runs iproute2 `bridge -batch` in h's namespace: one process
// for several requests, so that they land back to back.
func bridgeBatch(t testing.TB, h *evpnHost, cmds ...string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(strings.Join(cmds, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, h.ns, "bridge", "-batch", f)
}

// migration is what one migration run measured.
type migration struct {
	staged                     bool
	gap                        pingGap
	downtime, total            time.Duration // QEMU's
	resumeToActivate           time.Duration
	movedOnA                   time.Time // when host a's FDB first had the mover as remote
	destMade, migStart, resume time.Time
	recovered                  bool // pings came back on b
}

// testMigrate live-migrates a guest that pings a peer guest on host a, from
// host a to host b over the underlay. The destination NIC is made before
// the migration starts, as a control plane must (QEMU -incoming opens its
// TAP at start). staged=false is the control: the destination TAP carries
// the guest MAC's static FDB entry from the start, as `tapbridge up` makes
// it (emulated with iproute2: tapbridge up refuses the MAC, which b has as
// a remote entry). staged=true uses the library's Stage/Activate through
// the CLI: `tapbridge up --staged` makes the TAP without the entry and
// blocked, and `tapbridge activate` runs when QEMU on b resumes the guest.
func testMigrate(t *testing.T, rep *report, drv cli, g *guest, accel string, a, b *evpnHost, staged bool) migration {
	mg := migration{staged: staged}
	startDHCP(t, rep, a, peerMAC+","+peerIP, moverMAC+","+moverIP)
	monA := a.monitorFDB(t, rep)

	nP, err := drv.upOn(t.Context(), a, "mig-peer", 1, peerMAC)
	if err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
	peer := bootGuest(t, rep, a, g, accel, nP[0], "peer", guestOpts{cmdline: "e2e.mode=serve"})
	nM, err := drv.upOn(t.Context(), a, "mig-vm", 1, moverMAC)
	if err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
	src := bootGuest(t, rep, a, g, accel, nM[0], "mover-a", guestOpts{cmdline: "e2e.mode=pingloop e2e.peer=" + peerIP})
	if _, err := peer.waitMarker("E2E-SERVING", *bootTimeout); err != nil {
		rep.fatalf(t, "%v", err)
	}
	if _, err := src.waitMarker("E2E-PINGLOOP", *bootTimeout); err != nil {
		rep.fatalf(t, "%v", err)
	}
	if err := waitReplies(src, 20, 30*time.Second); err != nil {
		rep.fatalf(t, "before migration: %v", err)
	}
	qa, err := dialQMP(t, src, 10*time.Second)
	if err != nil {
		rep.fatalf(t, "QMP on a: %v", err)
	}

	// The destination NIC, before QEMU -incoming opens it.
	mg.destMade = time.Now()
	var nD []nic
	if staged {
		// Stage: the library's Stage (tapbridge up --staged), with the
		// guest's own MAC: no FDB entry, port blocked.
		nD, err = drv.upOn(t.Context(), b, "mig-vm", 1, "--staged", moverMAC)
	} else {
		nD, err = drv.upOn(t.Context(), b, "mig-vm", 1, stagedMAC)
	}
	if err != nil {
		rep.fatalf(t, "host b: %v", err)
	}
	tapB := nD[0].Tap
	orig := portFlags(t, b, tapB)
	if staged {
		if f := orig; !f["locked"] || f["flood"] || f["mcast_flood"] || f["bcast_flood"] {
			rep.errorf(t, "host b: staged port %s flags %v, want locked, no flooding", tapB, f)
		}
	} else {
		// Control: the guest MAC's static entry from the start (replace:
		// b has the MAC as host a's remote entry, so an exclusive add,
		// which is what tapbridge up does, fails with EEXIST).
		bridgeBatch(t, b, "fdb del "+stagedMAC+" dev "+tapB+" master",
			"fdb replace "+moverMAC+" dev "+tapB+" master static")
	}
	t.Logf("host b: destination TAP %s made (%s); port flags before staging %v", tapB, map[bool]string{true: "staged", false: "control: static entry"}[staged], orig)
	dst := bootGuest(t, rep, b, g, accel, nD[0], "mover-b", guestOpts{mac: moverMAC, incoming: "tcp:" + b.underlay + ":" + migratePort})
	qb, err := dialQMP(t, dst, 30*time.Second)
	if err != nil {
		rep.fatalf(t, "QMP on b: %v", err)
	}
	if staged {
		// QEMU holds the TAP now, so its carrier is up: the port must
		// still be blocked, with no entry, and host a still the owner.
		l := testutil.IPLinkByName(t, b.ns, tapB)
		if f := portFlags(t, b, tapB); !f["locked"] || f["flood"] || f["mcast_flood"] || f["bcast_flood"] {
			rep.errorf(t, "host b: staged port %s flags %v after QEMU opened it (operstate %s)", tapB, f, l.OperState)
		}
		if es := b.macEntries(t, moverMAC); hasEntry(es, func(e fdbEntry) bool { return e.Dev == tapB }) {
			rep.errorf(t, "host b: staged port %s has an entry for %s: %v", tapB, moverMAC, es)
		}
		t.Logf("host b: staged %s operstate %s while QEMU waits for the migration", tapB, l.OperState)
	}
	if _, err := qa.cmd("migrate-set-parameters", map[string]any{"max-bandwidth": *migrateBandwidth}, 10*time.Second); err != nil {
		rep.fatalf(t, "%v", err)
	}
	mg.migStart = time.Now()
	if _, err := qa.cmd("migrate", map[string]any{"uri": "tcp:" + b.underlay + ":" + migratePort}, 10*time.Second); err != nil {
		rep.fatalf(t, "%v", err)
	}
	ev, err := qb.waitEvent("RESUME", 5*time.Minute)
	if err != nil {
		mi, _ := qa.queryMigrate()
		rep.fatalf(t, "host b: %v (source: %+v)", err, mi)
	}
	mg.resume = ev.at
	if staged {
		// Activate: take over host a's remote entry (EVPN then moves the
		// MAC with a higher sequence number), then the port opens.
		// The library's Activate (tapbridge activate).
		if _, err := drv.run(t.Context(), "activate", "--vm", "mig-vm", "--bridge", bridgeName,
			"--netns", b.nsPath, "--root", b.root); err != nil {
			rep.fatalf(t, "host b: tapbridge activate: %v", err)
		}
		mg.resumeToActivate = time.Since(ev.at)
		if f := portFlags(t, b, tapB); !f["locked"] || f["flood"] || !f["mcast_flood"] || !f["bcast_flood"] {
			rep.errorf(t, "host b: activated port %s flags %v, want the guard's (locked, no unicast flood, mcast/bcast flood)", tapB, f)
		}
	}
	// The source: wait for completion, stop its QEMU, delete its NIC.
	var mi migrationInfo
	deadline := time.Now().Add(time.Minute)
	for {
		if mi, err = qa.queryMigrate(); err != nil || mi.Status == "completed" || mi.Status == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || mi.Status != "completed" {
		rep.fatalf(t, "migration: %+v (%v)", mi, err)
	}
	mg.downtime, mg.total = time.Duration(mi.Downtime)*time.Millisecond, time.Duration(mi.TotalTime)*time.Millisecond
	_, _ = qa.cmd("quit", nil, 5*time.Second)
	src.qemu.wait(10 * time.Second)
	if err := drv.down(t.Context(), a.nsPath, a.root, "mig-vm"); err != nil {
		rep.fatalf(t, "host a: %v", err)
	}
	srcDeleted := time.Now()

	// The guest goes on pinging on b.
	mg.recovered = waitReplies(dst, 40, 20*time.Second) == nil
	rs := append(pingReplies(src.console.stamped()), pingReplies(dst.console.stamped())...)
	mg.gap = longestGap(rs)
	for _, e := range monA.events() {
		if strings.HasPrefix(strings.ToLower(e.line), moverMAC+" dev "+vxlanDev) && !e.deleted {
			mg.movedOnA = e.at
			break
		}
	}
	rel := func(x time.Time) string {
		if x.IsZero() {
			return "never"
		}
		return x.Sub(mg.destMade).Round(time.Millisecond).String()
	}
	t.Logf("timeline (from destination NIC made): migrate %s, host a's FDB moved the MAC to %s at %s, resume on b %s, source deleted %s; gap from %s (seq %d) to %s (seq %d)",
		rel(mg.migStart), vxlanDev, rel(mg.movedOnA), rel(mg.resume), rel(srcDeleted),
		rel(mg.gap.from.at), mg.gap.from.seq, rel(mg.gap.to.at), mg.gap.to.seq)
	t.Logf("QEMU: total %v, downtime %v, %d MB sent; activation %v after RESUME", mg.total, mg.downtime, mi.RAM.Transferred>>20, mg.resumeToActivate.Round(time.Microsecond))
	for _, h := range []*evpnHost{a, b} {
		t.Logf("host %s FDB for %s: %v\n%s%s", h.name, moverMAC, h.macEntries(t, moverMAC),
			h.vtysh(t, "show evpn mac vni "+vni+" mac "+moverMAC), h.vtysh(t, "show evpn mac vni "+vni+" duplicate"))
	}
	return mg
}

// waitReplies waits until the guest's console shows n ping replies.
func waitReplies(gs *evpnGuest, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if got := len(pingReplies(gs.console.stamped())); got >= n {
			return nil
		}
		if gs.qemu.exited() {
			return fmt.Errorf("guest %s: QEMU exited (%v)", gs.name, gs.qemu.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("guest %s: fewer than %d ping replies within %v", gs.name, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkConverged checks that after a migration no host has a stale or a
// duplicate entry for the mover: b has one static entry on its TAP and
// zebra calls it local; a has one remote entry (extern_learn on the VXLAN
// port, towards b) and zebra calls it remote via b; neither zebra has it
// as a duplicate. It waits a bounded time for the state to settle.
func checkConverged(t *testing.T, rep *report, a, b *evpnHost, tapB string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		problems := convergence(t, a, b, tapB)
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				rep.errorf(t, "after migration: %s", p)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func convergence(t *testing.T, a, b *evpnHost, tapB string) []string {
	var ps []string
	bes := b.macEntries(t, moverMAC)
	if len(bes) != 1 || bes[0].Dev != tapB || bes[0].State != "static" {
		ps = append(ps, fmt.Sprintf("host b FDB for %s = %v, want one static on %s", moverMAC, bes, tapB))
	}
	var bridgeEntries []fdbEntry
	for _, e := range a.macEntries(t, moverMAC) {
		if e.Master == bridgeName {
			bridgeEntries = append(bridgeEntries, e)
		}
	}
	if len(bridgeEntries) != 1 || !remoteOn(bridgeEntries, moverMAC) {
		ps = append(ps, fmt.Sprintf("host a bridge FDB for %s = %v, want one extern_learn on %s", moverMAC, bridgeEntries, vxlanDev))
	}
	if !hasEntry(a.macEntries(t, moverMAC), func(e fdbEntry) bool { return e.Dev == vxlanDev && e.Dst == b.underlay }) {
		ps = append(ps, fmt.Sprintf("host a: no %s entry for %s with dst %s", vxlanDev, moverMAC, b.underlay))
	}
	for _, h := range []*evpnHost{a, b} {
		macs, err := h.evpnMACs(t)
		if err != nil {
			ps = append(ps, fmt.Sprintf("host %s: %v", h.name, err))
			continue
		}
		m, ok := macs[moverMAC]
		want := "local"
		if h == a {
			want = "remote"
		}
		switch {
		case !ok:
			ps = append(ps, fmt.Sprintf("host %s zebra: no %s", h.name, moverMAC))
		case m.Type != want || m.Duplicate || (h == a && m.RemoteVTEP != b.underlay):
			ps = append(ps, fmt.Sprintf("host %s zebra: %s = %+v, want %s, not duplicate", h.name, moverMAC, m, want))
		}
	}
	return ps
}
