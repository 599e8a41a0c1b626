package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// The integration tests of this package share these helpers. Every test
// works in its own throwaway network namespace (testutil.NetNS) holding the
// bridge testBridge; iproute2, run inside that namespace, is the independent
// oracle. Nothing is created in, or changed on, the host namespace.
//
// Tests here do not call t.Parallel: a child process forked while a TAP
// queue file is open holds a duplicate of it until its execve, which keeps
// a non-persistent TAP alive for a moment after its Close (see forkMu in
// tap/tap_integration_linux_test.go). Sequential tests never overlap with
// the parallel ones of the package.

// testBridge is the bridge every fixture makes.
const testBridge = "br0"

// fixture is one test's namespace with a bridge and a provider on it.
type fixture struct {
	ns  int     // the namespace (fd), closed at cleanup
	b   *Bridge // provider on testBridge in ns, closed at cleanup
	dir string  // b's RootDir, a t.TempDir unless the config set one
}

// newFixture makes a namespace with the bridge testBridge (up) and a
// Bridge on it. conf may be nil; its RootDir defaults to a t.TempDir and
// its NetnsPath is always set to the new namespace. It skips the test when
// TAPs or namespaces cannot be made.
func newFixture(t *testing.T, conf *config.Config) *fixture {
	t.Helper()
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	testutil.AddBridge(t, ns, testBridge)
	f := &fixture{ns: ns}
	f.b = f.newBridge(t, conf)
	f.dir = f.b.conf.RootDir
	return f
}

