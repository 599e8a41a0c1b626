package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/types"
)

// links of ls --json, by VM ID and NIC.
func (c *cliEnv) lsLinks(t *testing.T) map[string][]*types.LinkState {
	t.Helper()
	nets := decode[[]types.Network](t, "ls --json", c.ok(t, "ls", "--json"))
	out := map[string][]*types.LinkState{}
	for _, n := range nets {
		out[n.VMID] = n.Links
	}
	return out
}

func (c *cliEnv) bound(t *testing.T, vm string, nic int) []string {
	t.Helper()
	ls := c.lsLinks(t)[vm]
	if nic >= len(ls) {
		t.Fatalf("ls --json: vm %s has %d NICs, want NIC %d", vm, len(ls), nic)
	}
	return ls[nic].Bound
}

func TestIntegrationGuardModesBind(t *testing.T) {
	c := newCLIEnv(t)
	strict := decode[[]types.NetworkConfig](t, "up", c.ok(t, "up", "--bridge", "br0", "--vm", "vm-s", "--guard", "strict", "--json"))
	c.ok(t, "up", "--bridge", "br0", "--vm", "vm-l", "--nics", "2")
	off := decode[[]types.NetworkConfig](t, "up", c.ok(t, "up", "--bridge", "br0", "--vm", "vm-o", "--guard", "off", "--json"))

	ls := c.lsLinks(t)
	for vm, want := range map[string]string{"vm-s": "strict", "vm-l": "l2", "vm-o": "off"} {
		for _, l := range ls[vm] {
			if l.Guard != want || l.Bound == nil || len(l.Bound) != 0 || l.GuardDrops != 0 {
				t.Errorf("ls --json %s nic %d: guard %q bound %#v drops %d, want %q, [], 0", vm, l.NIC, l.Guard, l.Bound, l.GuardDrops, want)
			}
		}
	}
	// The kernel agrees: a guarded port is locked, an off one has no filter.
	for tap, want := range map[string]bool{strict[0].Tap: true, off[0].Tap: false} {
		l := testutil.IPLinkByName(t, c.ns, tap)
		if locked, _ := l.LinkInfo.SlaveData["locked"].(bool); locked != want {
			t.Errorf("TAP %s: bridge port locked %v, want %v", tap, locked, want)
		}
	}

	out := c.ok(t, "bind", "--vm", "vm-l", "--nic", "1", "--ip", "10.0.0.5/24", "--ip", "fd00::5")
	if want := "vm vm-l nic 1: bound 10.0.0.5/24 fd00::5/128\n"; out != want {
		t.Errorf("bind stdout = %q, want %q", out, want)
	}
	if got, want := c.bound(t, "vm-l", 1), []string{"10.0.0.5/24", "fd00::5/128"}; !slices.Equal(got, want) {
		t.Errorf("after bind: ls bound = %q, want %q", got, want)
	}
	if got := c.bound(t, "vm-l", 0); len(got) != 0 {
		t.Errorf("after binding nic 1: nic 0 bound = %q, want none", got)
	}
	// The table has the columns.
	table := c.ok(t, "ls")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if h := strings.Fields(lines[0]); !slices.Equal(h[len(h)-3:], []string{"GUARD", "BOUND", "DROPS"}) {
		t.Errorf("ls header = %q, want it to end with GUARD BOUND DROPS", lines[0])
	}
	var row string
	for _, l := range lines {
		if strings.HasPrefix(l, "vm-l ") && strings.Contains(l, " 1/2 ") {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) < 3 || !slices.Equal(f[len(f)-3:], []string{"l2", "10.0.0.5/24,fd00::5/128", "0"}) {
		t.Errorf("ls row of vm-l nic 1 = %q, want it to end with l2 10.0.0.5/24,fd00::5/128 0", row)
	}

	// Idempotent, and no --ip unbinds.
	c.ok(t, "bind", "--vm", "vm-l", "--nic", "1", "--ip", "10.0.0.5/24", "--ip", "fd00::5")
	if out := c.ok(t, "bind", "--vm", "vm-l", "--nic", "1"); out != "vm vm-l nic 1: unbound\n" {
		t.Errorf("bind without --ip stdout = %q", out)
	}
	if got := c.bound(t, "vm-l", 1); len(got) != 0 {
		t.Errorf("after unbind: bound = %q, want none", got)
	}

	// Bad binds change nothing.
	c.ok(t, "bind", "--vm", "vm-s", "--ip", "10.0.0.9")
	c.fails(t, exitFail, "guard is off", false, "bind", "--vm", "vm-o", "--ip", "10.0.0.6")
	c.fails(t, exitFail, "has no NIC 3", false, "bind", "--vm", "vm-l", "--nic", "3", "--ip", "10.0.0.6")
	c.fails(t, exitFail, "has no NIC 0", false, "bind", "--vm", "vm-x", "--ip", "10.0.0.6")
	c.fails(t, exitUsage, "invalid argument", false, "bind", "--vm", "vm-s", "--ip", "224.0.0.1")
	c.fails(t, exitUsage, "invalid argument", false, "bind", "--vm", "vm-s", "--ip", "10.0.0.7", "--ip", "10.0.0.7")
	c.fails(t, exitUsage, "invalid argument", false, "bind", "--vm", "vm-s", "--nic", "-1", "--ip", "10.0.0.7")
	many := []string{"bind", "--vm", "vm-s"}
	for i := range guard.MaxAddrs + 1 {
		many = append(many, "--ip", fmt.Sprintf("10.0.1.%d", i+1))
	}
	c.fails(t, exitUsage, "invalid argument", false, many...)
	if got := c.bound(t, "vm-s", 0); !slices.Equal(got, []string{"10.0.0.9/32"}) {
		t.Errorf("after bad binds: vm-s bound = %q, want [10.0.0.9/32]", got)
	}
	c.ok(t, "verify", "--vm", "vm-s")
	c.ok(t, "verify", "--vm", "vm-o")
}

func TestIntegrationDHCPScript(t *testing.T) {
	c := newCLIEnv(t)
	recs := decode[[]types.NetworkConfig](t, "up", c.ok(t, "up", "--bridge", "br0", "--vm", "vm-d", "--nics", "2", "--json"))
	mac0, mac1 := recs[0].Mac, recs[1].Mac

	// dnsmasq puts its flags after the wrapper's: the env's --netns and
	// --root come first, as a wrapper passes them.
	c.ok(t, "dhcp-script", "add", mac1, "10.0.0.51", "guest")
	if got := c.bound(t, "vm-d", 1); !slices.Equal(got, []string{"10.0.0.51/32"}) {
		t.Errorf("after add: nic 1 bound = %q, want [10.0.0.51/32]", got)
	}
	if got := c.bound(t, "vm-d", 0); len(got) != 0 {
		t.Errorf("after add for nic 1: nic 0 bound = %q, want none", got)
	}
	c.ok(t, "dhcp-script", "old", mac1, "10.0.0.51")
	t.Setenv("DNSMASQ_MAC", mac1)
	t.Setenv("DNSMASQ_IAID", "12345")
	c.ok(t, "dhcp-script", "add", "00:01:00:01:2c:6b:9e:1a:"+mac1, "fd00::51")
	if got := c.bound(t, "vm-d", 1); !slices.Equal(got, []string{"10.0.0.51/32", "fd00::51/128"}) {
		t.Errorf("after old and a DHCPv6 add: nic 1 bound = %q", got)
	}
	c.ok(t, "dhcp-script", "del", "00:01:00:01:2c:6b:9e:1a:"+mac1, "fd00::51")
	os.Unsetenv("DNSMASQ_MAC")
	c.ok(t, "dhcp-script", "del", strings.ToUpper(mac1), "10.0.0.51")
	if got := c.bound(t, "vm-d", 1); len(got) != 0 {
		t.Errorf("after del: nic 1 bound = %q, want none", got)
	}

	// Not ours, and no-ops: exit 0, nothing printed, nothing bound.
	for _, args := range [][]string{
		{"dhcp-script", "add", "52:54:00:00:00:01", "10.0.0.52"},
		{"dhcp-script", "del", "52:54:00:00:00:01", "10.0.0.52"},
		{"dhcp-script", "init"},
		{"dhcp-script", "tftp", "512", "10.0.0.52", "/srv/tftp/x"},
		{"dhcp-script", "arp-add", mac0, "10.0.0.52"},
		{"dhcp-script", "add", "20-" + mac0 + ":00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd", "10.0.0.52"},
		{"dhcp-script", "add", "00:01:00:01:2c:6b:9e:1a:" + mac0, "fd00::52"}, // no DNSMASQ_MAC
	} {
		if out := c.ok(t, args...); out != "" {
			t.Errorf("tapbridge %q stdout = %q, want none", args, out)
		}
	}
	// Another instance's root (nothing recorded) sees no guest.
	if code, _, stderr := tb(t, "dhcp-script", "--root", t.TempDir(), "--netns", c.path, "add", mac0, "10.0.0.53"); code != exitOK || stderr != "" {
		t.Errorf("dhcp-script with an unrecorded root = %d, %q; want 0, nothing", code, stderr)
	}
	// Bad lease addresses are the library's invalid arguments: exit 2.
	c.fails(t, exitUsage, "invalid argument", false, "dhcp-script", "add", mac0, "255.255.255.255")
	c.fails(t, exitUsage, "MAC", false, "dhcp-script", "add", "not-a-mac", "10.0.0.53")
	for i := range recs {
		if got := c.bound(t, "vm-d", i); len(got) != 0 {
			t.Errorf("after no-ops and bad calls: nic %d bound = %q, want none", i, got)
		}
	}
}

// writeWrapper writes the two-line wrapper script that dnsmasq's
// --dhcp-script points at, for the test binary acting as tapbridge.
func writeWrapper(t *testing.T, c *cliEnv) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tapbridge-dhcp")
	script := fmt.Sprintf("#!/bin/sh\n%s=1 exec %s dhcp-script --root %s --netns %s \"$@\"\n", mainEnv, exe, c.root, c.path)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestIntegrationDNSMasqRestart starts a real dnsmasq on a lease file that
// holds leases of two guests (and a stranger): dnsmasq calls its
// --dhcp-script with old for each at startup, which must bind every lease
// to its NIC again.
func TestIntegrationDNSMasqRestart(t *testing.T) {
	dnsmasq, err := exec.LookPath("dnsmasq")
	if err != nil {
		if dnsmasq = "/usr/sbin/dnsmasq"; func() bool { _, err := os.Stat(dnsmasq); return err != nil }() {
			t.Skip("no dnsmasq")
		}
	}
	c := newCLIEnv(t)
	testutil.Run(t, c.ns, "ip", "link", "set", "lo", "up")
	testutil.Run(t, c.ns, "ip", "addr", "add", "10.0.0.1/24", "dev", "br0")
	a := decode[[]types.NetworkConfig](t, "up", c.ok(t, "up", "--bridge", "br0", "--vm", "vm-a", "--json"))
	b := decode[[]types.NetworkConfig](t, "up", c.ok(t, "up", "--bridge", "br0", "--vm", "vm-b", "--nics", "2", "--json"))

	dir := t.TempDir()
	leases := filepath.Join(dir, "leases")
	exp := time.Now().Add(time.Hour).Unix()
	lf := fmt.Sprintf("%d %s 10.0.0.61 a *\n%d %s 10.0.0.62 b *\n%d 52:54:00:00:00:09 10.0.0.63 stranger *\n", exp, a[0].Mac, exp, b[1].Mac, exp)
	if err := os.WriteFile(leases, []byte(lf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+c.path, "--", dnsmasq, "--no-daemon", "--conf-file=/dev/null",
		"--interface=br0", "--bind-interfaces", "--port=0", "--dhcp-range=10.0.0.50,10.0.0.150,12h",
		"--dhcp-leasefile="+leases, "--dhcp-script="+writeWrapper(t, c), "--pid-file="+filepath.Join(dir, "pid"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ga, gb := c.bound(t, "vm-a", 0), c.bound(t, "vm-b", 1)
		if slices.Equal(ga, []string{"10.0.0.61/32"}) && slices.Equal(gb, []string{"10.0.0.62/32"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after dnsmasq started: vm-a bound %q, vm-b nic 1 bound %q; want 10.0.0.61/32 and 10.0.0.62/32", ga, gb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.bound(t, "vm-b", 0); len(got) != 0 {
		t.Errorf("vm-b nic 0 (no lease) bound = %q, want none", got)
	}
}
