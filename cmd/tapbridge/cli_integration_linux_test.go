package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

// The integration tests run the command in-process, each in its own
// throwaway namespace holding the bridge br0, with a t.TempDir root; they
// pass --netns and --root on every call and never touch the host's
// namespace. iproute2, run inside the namespace, is the oracle. They do not
// call t.Parallel: a child forked (for iproute2) while another test holds a
// TAP queue file open would keep that file, and its TAP, alive a little
// longer.

// cliEnv is one test's namespace, bridge and instance.
type cliEnv struct {
	ns   int
	path string // --netns value
	root string // --root value
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	testutil.AddBridge(t, ns, "br0")
	return &cliEnv{ns: ns, path: testutil.NSPath(ns), root: t.TempDir()}
}

// tb runs tapbridge with the env's --netns and --root first, so that the
// test's own flags override them.
func (c *cliEnv) tb(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return tb(t, append([]string{args[0], "--netns", c.path, "--root", c.root}, args[1:]...)...)
}

// ok runs tapbridge and fails the test unless it exits 0 with nothing on
// stderr; it returns stdout.
func (c *cliEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := c.tb(t, args...)
	if code != exitOK || stderr != "" {
		t.Fatalf("tapbridge %q = %d, stderr %q; want 0 and no stderr", args, code, stderr)
	}
	return stdout
}

// fails runs tapbridge, expects exit status want and one line on stderr
// (plus indented lines when indented is true) containing msg.
func (c *cliEnv) fails(t *testing.T, want int, msg string, indented bool, args ...string) string {
	t.Helper()
	code, stdout, stderr := c.tb(t, args...)
	if code != want {
		t.Fatalf("tapbridge %q = %d (stderr %q), want %d", args, code, stderr, want)
	}
	if stdout != "" {
		t.Errorf("tapbridge %q stdout = %q, want none", args, stdout)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "tapbridge") || !strings.Contains(stderr, msg) {
		t.Errorf("tapbridge %q stderr = %q, want it to start with tapbridge and contain %q", args, stderr, msg)
	}
	if !indented && len(lines) != 1 {
		t.Errorf("tapbridge %q stderr has %d lines, want 1: %q", args, len(lines), stderr)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "  ") {
			t.Errorf("tapbridge %q stderr line %q is not indented", args, l)
		}
	}
	return stderr
}

// links returns the names of the links in the namespace, sorted.
func (c *cliEnv) links(t *testing.T) []string {
	t.Helper()
	return slices.Sorted(maps.Keys(testutil.IPLinks(t, c.ns)))
}

// checkOnly fails the test unless the namespace holds exactly lo, br0 and
// the TAPs named.
func (c *cliEnv) checkOnly(t *testing.T, taps ...string) {
	t.Helper()
	want := append([]string{"br0", "lo"}, taps...)
	slices.Sort(want)
	if got := c.links(t); !slices.Equal(got, want) {
		t.Errorf("links in the namespace = %v, want %v", got, want)
	}
}

func decode[T any](t *testing.T, what, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s %q: %v", what, s, err)
	}
	return v
}

