package rtnl_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

// nsEnv is a throwaway network namespace with an rtnl.Conn dialled in it.
// Devices made in it disappear with it.
type nsEnv struct {
	t  testing.TB
	ns int
	c  *rtnl.Conn
}

// newNS skips without the privileges to make namespaces and TAPs.
func newNS(t testing.TB) *nsEnv {
	t.Helper()
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	c, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		t.Fatalf("Dial(NetNS %d) = %v", ns, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return &nsEnv{t: t, ns: ns, c: c}
}

// tap creates a persistent TAP in the namespace, closes its queue files and
// returns its ifindex.
func (e *nsEnv) tap(name string, o tap.Options) uint32 {
	e.t.Helper()
	o.NetNS = e.ns
	o.Persist = true
	d, err := tap.Create(name, &o)
	if err != nil {
		e.t.Fatalf("tap.Create(%s) = %v", name, err)
	}
	if err := d.Close(); err != nil {
		e.t.Fatalf("close TAP %s: %v", name, err)
	}
	return e.index(name)
}

// bridge creates an up bridge and returns its ifindex.
func (e *nsEnv) bridge(name string) uint32 {
	e.t.Helper()
	testutil.AddBridge(e.t, e.ns, name)
	return e.index(name)
}

// veth creates a veth pair.
func (e *nsEnv) veth(a, b string) {
	e.t.Helper()
	e.ip("link", "add", a, "type", "veth", "peer", "name", b)
}

// ip runs iproute2's ip in the namespace.
func (e *nsEnv) ip(args ...string) []byte {
	e.t.Helper()
	return testutil.Run(e.t, e.ns, "ip", args...)
}

// tc runs iproute2's tc in the namespace.
func (e *nsEnv) tc(args ...string) []byte {
	e.t.Helper()
	return testutil.Run(e.t, e.ns, "tc", args...)
}

// index returns a link's ifindex as iproute2 reports it.
func (e *nsEnv) index(name string) uint32 {
	e.t.Helper()
	return uint32(e.link(name).Index)
}

// link returns a link as iproute2 reports it; the test fails if it is absent.
func (e *nsEnv) link(name string) *testutil.IPLink {
	e.t.Helper()
	l := testutil.IPLinkByName(e.t, e.ns, name)
	if l == nil {
		e.t.Fatalf("ip link: no link %s", name)
	}
	return l
}

// names returns the names of the namespace's links per iproute2, sorted.
func (e *nsEnv) names() []string {
	e.t.Helper()
	var names []string
	for n := range testutil.IPLinks(e.t, e.ns) {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// nameOf maps ifindex to name per iproute2, with 0 mapped to "".
func (e *nsEnv) nameOf() map[uint32]string {
	e.t.Helper()
	m := map[uint32]string{0: ""}
	for _, l := range testutil.IPLinks(e.t, e.ns) {
		m[uint32(l.Index)] = l.Name
	}
	return m
}

// jsonOf runs a command with -j output in the namespace and decodes it.
func (e *nsEnv) jsonOf(name string, args ...string) []map[string]any {
	e.t.Helper()
	out := testutil.Run(e.t, e.ns, name, args...)
	var v []map[string]any
	if len(out) == 0 {
		return nil
	}
	if err := json.Unmarshal(out, &v); err != nil {
		e.t.Fatalf("decode %s %v: %v: %s", name, args, err, out)
	}
	return v
}

var operStates = []string{"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"}

var addrGenModes = map[int]string{-1: "", 0: "eui64", 1: "none", 2: "stable_secret", 3: "random"}

var ipFlags = map[string]uint32{
	"UP":          unix.IFF_UP,
	"BROADCAST":   unix.IFF_BROADCAST,
	"LOOPBACK":    unix.IFF_LOOPBACK,
	"POINTOPOINT": unix.IFF_POINTOPOINT,
	"NOARP":       unix.IFF_NOARP,
	"PROMISC":     unix.IFF_PROMISC,
	"MULTICAST":   unix.IFF_MULTICAST,
	"LOWER_UP":    unix.IFF_LOWER_UP,
}

func groupName(g uint32) string {
	if g == 0 {
		return "default"
	}
	return strconv.FormatUint(uint64(g), 10)
}

// checkAgainstIP compares what rtnl decoded for a link with what iproute2
// reports for it.
func checkAgainstIP(t testing.TB, l *rtnl.Link, ipl *testutil.IPLink, nameOf map[uint32]string) {
	t.Helper()
	check := func(field string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("link %s: Link.%s = %#v, want %#v (ip -j -d link)", ipl.Name, field, got, want)
		}
	}
	check("Index", int(l.Index), ipl.Index)
	check("Name", l.Name, ipl.Name)
	check("MTU", int(l.MTU), ipl.MTU)
	check("TxQueueLen", int(l.TxQueueLen), ipl.TxQLen)
	check("Master", nameOf[l.Master], ipl.Master)
	check("Group", groupName(l.Group), ipl.Group)
	check("Alias", l.Alias, ipl.Alias)
	check("AltNames", l.AltNames, ipl.AltNames)
	if ipl.Address != "" {
		check("Address", l.Address.String(), ipl.Address)
	}
	switch {
	case int(l.OperState) >= len(operStates):
		t.Errorf("link %s: Link.OperState = %d, out of range", ipl.Name, l.OperState)
	case !l.Up():
		// An up link's operational state is settled later by the
		// kernel's linkwatch work, so it may change between two reads.
		check("OperState", operStates[l.OperState], ipl.OperState)
	}
	check("Kind", l.Kind, ipl.LinkInfo.Kind)
	check("SlaveKind", l.SlaveKind, ipl.LinkInfo.SlaveKind)
	check("AddrGenMode", addrGenModes[l.AddrGenMode], ipl.AddrGen)
	for name, bit := range ipFlags {
		if name == "LOWER_UP" && l.Up() {
			continue // the carrier of an up bridge settles asynchronously
		}
		check("Flags&IFF_"+name+" != 0", l.Flags&bit != 0, ipl.HasFlag(name))
	}
	check("Up()", l.Up(), ipl.HasFlag("UP"))

	d := ipl.LinkInfo.Data
	switch {
	case l.Kind == "tun" && l.Tun == nil:
		t.Errorf("link %s: Link.Tun = nil for kind tun", ipl.Name)
	case l.Kind == "tun":
		typ := "tun"
		if l.Tun.TAP {
			typ = "tap"
		}
		check("Tun.TAP", typ, d["type"])
		check("Tun.PI", l.Tun.PI, d["pi"])
		check("Tun.VnetHdr", l.Tun.VnetHdr, d["vnet_hdr"])
		check("Tun.MultiQueue", l.Tun.MultiQueue, d["multi_queue"])
		check("Tun.Persist", l.Tun.Persist, d["persist"])
		// iproute2 shows the queue counts of multi-queue devices only.
		if _, ok := d["numqueues"]; ok || l.Tun.MultiQueue {
			check("Tun.Queues", float64(l.Tun.Queues), d["numqueues"])
			check("Tun.DisabledQueues", float64(l.Tun.DisabledQueues), d["numdisabled"])
		}
		check("Tun.Owner", idString(l.Tun.Owner), idString(d["user"]))
		check("Tun.Group", idString(l.Tun.Group), idString(d["group"]))
	case l.Tun != nil:
		t.Errorf("link %s: Link.Tun = %+v for kind %q", ipl.Name, l.Tun, l.Kind)
	}

	s := ipl.LinkInfo.SlaveData
	switch {
	case l.SlaveKind == "bridge" && l.Port == nil:
		t.Errorf("link %s: Link.Port = nil for a bridge port", ipl.Name)
	case l.SlaveKind == "bridge":
		check("Port.Learning", l.Port.Learning, s["learning"])
		check("Port.UnicastFlood", l.Port.UnicastFlood, s["flood"])
		check("Port.Isolated", l.Port.Isolated, s["isolated"])
		check("Port.Locked", l.Port.Locked, s["locked"])
		check("Port.NeighSuppress", l.Port.NeighSuppress, s["neigh_suppress"])
		check("Port.BcastFlood", l.Port.BcastFlood, s["bcast_flood"])
		check("Port.McastFlood", l.Port.McastFlood, s["mcast_flood"])
		if !l.Up() {
			// An up port's state follows its carrier asynchronously.
			check("Port.State", l.Port.State.String(), s["state"])
		}
	case l.Port != nil:
		t.Errorf("link %s: Link.Port = %+v for slave kind %q", ipl.Name, l.Port, l.SlaveKind)
	}
}

// idString prints a uid or gid from rtnl (*uint32) or from ip -j (a number,
// or a name for ids in the passwd or group file; the tests use ids that are
// in neither).
func idString(v any) string {
	switch v := v.(type) {
	case *uint32:
		if v == nil {
			return ""
		}
		return strconv.FormatUint(uint64(*v), 10)
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}