// newBridge makes another Bridge on testBridge in f's namespace (another
// instance if conf.RootDir differs), closed at cleanup. conf may be nil:
// the RootDir is then a fresh t.TempDir.
func (f *fixture) newBridge(t *testing.T, conf *config.Config) *Bridge {
	t.Helper()
	var c config.Config
	if conf != nil {
		c = *conf
	}
	if c.RootDir == "" {
		c.RootDir = t.TempDir()
	}
	c.NetnsPath = testutil.NSPath(f.ns)
	b, err := New(&c, testBridge)
	if err != nil {
		t.Fatalf("New(%+v, %q) = %v, want nil error", c, testBridge, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return b
}

// config calls f.b.Config and fails the test on error.
func (f *fixture) config(t *testing.T, vmID string, nics int, vmCfg *types.VMConfig, existing ...*types.NetworkConfig) []*types.NetworkConfig {
	t.Helper()
	return mustConfig(t, f.b, vmID, nics, vmCfg, existing...)
}

func mustConfig(t *testing.T, b *Bridge, vmID string, nics int, vmCfg *types.VMConfig, existing ...*types.NetworkConfig) []*types.NetworkConfig {
	t.Helper()
	recs, err := b.Config(t.Context(), vmID, nics, vmCfg, existing...)
	if err != nil {
		t.Fatalf("Config(%q, %d, %+v) = %v, want nil error", vmID, nics, vmCfg, err)
	}
	if len(recs) != nics {
		t.Fatalf("Config(%q, %d, %+v) returned %d records, want %d", vmID, nics, vmCfg, len(recs), nics)
	}
	return recs
}

// run runs a command inside f's namespace and returns its output.
func (f *fixture) run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	return testutil.Run(t, f.ns, name, args...)
}

// ip runs `ip ARGS...` inside f's namespace.
func (f *fixture) ip(t *testing.T, args ...string) {
	t.Helper()
	testutil.Run(t, f.ns, "ip", args...)
}

// links returns every link of f's namespace as iproute2 sees it, by name.
func (f *fixture) links(t *testing.T) map[string]*testutil.IPLink {
	t.Helper()
	return testutil.IPLinks(t, f.ns)
}

// link returns one link by name, failing the test if it is absent.
func (f *fixture) link(t *testing.T, name string) *testutil.IPLink {
	t.Helper()
	l := f.links(t)[name]
	if l == nil {
		t.Fatalf("ip link show %s: no such device in the test namespace", name)
	}
	return l
}

// linkNames returns the sorted names of every link of f's namespace.
func (f *fixture) linkNames(t *testing.T) []string {
	t.Helper()
	return slices.Sorted(mapKeys(f.links(t)))
}

// vmTAPs returns, by NIC index, the links of f's namespace whose alias is
// an owner tag of instance inst for vmID, as iproute2 reports them.
func (f *fixture) vmTAPs(t *testing.T, inst owner.Instance, vmID string) map[int]*testutil.IPLink {
	t.Helper()
	out := map[int]*testutil.IPLink{}
	for _, l := range f.links(t) {
		var tag owner.Tag
		if owner.ParseTag(l.Alias, &tag) && tag.Instance == inst && tag.VMID == vmID {
			if prev := out[tag.NIC]; prev != nil {
				t.Fatalf("vm %s nic %d has two TAPs: %s and %s", vmID, tag.NIC, prev.Name, l.Name)
			}
			out[tag.NIC] = l
		}
	}
	return out
}

// taps is vmTAPs for f.b's instance.
func (f *fixture) taps(t *testing.T, vmID string) map[int]*testutil.IPLink {
	t.Helper()
	return f.vmTAPs(t, f.b.inst, vmID)
}

// checkNoTAPs fails the test if vmID has any TAP of f.b's instance.
func (f *fixture) checkNoTAPs(t *testing.T, vmID string) {
	t.Helper()
	if got := f.taps(t, vmID); len(got) > 0 {
		var names []string
		for _, l := range got {
			names = append(names, l.Name)
		}
		slices.Sort(names)
		t.Errorf("vm %s: TAPs %v left in the namespace, want none", vmID, names)
	}
}

// checkLinks fails the test unless the namespace holds exactly the links
// named want.
func (f *fixture) checkLinks(t *testing.T, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := f.linkNames(t); !slices.Equal(got, want) {
		t.Errorf("links in the namespace = %v, want %v", got, want)
	}
}

// fdbEntry is one entry of `bridge -j fdb show`.
type fdbEntry struct {
	MAC    string   `json:"mac"`
	Ifname string   `json:"ifname"`
	Master string   `json:"master"`
	State  string   `json:"state"`
	Flags  []string `json:"flags"`
	VLAN   int      `json:"vlan"`
}

// fdb returns the forwarding entries of testBridge's ports (not the
// bridge's own entries), sorted by port and MAC.
func (f *fixture) fdb(t *testing.T) []fdbEntry {
	t.Helper()
	var all []fdbEntry
	if err := json.Unmarshal(f.run(t, "bridge", "-j", "fdb", "show", "br", testBridge), &all); err != nil {
		t.Fatalf("decode bridge -j fdb show: %v", err)
	}
	out := all[:0]
	for _, e := range all {
		if e.Master == testBridge && e.Ifname != testBridge {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b fdbEntry) int {
		return strings.Compare(a.Ifname+" "+a.MAC, b.Ifname+" "+b.MAC)
	})
	return out
}

// fdbFor returns the entries for mac (case-insensitive).
func (f *fixture) fdbFor(t *testing.T, mac string) []fdbEntry {
	t.Helper()
	var out []fdbEntry
	for _, e := range f.fdb(t) {
		if strings.EqualFold(e.MAC, mac) {
			out = append(out, e)
		}
	}
	return out
}

// checkStaticFDB fails the test unless mac has exactly one FDB entry, a
// static one (not permanent: that would make the MAC local to the bridge)
// on port dev.
func (f *fixture) checkStaticFDB(t *testing.T, mac, dev string) {
	t.Helper()
	got := f.fdbFor(t, mac)
	if len(got) != 1 || got[0].Ifname != dev || got[0].State != "static" {
		t.Errorf("bridge fdb show br %s for %s = %+v, want one static entry on %s", testBridge, mac, got, dev)
	}
}

// brPort is one port of `bridge -j -d link show`.
type brPort struct {
	Ifname   string   `json:"ifname"`
	Master   string   `json:"master"`
	Flags    []string `json:"flags"`
	MTU      int      `json:"mtu"`
	Learning bool     `json:"learning"`
	Flood    bool     `json:"flood"`
	Isolated bool     `json:"isolated"`
	Locked   bool     `json:"locked"`

	McastFlood bool `json:"mcast_flood"`
	BcastFlood bool `json:"bcast_flood"`
}

// ports returns the bridge ports of the namespace by name.
func (f *fixture) ports(t *testing.T) map[string]*brPort {
	t.Helper()
	var all []*brPort
	if err := json.Unmarshal(f.run(t, "bridge", "-j", "-d", "link", "show"), &all); err != nil {
		t.Fatalf("decode bridge -j -d link show: %v", err)
	}
	m := make(map[string]*brPort, len(all))
	for _, p := range all {
		m[p.Ifname] = p
	}
	return m
}

// qdisc is one entry of `tc -j qdisc show`.
type qdisc struct {
	Kind   string `json:"kind"`
	Handle string `json:"handle"`
	Root   bool   `json:"root"`
	Parent string `json:"parent"`
}

// qdiscs returns the qdiscs of dev.
func (f *fixture) qdiscs(t *testing.T, dev string) []qdisc {
	t.Helper()
	var q []qdisc
	if err := json.Unmarshal(f.run(t, "tc", "-j", "qdisc", "show", "dev", dev), &q); err != nil {
		t.Fatalf("decode tc -j qdisc show dev %s: %v", dev, err)
	}
	return q
}

// addrs returns the addresses of dev of family ("inet6", "inet").
func (f *fixture) addrs(t *testing.T, dev, family string) []string {
	t.Helper()
	var out []struct {
		AddrInfo []struct {
			Family string `json:"family"`
			Local  string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(f.run(t, "ip", "-j", "addr", "show", "dev", dev), &out); err != nil {
		t.Fatalf("decode ip -j addr show dev %s: %v", dev, err)
	}
	var a []string
	for _, l := range out {
		for _, ai := range l.AddrInfo {
			if ai.Family == family {
				a = append(a, ai.Local)
			}
		}
	}
	return a
}

// tunData returns iproute2's linkinfo.info_data of the TUN/TAP l.
func tunData(t *testing.T, l *testutil.IPLink) map[string]any {
	t.Helper()
	if l.LinkInfo.Kind != "tun" {
		t.Fatalf("ip -d link show %s: info_kind = %q, want tun", l.Name, l.LinkInfo.Kind)
	}
	return l.LinkInfo.Data
}

// tunFlag returns a boolean of l's info_data ("multi_queue", "persist"...).
func tunFlag(t *testing.T, l *testutil.IPLink, key string) bool {
	t.Helper()
	v, ok := tunData(t, l)[key].(bool)
	if !ok {
		t.Fatalf("ip -d link show %s: info_data[%q] = %v, want a boolean", l.Name, key, tunData(t, l)[key])
	}
	return v
}

// numQueues returns the attached-queue count iproute2 reports for a
// multi-queue TAP (it reports none for single-queue ones: -1 then).
func numQueues(t *testing.T, l *testutil.IPLink) int {
	t.Helper()
	n, ok := tunData(t, l)["numqueues"].(float64)
	if !ok {
		return -1
	}
	return int(n)
}

// addVeth makes a veth pair a (optionally a port of testBridge) and b in
// f's namespace, with extra `ip link add` arguments for a.
func (f *fixture) addVeth(t *testing.T, a, b string, master bool, extra ...string) {
	t.Helper()
	f.ip(t, append([]string{"link", "add", a}, append(extra, "type", "veth", "peer", "name", b)...)...)
	if master {
		f.ip(t, "link", "set", a, "master", testBridge)
	}
}

// addForeignTAP makes a persistent TAP with iproute2, untagged.
func (f *fixture) addForeignTAP(t *testing.T, name string) {
	t.Helper()
	f.ip(t, "tuntap", "add", "dev", name, "mode", "tap")
}

// checkFDs fails the test if the process's fd count differs from before.
func checkFDs(t *testing.T, before int, what string) {
	t.Helper()
	if got := testutil.FDCountBusy(t); got != before {
		t.Errorf("%s: %d open fds, want %d as before", what, got, before)
	}
}

// checkTag fails the test unless l's alias is an owner tag of b's instance
// and hypervisor profile for nic of vmID with rec's guest MAC and queues
// and the given NIC count, and l carries the matching alternative name.
func checkTag(t *testing.T, l *testutil.IPLink, b *Bridge, vmID string, nic, nics int, rec *types.NetworkConfig) {
	t.Helper()
	inst := b.inst
	var tag owner.Tag
	if !owner.ParseTag(l.Alias, &tag) {
		t.Fatalf("owner.ParseTag(alias of %s %q) = false, want true", l.Name, l.Alias)
	}
	want := owner.Tag{
		Instance: inst, VMID: vmID, NIC: nic, NICs: nics, MAC: mustMAC(t, rec.Mac),
		Queues: rec.NumQueues, QueueSize: rec.QueueSize, Hypervisor: b.conf.Hypervisor, Created: tag.Created,
	}
	if tag != want {
		t.Errorf("owner.ParseTag(alias of %s) = %+v, want %+v", l.Name, tag, want)
	}
	if tag.Created <= 0 {
		t.Errorf("owner tag of %s: created %d, want a positive time", l.Name, tag.Created)
	}
	alt := owner.AltName(inst, vmID, nic)
	if !slices.Contains(l.AltNames, alt) {
		t.Errorf("ip link show %s: altnames %v, want %q among them", l.Name, l.AltNames, alt)
	}
}

// mustMAC parses a 6-byte MAC.
func mustMAC(t *testing.T, s string) [6]byte {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		t.Fatalf("net.ParseMAC(%q) = %v, %v; want a 6-byte MAC", s, hw, err)
	}
	return [6]byte(hw)
}

// hostMACOf returns the host-side MAC of the TAP of guest MAC s.
func hostMACOf(t *testing.T, s string) string {
	t.Helper()
	return hostMAC(mustMAC(t, s)).String()
}

// errIs fails the test unless errors.Is(err, target) for every target.
func errIs(t *testing.T, call string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s = nil error, want one wrapping %v", call, targets)
		return
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s = %v, want an error wrapping %v", call, err, target)
		}
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// vmIDs returns n VM IDs "prefix-000", "prefix-001"...
func vmIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return ids
}

// setWrap makes every conn of b (its own, the background deletion's, its
// GC module's) go through wrap, as the conn seam allows (seam_linux.go).
// Call it before b is used concurrently and before RegisterGC.
func (b *Bridge) setWrap(wrap wrapFunc) {
	b.wrap = wrap
	b.conn = wrap(b.conn)
}

// mustHW parses a MAC or fails the test.
func mustHW(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	mac, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// waitForwarding waits (a minute at most) for bridge port name to forward:
// a TAP's port starts forwarding when a queue attaches and brings its
// carrier up (STP is off).
func (f *fixture) waitForwarding(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for f.link(t, name).LinkInfo.SlaveData["state"] != "forwarding" {
		if time.Now().After(deadline) {
			t.Fatalf("port %s: state %v after a minute, want forwarding", name, f.link(t, name).LinkInfo.SlaveData["state"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasGuardFilter reports whether dev carries tapbridge's guard filter on its
// ingress, as `tc -j filter show` reports it: a bpf filter in
// direct-action mode at rtnl.IngressBPFPriority.
func (f *fixture) hasGuardFilter(t *testing.T, dev string) bool {
	t.Helper()
	out, err := testutil.RunErr(f.ns, "tc", "-j", "filter", "show", "dev", dev, "ingress")
	if err != nil {
		return false // no clsact qdisc
	}
	var filters []struct {
		Kind    string         `json:"kind"`
		Pref    int            `json:"pref"`
		Options map[string]any `json:"options"`
	}
	if err := json.Unmarshal(out, &filters); err != nil {
		t.Fatalf("decode tc -j filter show dev %s ingress: %v", dev, err)
	}
	for _, fl := range filters {
		if fl.Kind == "bpf" && fl.Pref == int(rtnl.IngressBPFPriority) && fl.Options["bytecode"] != nil && fl.Options["direct-action"] == true && fl.Options["handle"] == "0x7462" {
			return true
		}
	}
	return false
}