func TestIntegrationUpLsVerifyDown(t *testing.T) {
	c := newCLIEnv(t)
	fds := testutil.FDCount(t)

	out := c.ok(t, "up", "--bridge", "br0", "--vm", "vm-a", "--nics", "2", "--cpus", "2", "--json")
	recs := decode[[]types.NetworkConfig](t, "up --json", out)
	if len(recs) != 2 {
		t.Fatalf("up --nics 2 --json = %d records, want 2", len(recs))
	}
	for i, r := range recs {
		if r.NumQueues != 4 || r.QueueSize != 512 || r.Backend != "bridge" || r.BridgeDev != "br0" || r.Tap == "" || r.Mac == "" {
			t.Errorf("up record %d = %+v, want 4 queues of 512, backend bridge, bridge br0, a TAP and a MAC", i, r)
		}
		l := testutil.IPLinkByName(t, c.ns, r.Tap)
		if l == nil || l.Master != "br0" || !l.HasFlag("UP") {
			t.Errorf("TAP %s = %+v, want it up on br0", r.Tap, l)
		}
	}

	// Idempotent: the same records again.
	again := decode[[]types.NetworkConfig](t, "up --json", c.ok(t, "up", "--bridge", "br0", "--vm", "vm-a", "--nics", "2", "--cpus", "2", "--json"))
	if !slices.Equal(again, recs) {
		t.Errorf("second up = %+v, want the same records %+v", again, recs)
	}

	// Table output; recorded bridge and namespace serve the next commands.
	table := c.ok(t, "up", "--bridge", "br0", "--vm", "vm-b", "--queue-size", "1024", "--hypervisor", "firecracker")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NIC") || !strings.Contains(lines[1], "btvm-b-0") || !strings.Contains(lines[1], "1024") {
		t.Errorf("up table = %q, want a header and one row for btvm-b-0 with queue size 1024", table)
	}

	nets := decode[[]types.Network](t, "ls --json", c.ok(t, "ls", "--json"))
	if len(nets) != 2 || nets[0].VMID != "vm-a" || nets[1].VMID != "vm-b" {
		t.Fatalf("ls --json = %+v, want vm-a and vm-b", nets)
	}
	for _, n := range nets {
		if len(n.NICs) != len(n.Links) {
			t.Fatalf("ls vm %s: %d NICs and %d links, want the same", n.VMID, len(n.NICs), len(n.Links))
		}
		for i, l := range n.Links {
			if l.Master != "br0" || !l.Up || l.Deleting || l.AttachedQueues != 0 || l.NIC != i || l.Created.IsZero() {
				t.Errorf("ls vm %s link %d = %+v, want up on br0, NIC %d, idle, with a creation time", n.VMID, i, l, i)
			}
		}
	}
	if a := nets[0]; !a.Links[0].MultiQueue || *a.NICs[0] != recs[0] || *a.NICs[1] != recs[1] {
		t.Errorf("ls vm-a = %+v %+v, want multi-queue and the up records %+v", *a.NICs[0], *a.Links[0], recs)
	}
	if b := nets[1]; b.Links[0].MultiQueue || b.NICs[0].QueueSize != 1024 {
		t.Errorf("ls vm-b = %+v %+v, want single-queue (firecracker) with queue size 1024", *b.NICs[0], *b.Links[0])
	}
	lsTable := c.ok(t, "ls")
	for _, want := range []string{"VM", "ATTACHED", "btvm-a-0", "btvm-a-1", "btvm-b-0", "up, on br0", "0/2", "1/2"} {
		if !strings.Contains(lsTable, want) {
			t.Errorf("ls = %q, want it to contain %q", lsTable, want)
		}
	}

	// verify: intact, then broken.
	if out := c.ok(t, "verify", "--vm", "vm-a"); !strings.Contains(out, "vm vm-a: intact") {
		t.Errorf("verify vm-a = %q, want intact", out)
	}
	c.ok(t, "verify", "--vm", "vm-b", "--hypervisor", "firecracker")
	c.fails(t, exitFail, "multi-queue true, but firecracker", true, "verify", "--vm", "vm-a", "--hypervisor", "firecracker")
	testutil.Run(t, c.ns, "ip", "link", "set", recs[0].Tap, "nomaster")
	testutil.Run(t, c.ns, "ip", "link", "set", recs[1].Tap, "down")
	stderr := c.fails(t, exitFail, "network differs from its configuration", true, "verify", "--vm", "vm-a")
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 3 ||
		!strings.Contains(lines[1], "not a port of br0") || !strings.Contains(lines[2], "down") {
		t.Errorf("verify broken vm-a stderr = %q, want a first line and two indented differences", stderr)
	}
	if ls := c.ok(t, "ls"); !strings.Contains(ls, "up, no bridge") || !strings.Contains(ls, "down, on br0") {
		t.Errorf("ls with a broken vm-a = %q, want 'up, no bridge' and 'down, on br0'", ls)
	}
	// up repairs it.
	c.ok(t, "up", "--bridge", "br0", "--vm", "vm-a", "--nics", "2", "--cpus", "2")
	c.ok(t, "verify", "--vm", "vm-a")

	// A VMM holding a TAP shows in ls.
	dev, err := tap.Open(recs[0].Tap, &tap.Options{MultiQueue: true, Queues: 2, VnetHdr: true, NetNS: c.ns})
	if err != nil {
		t.Fatalf("tap.Open(%s) = %v", recs[0].Tap, err)
	}
	nets = decode[[]types.Network](t, "ls --json", c.ok(t, "ls", "--json"))
	if got := nets[0].Links[0].AttachedQueues; got != 2 {
		t.Errorf("ls vm-a nic 0 attached queues = %d, want 2", got)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}

	// down, idempotently; then nothing is left.
	if out := c.ok(t, "down", "--vm", "vm-a", "--vm", "vm-b"); out != "" {
		t.Errorf("down stdout = %q, want none", out)
	}
	c.checkOnly(t)
	c.ok(t, "down", "--vm", "vm-a", "--vm", "vm-b", "--vm", "vm-never")
	if out := c.ok(t, "ls"); !strings.HasPrefix(out, "no VMs") {
		t.Errorf("ls after down = %q, want no VMs", out)
	}
	if out := c.ok(t, "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("ls --json after down = %q, want []", out)
	}
	c.fails(t, exitFail, "vm vm-a has no TAPs", false, "verify", "--vm", "vm-a")
	if got := testutil.FDCount(t); got != fds {
		t.Errorf("fd count = %d, want %d as before", got, fds)
	}
}

