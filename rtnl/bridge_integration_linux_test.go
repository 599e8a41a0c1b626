package rtnl_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

func TestIntegrationSetBridgePort(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	e.bridge("br0")
	idx := e.tap("t0", tap.Options{})
	e.ip("link", "set", "t0", "master", "br0")

	// The kernel's defaults for a new port (disabled: no carrier).
	state := rtnl.PortInfo{Learning: true, UnicastFlood: true, BcastFlood: true, McastFlood: true}
	steps := []struct {
		name string
		set  rtnl.BridgePort
	}{
		{"learning off", rtnl.BridgePort{Learning: ptr(false)}},
		{"learning on", rtnl.BridgePort{Learning: ptr(true)}},
		{"flood off", rtnl.BridgePort{UnicastFlood: ptr(false)}},
		{"flood on", rtnl.BridgePort{UnicastFlood: ptr(true)}},
		{"isolated on", rtnl.BridgePort{Isolated: ptr(true)}},
		{"isolated off", rtnl.BridgePort{Isolated: ptr(false)}},
		{"locked on", rtnl.BridgePort{Locked: ptr(true)}},
		{"locked off", rtnl.BridgePort{Locked: ptr(false)}},
		{"neigh_suppress on", rtnl.BridgePort{NeighSuppress: ptr(true)}},
		{"neigh_suppress off", rtnl.BridgePort{NeighSuppress: ptr(false)}},
		{"bcast_flood off", rtnl.BridgePort{BcastFlood: ptr(false)}},
		{"bcast_flood on", rtnl.BridgePort{BcastFlood: ptr(true)}},
		{"mcast_flood off", rtnl.BridgePort{McastFlood: ptr(false)}},
		{"mcast_flood on", rtnl.BridgePort{McastFlood: ptr(true)}},
		{"all flipped", rtnl.BridgePort{
			Learning: ptr(false), UnicastFlood: ptr(false), Isolated: ptr(true), Locked: ptr(true), NeighSuppress: ptr(true),
			BcastFlood: ptr(false), McastFlood: ptr(false),
		}},
		{"nothing", rtnl.BridgePort{}},
		{"all back", rtnl.BridgePort{
			Learning: ptr(true), UnicastFlood: ptr(true), Isolated: ptr(false), Locked: ptr(false), NeighSuppress: ptr(false),
			BcastFlood: ptr(true), McastFlood: ptr(true),
		}},
	}
	for _, s := range steps {
		if err := e.c.SetBridgePort(ctx, idx, &s.set); err != nil {
			t.Fatalf("%s: SetBridgePort(%d, %+v) = %v", s.name, idx, s.set, err)
		}
		applyPort(&state, &s.set)
		if got := bridgeLinkPort(e, "t0"); got != state {
			t.Errorf("%s: bridge link shows %+v, want %+v", s.name, got, state)
		}
		l, err := e.c.LinkByIndex(ctx, idx)
		if err != nil || l.Port == nil || *l.Port != state {
			t.Errorf("%s: LinkByIndex(%d).Port = %+v, %v, want %+v", s.name, idx, l.Port, err, state)
		}
	}
}

// applyPort applies the settings of p to what the kernel should report.
func applyPort(st *rtnl.PortInfo, p *rtnl.BridgePort) {
	apply := func(v *bool, p *bool) {
		if p != nil {
			*v = *p
		}
	}
	apply(&st.Learning, p.Learning)
	apply(&st.UnicastFlood, p.UnicastFlood)
	apply(&st.Isolated, p.Isolated)
	apply(&st.Locked, p.Locked)
	apply(&st.NeighSuppress, p.NeighSuppress)
	apply(&st.BcastFlood, p.BcastFlood)
	apply(&st.McastFlood, p.McastFlood)
	if p.State != nil {
		st.State = *p.State
	}
}

// bridgeLinkPort returns a port's settings as `bridge -j -d link` shows
// them.
func bridgeLinkPort(e *nsEnv, dev string) rtnl.PortInfo {
	e.t.Helper()
	ports := e.jsonOf("bridge", "-j", "-d", "link", "show", "dev", dev)
	if len(ports) != 1 {
		e.t.Fatalf("bridge -j -d link show dev %s = %v, want one port", dev, ports)
	}
	p := ports[0]
	var st rtnl.PortInfo
	for s := rtnl.PortDisabled; s <= rtnl.PortBlocking; s++ {
		if p["state"] == s.String() {
			st.State = s
		}
	}
	st.Learning = p["learning"] == true
	st.UnicastFlood = p["flood"] == true
	st.Isolated = p["isolated"] == true
	st.Locked = p["locked"] == true
	st.NeighSuppress = p["neigh_suppress"] == true
	st.BcastFlood = p["bcast_flood"] == true
	st.McastFlood = p["mcast_flood"] == true
	return st
}

// waitOperUp waits up to 3 s for a link's operational state to be UP.
func waitOperUp(e *nsEnv, dev string) {
	e.t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if e.link(dev).OperState == "UP" {
			return
		}
	}
	e.t.Fatalf("link %s is not operationally up after 3s", dev)
}

