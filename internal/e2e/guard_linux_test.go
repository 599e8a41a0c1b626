package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/internal/frames"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/types"
)

// movedIP is the address of the subnet the guest moves to, outside the
// DHCP range: never bound.
const movedIP = "10.99.0.200"

// TestE2EGuard boots the guest over a guarded TAP, with dnsmasq's
// --dhcp-script pointing at a two-line wrapper around the tapbridge binary:
// the lease gets bound to the NIC, the guest pings the gateway and the
// bridge's IPv6 link-local address, then moves to an unbound address,
// where its pings fail and the guard's drop count moves. Run in the
// default mode (l2) and in strict, where the lease itself comes while the
// NIC is still unbound.
func TestE2EGuard(t *testing.T) {
	rep := beginE2E(t)
	dir := t.TempDir()
	rep.stage = "build tapbridge"
	drv := buildCLI(t, rep, dir)
	rep.stage = "guest artefacts"
	g := prepareGuest(t, rep, cacheDir(), dir)
	accel := pickAccel(t, rep)
	for _, mode := range []string{"", "strict"} {
		name := "default"
		if mode != "" {
			name = mode
		}
		t.Run(name, func(t *testing.T) {
			rep.stage = "guard " + name
			runGuardCase(t, rep, drv, g, accel, mode)
		})
	}
}