func TestIntegrationUpRecoverMACs(t *testing.T) {
	c := newCLIEnv(t)
	macs := []string{"02:00:00:00:aa:01", "02:00:00:00:aa:02"}
	out := c.ok(t, "up", "--bridge", "br0", "--vm", "vm-r", "--nics", "2", "--mac", macs[0], "--mac", macs[1], "--json")
	recs := decode[[]types.NetworkConfig](t, "up --json", out)
	for i, r := range recs {
		if r.Mac != macs[i] {
			t.Errorf("up --mac record %d MAC = %s, want %s", i, r.Mac, macs[i])
		}
	}
	// One --mac for two NICs: the second gets a fresh MAC.
	c.ok(t, "down", "--vm", "vm-r")
	recs = decode[[]types.NetworkConfig](t, "up --json", c.ok(t, "up", "--bridge", "br0", "--vm", "vm-r", "--nics", "2", "--mac", macs[1], "--json"))
	if recs[0].Mac != macs[1] || recs[1].Mac == macs[1] {
		t.Errorf("up with one --mac = %s %s, want %s and another", recs[0].Mac, recs[1].Mac, macs[1])
	}
}

func TestIntegrationBadInputs(t *testing.T) {
	c := newCLIEnv(t)
	c.ok(t, "up", "--bridge", "br0", "--vm", "vm-keep")
	// A bridge that exists only in another namespace.
	testutil.AddBridge(t, testutil.NetNS(t), "brother0")
	fds := testutil.FDCount(t)
	cases := []struct {
		name string
		code int
		msg  string
		args []string
	}{
		{"missing bridge", exitFail, "bridge nosuch does not exist in network namespace", []string{"up", "--bridge", "nosuch", "--vm", "vm-1"}},
		{"not a bridge", exitFail, "not a bridge", []string{"up", "--bridge", "lo", "--vm", "vm-1"}},
		{"bridge in another namespace", exitFail, "bridge brother0 does not exist in network namespace", []string{"up", "--bridge", "brother0", "--vm", "vm-1"}},
		{"ls bridge in another namespace", exitFail, "bridge brother0 does not exist", []string{"ls", "--bridge", "brother0"}},
		{"bridge name too long", exitUsage, "18 bytes, the limit is 15", []string{"up", "--bridge", "br0123456789abcdef", "--vm", "vm-1"}},
		{"verify bridge name too long", exitUsage, "18 bytes, the limit is 15", []string{"verify", "--bridge", "br0123456789abcdef", "--vm", "vm-keep"}},
		{"cpus 257", exitUsage, "257 CPUs", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--cpus", "257"}},
		{"cpus -1", exitUsage, "-1 CPUs", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--cpus", "-1"}},
		{"cpus beyond int", exitUsage, "invalid value", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--cpus", "99999999999999999999"}},
		{"nics -1", exitUsage, "-1 NICs", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--nics", "-1"}},
		{"200-byte VM ID", exitUsage, "invalid VM ID", []string{"up", "--bridge", "br0", "--vm", strings.Repeat("a", 200)}},
		{"down with a bad ID among duplicates", exitUsage, "invalid VM ID", []string{"down", "--vm", "vm-keep", "--vm", "vm-keep", "--vm", "vm/x"}},
		{"broadcast MAC", exitUsage, "multicast", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--mac", "ff:ff:ff:ff:ff:ff"}},
		{"bad VM ID", exitUsage, "invalid VM ID", []string{"up", "--bridge", "br0", "--vm", "vm:1"}},
		{"nics 0", exitUsage, "0 NICs", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--nics", "0"}},
		{"multicast MAC", exitUsage, "multicast", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--mac", "03:00:00:00:00:01"}},
		{"host-side MAC", exitUsage, "reserved for TAP host sides", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--mac", "fe:00:00:00:00:01"}},
		{"queue size", exitUsage, "queue size 100", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--queue-size", "100"}},
		{"missing namespace", exitFail, "no such file", []string{"up", "--bridge", "br0", "--vm", "vm-1", "--netns", "tapbridge-test-no-such-ns"}},
		{"ls missing bridge", exitFail, "bridge nosuch does not exist", []string{"ls", "--bridge", "nosuch"}},
		{"verify missing bridge", exitFail, "bridge nosuch does not exist", []string{"verify", "--bridge", "nosuch", "--vm", "vm-keep"}},
		{"gc live file missing", exitFail, "live file", []string{"gc", "--live-file", filepath.Join(t.TempDir(), "none")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.fails(t, tc.code, tc.msg, false, tc.args...)
			c.checkOnly(t, "btvm-keep-0")
		})
	}
	if got := testutil.FDCount(t); got != fds {
		t.Errorf("fd count = %d, want %d as before", got, fds)
	}
	// The failed ups recorded nothing else: the good bridge is still the
	// recorded one, and the VM is intact.
	c.ok(t, "verify", "--vm", "vm-keep")
}

func TestIntegrationBridgeGone(t *testing.T) {
	c := newCLIEnv(t)
	c.ok(t, "up", "--bridge", "br0", "--vm", "vm-1", "--nics", "2")
	testutil.Run(t, c.ns, "ip", "link", "del", "br0")
	c.fails(t, exitFail, "bridge br0 does not exist in network namespace "+c.path, false, "ls")
	c.fails(t, exitFail, "bridge br0 does not exist", false, "verify", "--vm", "vm-1")
	// down and gc need no bridge.
	rep := decode[gcReport](t, "gc --json", c.ok(t, "gc", "--live", "vm-1", "--dry-run", "--json"))
	if len(rep.Scanned) != 2 || len(rep.Orphans) != 0 {
		t.Errorf("gc --dry-run without the bridge = %+v, want 2 scanned, no orphans", rep)
	}
	c.ok(t, "down", "--vm", "vm-1")
	if got := c.links(t); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("links after down = %v, want only lo", got)
	}
}

func TestIntegrationGC(t *testing.T) {
	c := newCLIEnv(t)
	// No grace, so that fresh TAPs can be collected.
	for _, vm := range []string{"vm-1", "vm-2", "vm-3"} {
		c.ok(t, "up", "--bridge", "br0", "--vm", vm, "--gc-grace", "-1s")
	}
	all := []string{"btvm-1-0", "btvm-2-0", "btvm-3-0"}

	// Dry run: reclaims nothing, says why.
	rep := decode[gcReport](t, "gc --dry-run --json", c.ok(t, "gc", "--live", "vm-1", "--dry-run", "--json"))
	if !rep.DryRun || !slices.Equal(rep.Scanned, all) || !slices.Equal(rep.Orphans, all[1:]) ||
		len(rep.Reclaimed) != 0 || len(rep.Failed) != 0 || rep.Live != 1 || rep.Grace != "-1s" || rep.Netns != c.path {
		t.Errorf("gc --dry-run --json = %+v, want vm-2 and vm-3 as orphans, nothing reclaimed", rep)
	}
	wantWhy := map[string]string{"btvm-1-0": "live", "btvm-2-0": "not-live", "btvm-3-0": "not-live"}
	if len(rep.Reasons) != 3 {
		t.Fatalf("gc --dry-run reasons = %+v, want 3", rep.Reasons)
	}
	for _, r := range rep.Reasons {
		if r.Reason != wantWhy[r.Tap] || r.Reclaim != (r.Reason == "not-live") || r.VMID == "" {
			t.Errorf("gc --dry-run reason %+v, want %s", r, wantWhy[r.Tap])
		}
	}
	c.checkOnly(t, all...)
	table := c.ok(t, "gc", "--live", "vm-1", "--dry-run")
	for _, want := range []string{"ACTION", "keep", "owner vm-1 is live", "reclaim", "owner vm-2 is not live", "would reclaim 2 of 3 TAPs"} {
		if !strings.Contains(table, want) {
			t.Errorf("gc --dry-run = %q, want it to contain %q", table, want)
		}
	}
	c.checkOnly(t, all...)

	// A TAP held open is kept even when its VM is not live.
	dev, err := tap.Open("btvm-2-0", &tap.Options{VnetHdr: true, NetNS: c.ns})
	if err != nil {
		t.Fatalf("tap.Open(btvm-2-0) = %v", err)
	}
	rep = decode[gcReport](t, "gc --json", c.ok(t, "gc", "--live", "vm-1", "--json"))
	if !slices.Equal(rep.Reclaimed, all[2:]) || !slices.Equal(rep.Orphans, all[2:]) || rep.DryRun || len(rep.Reasons) != 0 {
		t.Errorf("gc with btvm-2-0 open = %+v, want only btvm-3-0 reclaimed", rep)
	}
	c.checkOnly(t, all[:2]...)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}

	// A live file protecting vm-1: vm-2 goes.
	liveFile := filepath.Join(t.TempDir(), "live")
	if err := os.WriteFile(liveFile, []byte("# running VMs\nvm-1\n\nvm-9 # not ours\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.ok(t, "gc", "--live-file", liveFile)
	if !strings.Contains(out, "reclaimed 1") || !strings.Contains(out, "reclaimed: btvm-2-0") {
		t.Errorf("gc --live-file = %q, want btvm-2-0 reclaimed", out)
	}
	c.checkOnly(t, "btvm-1-0")

	// The explicit empty live set reclaims the rest.
	rep = decode[gcReport](t, "gc --json", c.ok(t, "gc", "--live", "", "--json"))
	if !slices.Equal(rep.Reclaimed, all[:1]) || rep.Live != 0 {
		t.Errorf("gc --live '' = %+v, want btvm-1-0 reclaimed", rep)
	}
	c.checkOnly(t)

	// Nothing left: an empty report, with empty lists rather than nulls.
	out = c.ok(t, "gc", "--live", "", "--json")
	for _, want := range []string{`"scanned": []`, `"orphans": []`, `"reclaimed": []`, `"failed": {}`} {
		if !strings.Contains(out, want) {
			t.Errorf("gc --json with nothing to do = %q, want it to contain %s", out, want)
		}
	}
}

func TestIntegrationGCGrace(t *testing.T) {
	c := newCLIEnv(t)
	c.ok(t, "up", "--bridge", "br0", "--vm", "vm-1") // default grace: 1m
	rep := decode[gcReport](t, "gc --json", c.ok(t, "gc", "--live", "", "--dry-run", "--json"))
	if len(rep.Orphans) != 0 || len(rep.Reasons) != 1 || rep.Reasons[0].Reason != "young" || rep.Grace != "1m0s" {
		t.Errorf("gc --dry-run of a fresh TAP = %+v, want it kept as young (grace 1m0s)", rep)
	}
	c.ok(t, "gc", "--live", "", "--grace", "1m") // the recorded grace: accepted
	c.checkOnly(t, "btvm-1-0")
	// --grace overrides the recorded grace for one cycle.
	rep = decode[gcReport](t, "gc --grace -1s --json", c.ok(t, "gc", "--live", "", "--grace", "-1s", "--dry-run", "--json"))
	if !slices.Equal(rep.Orphans, []string{"btvm-1-0"}) || rep.Grace != "-1s" {
		t.Errorf("gc --grace -1s --dry-run = %+v, want btvm-1-0 as an orphan", rep)
	}
	// up keeps the recorded grace unless told otherwise.
	c.ok(t, "up", "--bridge", "br0", "--vm", "vm-2", "--gc-grace", "-1s")
	c.ok(t, "up", "--bridge", "br0", "--vm", "vm-3")
	rep = decode[gcReport](t, "gc --json", c.ok(t, "gc", "--live", "vm-3", "--json"))
	if !slices.Equal(rep.Reclaimed, []string{"btvm-1-0", "btvm-2-0"}) || rep.Grace != "-1s" {
		t.Errorf("gc after up --gc-grace -1s = %+v, want vm-1 and vm-2 reclaimed", rep)
	}
	c.checkOnly(t, "btvm-3-0")
}