// waitPortState waits up to 2 s for a port to reach state want.
func waitPortState(e *nsEnv, dev string, want rtnl.PortState) {
	e.t.Helper()
	var got rtnl.PortState
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = bridgeLinkPort(e, dev).State; got == want {
			return
		}
	}
	e.t.Fatalf("port %s is %s after 2s, want %s", dev, got, want)
}

// TestIntegrationBridgePortState sets the STP state of a port with carrier
// (a veth whose peer is up) and of one without (a TAP no process holds).
func TestIntegrationBridgePortState(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	e.bridge("br0")
	e.veth("v0", "v1")
	e.ip("link", "set", "v1", "up")
	e.ip("link", "set", "v0", "master", "br0", "up")
	v0 := e.index("v0")
	// The bridge enables the port again when the kernel's link watch
	// reports the carrier (br_port_carrier_check), up to a second later:
	// a state set before that is overwritten. The operational state is
	// set by the same link watch event.
	waitOperUp(e, "v0")
	waitPortState(e, "v0", rtnl.PortForwarding)
	steps := []struct {
		set, want rtnl.PortState
	}{
		{rtnl.PortListening, rtnl.PortListening},
		{rtnl.PortLearning, rtnl.PortLearning},
		{rtnl.PortForwarding, rtnl.PortForwarding},
		// Without STP the kernel moves a blocking port straight on to
		// forwarding (br_port_state_selection -> br_make_forwarding).
		{rtnl.PortBlocking, rtnl.PortForwarding},
		// The RTM_NEWLINK's change notification (NETDEV_CHANGE) makes the
		// bridge check the carrier of a disabled port and enable it
		// again (br_port_carrier_check).
		{rtnl.PortDisabled, rtnl.PortForwarding},
		{rtnl.PortLearning, rtnl.PortLearning},
	}
	for _, s := range steps {
		if err := e.c.SetBridgePort(ctx, v0, &rtnl.BridgePort{State: ptr(s.set)}); err != nil {
			t.Fatalf("SetBridgePort(v0, state %s) = %v", s.set, err)
		}
		if got := bridgeLinkPort(e, "v0").State; got != s.want {
			t.Errorf("after SetBridgePort(v0, state %s): bridge link shows state %s, want %s", s.set, got, s.want)
		}
		if l, err := e.c.LinkByIndex(ctx, v0); err != nil || l.Port == nil || l.Port.State != s.want {
			t.Errorf("after SetBridgePort(v0, state %s): LinkByIndex(v0).Port = %+v, %v, want state %s", s.set, l.Port, err, s.want)
		}
	}

	// A TAP without carrier may only be disabled.
	t0 := e.tap("t0", tap.Options{})
	e.ip("link", "set", "t0", "master", "br0", "up")
	if err := e.c.SetBridgePort(ctx, t0, &rtnl.BridgePort{State: ptr(rtnl.PortLearning)}); !errors.Is(err, unix.ENETDOWN) {
		t.Errorf("SetBridgePort(t0 without carrier, learning) = %v, want ENETDOWN", err)
	}
	if err := e.c.SetBridgePort(ctx, t0, &rtnl.BridgePort{State: ptr(rtnl.PortDisabled)}); err != nil {
		t.Errorf("SetBridgePort(t0 without carrier, disabled) = %v, want nil", err)
	}
}

// fdbEntries returns the bridge FDB entries for mac as iproute2 lists them.
func fdbEntries(e *nsEnv, mac net.HardwareAddr) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	for _, f := range e.jsonOf("bridge", "-j", "fdb", "show", "br", "br0") {
		if f["mac"] == mac.String() {
			out = append(out, f)
		}
	}
	return out
}

func TestIntegrationFDB(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	e.bridge("br0")
	t0 := e.tap("t0", tap.Options{})
	t1 := e.tap("t1", tap.Options{})
	e.ip("link", "set", "t0", "master", "br0")
	e.ip("link", "set", "t1", "master", "br0")
	mac := net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 1}

	check := func(step, wantDev string) {
		t.Helper()
		got := fdbEntries(e, mac)
		if wantDev == "" {
			if len(got) != 0 {
				t.Errorf("%s: fdb entries for %s = %v, want none", step, mac, got)
			}
			return
		}
		if len(got) != 1 {
			t.Fatalf("%s: fdb entries for %s = %v, want one", step, mac, got)
		}
		f := got[0]
		// static: forwarded to the port, never aged; permanent would make
		// the MAC local to the bridge.
		if f["ifname"] != wantDev || f["state"] != "static" || f["master"] != "br0" {
			t.Errorf("%s: fdb entry = %v, want dev %s, state static, master br0", step, f, wantDev)
		}
	}

	if err := e.c.AddFDB(ctx, t0, mac); err != nil {
		t.Fatalf("AddFDB(t0, %s) = %v", mac, err)
	}
	check("AddFDB", "t0")
	if err := e.c.AddFDB(ctx, t0, mac); err != nil {
		t.Errorf("AddFDB(t0, %s) again = %v, want nil", mac, err)
	}
	check("AddFDB again", "t0")
	if err := e.c.AddFDB(ctx, t1, mac); err != nil {
		t.Errorf("AddFDB(t1, %s) = %v, want nil", mac, err)
	}
	check("AddFDB on another port", "t1")
	if err := e.c.DelFDB(ctx, t1, mac); err != nil {
		t.Fatalf("DelFDB(t1, %s) = %v", mac, err)
	}
	check("DelFDB", "")
	if err := e.c.DelFDB(ctx, t1, mac); err != nil {
		t.Errorf("DelFDB(t1, %s) again = %v, want nil", mac, err)
	}
	if err := e.c.DelFDB(ctx, t0, mac); err != nil {
		t.Errorf("DelFDB(t0, %s), never there = %v, want nil", mac, err)
	}
}