func runGuardCase(t *testing.T, rep *report, drv cli, g *guest, accel, mode string) {
	ns := testutil.NetNS(t)
	nsPath := testutil.NSPath(ns)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	tc := e2eCase{name: "guard", vm: "e2e-guard", cpus: 1}

	testutil.Run(t, ns, "ip", "link", "set", "lo", "up")
	testutil.AddBridge(t, ns, bridgeName)
	testutil.Run(t, ns, "ip", "addr", "add", gatewayCIDR, "dev", bridgeName)
	brMAC, err := net.ParseMAC(testutil.IPLinkByName(t, ns, bridgeName).Address)
	if err != nil {
		rep.fatalf(t, "bridge MAC: %v", err)
	}
	ll6 := frames.LinkLocal([6]byte(brMAC))

	// dnsmasq takes a script path only: the wrapper passes the flags.
	wrapper := filepath.Join(dir, "tapbridge-dhcp")
	script := fmt.Sprintf("#!/bin/sh\nexec %s dhcp-script --root %s --netns %s \"$@\"\n", drv.bin, root, nsPath)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		rep.fatalf(t, "%v", err)
	}
	leases := filepath.Join(dir, "leases")
	dns, err := startProc(t, "dnsmasq", "nsenter", "--net="+nsPath, "--",
		dnsmasqPath(), "--no-daemon", "--conf-file=/dev/null",
		"--interface="+bridgeName, "--bind-interfaces", "--port=0",
		"--dhcp-range="+dhcpRange, "--dhcp-option=option:router,"+gateway,
		"--dhcp-leasefile="+leases, "--no-ping", "--log-dhcp", "--dhcp-script="+wrapper)
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", dns.out.String())
		}
	})
	if err := dns.waitOutput("DHCP, IP range", 30*time.Second); err != nil {
		rep.fatalf(t, "dnsmasq: %v", err)
	}

	args := []string{"up", "--bridge", bridgeName, "--vm", tc.vm, "--hypervisor", "qemu",
		"--cpus", "1", "--netns", nsPath, "--root", root, "--json"}
	if mode != "" {
		args = append(args, "--guard", mode)
	}
	out, err := drv.run(t.Context(), args...)
	if err != nil {
		rep.fatalf(t, "tapbridge up: %v", err)
	}
	var nics []nic
	if err := json.Unmarshal(out, &nics); err != nil {
		rep.fatalf(t, "tapbridge up --json: %v", err)
	}
	n := checkNICs(t, rep, nics, tc)
	wantMode := mode
	if wantMode == "" {
		wantMode = "l2"
	}
	if l := lsLink(t, rep, drv, nsPath, root, tc.vm); l.Guard != wantMode || len(l.Bound) != 0 {
		rep.errorf(t, "before boot: ls guard %q bound %q, want %s and nothing bound", l.Guard, l.Bound, wantMode)
	}

	console := filepath.Join(dir, "console.log")
	argv, err := qemuArgs(g, n, tc, accel, console)
	if err != nil {
		rep.fatalf(t, "launch arguments: %v", err)
	}
	for i := range argv {
		if argv[i] == "-append" {
			argv[i+1] += " e2e.mode=move e2e.ll6=" + ll6.String() + " e2e.moveto=" + movedIP
		}
	}
	qemu, err := startProc(t, "qemu", append([]string{"nsenter", "--net=" + nsPath, "--"}, argv...)...)
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(console)
			t.Logf("QEMU output:\n%s\nguest console:\n%s", qemu.out.String(), log)
		}
	})
	// Watch the binding appear (tapbridge ls --json) while the guest runs;
	// the drops counted when it appeared are the baseline for the move.
	t0 := time.Now()
	var boundAt time.Duration
	var bound []string
	var dropsBound uint64
	for !qemu.wait(250 * time.Millisecond) {
		if time.Since(t0) > *bootTimeout {
			qemu.kill()
			rep.fatalf(t, "guest did not power off within %v (killed QEMU)", *bootTimeout)
		}
		if bound == nil {
			if l := lsLink(t, rep, drv, nsPath, root, tc.vm); len(l.Bound) > 0 {
				bound, dropsBound, boundAt = l.Bound, l.GuardDrops, time.Since(t0)
			}
		}
	}
	log, err := os.ReadFile(console)
	if err != nil {
		rep.fatalf(t, "read guest console: %v", err)
	}
	m := parseMarkers(log)
	t.Logf("guest ran %v (%s, guard %s): %s", time.Since(t0).Round(time.Millisecond), accel, wantMode, strings.Join(m.lines, " | "))
	ip := m.val("E2E-LEASE")
	if ip == "" {
		rep.fatalf(t, "guest got no DHCP lease (guard %s, unbound NIC)", wantMode)
	}
	if want := []string{ip + "/32"}; !slices.Equal(bound, want) {
		rep.errorf(t, "bound by dnsmasq's dhcp-script: %q, want %q", bound, want)
	}
	final := lsLink(t, rep, drv, nsPath, root, tc.vm)
	t.Logf("host: lease %s bound %q %v after QEMU started (drops %d then); at the end guard %s bound %q drops %d",
		ip, bound, boundAt.Round(time.Millisecond), dropsBound, final.Guard, final.Bound, final.GuardDrops)
	for _, k := range []string{"E2E-PING-OK", "E2E-PING6-OK", "E2E-MOVED-PING-FAIL"} {
		if !m.has(k) {
			rep.errorf(t, "guest console has no %s (markers: %q)", k, m.lines)
		}
	}
	if got := strings.Fields(m.val("E2E-MOVED")); !slices.Equal(got, []string{movedIP}) {
		rep.errorf(t, "guest's IPv4 addresses after the move = %q, want only %s", got, movedIP)
	}
	if final.GuardDrops <= dropsBound {
		rep.errorf(t, "guard drops %d after the move, %d when the lease was bound: want more", final.GuardDrops, dropsBound)
	}
	if _, err := drv.run(t.Context(), "verify", "--vm", tc.vm, "--netns", nsPath, "--root", root); err != nil {
		rep.errorf(t, "tapbridge verify: %v", err)
	}
	if err := drv.down(t.Context(), nsPath, root, tc.vm); err != nil {
		rep.fatalf(t, "tapbridge down: %v", err)
	}
}

// lsLink is the VM's first NIC as `tapbridge ls --json` shows it.
func lsLink(t *testing.T, rep *report, drv cli, nsPath, root, vm string) *types.LinkState {
	t.Helper()
	out, err := drv.run(t.Context(), "ls", "--netns", nsPath, "--root", root, "--json")
	if err != nil {
		rep.fatalf(t, "tapbridge ls: %v", err)
	}
	var nets []types.Network
	if err := json.Unmarshal(out, &nets); err != nil {
		rep.fatalf(t, "tapbridge ls --json: %v", err)
	}
	for _, nw := range nets {
		if nw.VMID == vm && len(nw.Links) > 0 {
			return nw.Links[0]
		}
	}
	rep.fatalf(t, "tapbridge ls --json: no VM %s in %s", vm, out)
	return nil
}
