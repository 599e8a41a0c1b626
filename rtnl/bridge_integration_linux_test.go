package rtnl_test

import (
	"net"
	"testing"

	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

func TestIntegrationSetBridgePort(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	e.bridge("br0")
	idx := e.tap("t0", tap.Options{})
	e.ip("link", "set", "t0", "master", "br0")

	// The kernel's defaults for a new port.
	state := rtnl.PortInfo{Learning: true, UnicastFlood: true}
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
		{"all flipped", rtnl.BridgePort{
			Learning: ptr(false), UnicastFlood: ptr(false), Isolated: ptr(true), Locked: ptr(true), NeighSuppress: ptr(true),
		}},
		{"nothing", rtnl.BridgePort{}},
		{"all back", rtnl.BridgePort{
			Learning: ptr(true), UnicastFlood: ptr(true), Isolated: ptr(false), Locked: ptr(false), NeighSuppress: ptr(false),
		}},
	}
	apply := func(v *bool, p *bool) {
		if p != nil {
			*v = *p
		}
	}
	for _, s := range steps {
		if err := e.c.SetBridgePort(ctx, idx, &s.set); err != nil {
			t.Fatalf("%s: SetBridgePort(%d, %+v) = %v", s.name, idx, s.set, err)
		}
		apply(&state.Learning, s.set.Learning)
		apply(&state.UnicastFlood, s.set.UnicastFlood)
		apply(&state.Isolated, s.set.Isolated)
		apply(&state.Locked, s.set.Locked)
		apply(&state.NeighSuppress, s.set.NeighSuppress)

		ports := e.jsonOf("bridge", "-j", "-d", "link", "show", "dev", "t0")
		if len(ports) != 1 {
			t.Fatalf("%s: bridge -j -d link show dev t0 = %v, want one port", s.name, ports)
		}
		p := ports[0]
		got := rtnl.PortInfo{
			Learning:      p["learning"] == true,
			UnicastFlood:  p["flood"] == true,
			Isolated:      p["isolated"] == true,
			Locked:        p["locked"] == true,
			NeighSuppress: p["neigh_suppress"] == true,
		}
		if got != state {
			t.Errorf("%s: bridge link shows %+v, want %+v", s.name, got, state)
		}
		l, err := e.c.LinkByIndex(ctx, idx)
		if err != nil || l.Port == nil || *l.Port != state {
			t.Errorf("%s: LinkByIndex(%d).Port = %+v, %v, want %+v", s.name, idx, l.Port, err, state)
		}
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