func TestIntegrationSetNoQueue(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	idx := e.tap("t0", tap.Options{MultiQueue: true, VnetHdr: true})
	e.tap("ref", tap.Options{MultiQueue: true, VnetHdr: true})
	if n := e.link("t0").NumTx; n != tap.MaxQueues {
		t.Fatalf("t0 has %d TX queues, want %d", n, tap.MaxQueues)
	}
	if err := e.c.SetNoQueue(ctx, idx); err != nil {
		t.Fatalf("SetNoQueue(%d) = %v", idx, err)
	}
	if err := e.c.SetNoQueue(ctx, idx); err != nil {
		t.Errorf("SetNoQueue(%d) again = %v, want nil", idx, err)
	}
	for _, n := range []string{"t0", "ref"} {
		if err := e.c.SetLink(ctx, &rtnl.LinkChange{Index: e.index(n), Up: ptr(true)}); err != nil {
			t.Fatalf("SetLink(%s up) = %v", n, err)
		}
	}
	qd := e.jsonOf("tc", "-j", "qdisc", "show", "dev", "t0")
	if len(qd) != 1 || qd[0]["kind"] != "noqueue" || qd[0]["root"] != true {
		t.Errorf("tc qdisc show dev t0 = %v, want a single noqueue root qdisc", qd)
	}
	if q := e.link("t0").Qdisc; q != "noqueue" {
		t.Errorf("ip link t0 qdisc = %q, want noqueue", q)
	}
	// Without it the kernel gives the up device mq with a child per TX
	// queue in use (tc lists those of the real queue count; one here, as
	// no queue is attached).
	if ref := e.jsonOf("tc", "-j", "qdisc", "show", "dev", "ref"); len(ref) < 2 || ref[0]["kind"] != "mq" {
		t.Errorf("tc qdisc show dev ref = %v, want mq and its children", ref)
	}
}

// TestIntegrationSetLinkPort changes a port's group, alias and bridge-port
// settings in one RTM_NEWLINK, checked with ip -j -d link and bridge -j
// link; then the cases the kernel refuses.
func TestIntegrationSetLinkPort(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	br := e.bridge("br0")
	t0 := e.tap("t0", tap.Options{})
	t1 := e.tap("t1", tap.Options{})
	e.ip("link", "set", "t0", "master", "br0")

	port := rtnl.BridgePort{Locked: ptr(true), BcastFlood: ptr(false), McastFlood: ptr(false), UnicastFlood: ptr(false)}
	var b rtnl.Batch
	b.SetLink(&rtnl.LinkChange{Index: t0, Group: ptr(uint32(7)), Alias: ptr("vm 1 net0"), Port: &port})
	if b.Len() != 1 {
		t.Fatalf("Batch.Len() = %d, want 1: one message", b.Len())
	}
	if _, err := e.c.Exec(ctx, &b); err != nil {
		t.Fatalf("SetLink(t0, group, alias, port) = %v", err)
	}
	l := e.link("t0")
	d := l.LinkInfo.SlaveData
	if l.Group != "7" || l.Alias != "vm 1 net0" || d["locked"] != true || d["bcast_flood"] != false ||
		d["mcast_flood"] != false || d["flood"] != false || d["learning"] != true {
		t.Errorf("ip -j -d link t0 = group %q alias %q slave data %v, want group 7, alias, locked, no floods, learning",
			l.Group, l.Alias, d)
	}
	want := rtnl.PortInfo{Learning: true, Locked: true}
	if got := bridgeLinkPort(e, "t0"); got != want {
		t.Errorf("bridge -j -d link t0 = %+v, want %+v", got, want)
	}

	// Not a port: the kernel refuses the port settings first, and applies
	// nothing of the message.
	err := e.c.SetLink(ctx, &rtnl.LinkChange{Index: t1, Group: ptr(uint32(7)), Port: &port})
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("SetLink(t1 not a port, group, port) = %v, want EOPNOTSUPP", err)
	}
	if g := e.link("t1").Group; g != "default" {
		t.Errorf("t1 group after the refused change = %q, want default", g)
	}
	// With a master: refused before sending, nothing changes.
	err = e.c.SetLink(ctx, &rtnl.LinkChange{Index: t1, Master: &br, Port: &port})
	if err == nil || errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("SetLink(t1, master, port) = %v, want the library's refusal", err)
	}
	if m := e.link("t1").Master; m != "" {
		t.Errorf("t1 master after the refused change = %q, want none", m)
	}
}
