package rtnl_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

// fdbCorpus holds kernel captures (kernel-*, written by
// TestIntegrationFDBOptions with RTNL_WRITE_CORPUS=1).
const fdbCorpus = "testdata/fuzz/FuzzFDBDecode"

// rawFDBDump dumps the namespace's FDB with a plain netlink socket and
// returns each RTM_NEWNEIGH payload as the kernel sent it.
func rawFDBDump(t *testing.T, ns int) [][]byte {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: ns, Strict: true})
	if err != nil {
		t.Fatalf("netlink.Dial = %v", err)
	}
	defer c.Close()
	req := make([]byte, unix.SizeofNdMsg)
	req[0] = unix.AF_BRIDGE
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETNEIGH, Flags: netlink.Request | netlink.Dump},
		Data:   req,
	})
	if err != nil {
		t.Fatalf("dump fdb: %v", err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.Data)
	}
	return out
}

// fdbKey is what `bridge -j fdb show` and FDBEntry agree on for an entry.
func fdbKey(mac, dev, master, state string, flags []string) string {
	slices.Sort(flags)
	return fmt.Sprintf("%s dev %s master %s state %s flags %v", mac, dev, master, state, flags)
}

// oracleFDB lists the namespace's FDB as iproute2 sees it.
func oracleFDB(e *nsEnv) []string {
	e.t.Helper()
	var out []string
	for _, f := range e.jsonOf("bridge", "-j", "fdb", "show") {
		var flags []string
		if fl, ok := f["flags"].([]any); ok {
			for _, x := range fl {
				flags = append(flags, x.(string))
			}
		}
		master, _ := f["master"].(string)
		state, _ := f["state"].(string)
		if state == "" {
			state = "reachable"
		}
		out = append(out, fdbKey(f["mac"].(string), f["ifname"].(string), master, state, flags))
	}
	slices.Sort(out)
	return out
}

// ourFDB lists the namespace's FDB through Conn.FDB in the same terms.
func ourFDB(e *nsEnv, f *rtnl.FDBFilter) []string {
	e.t.Helper()
	es, err := e.c.FDB(e.t.Context(), f)
	if err != nil {
		e.t.Fatalf("FDB(%+v) = %v", f, err)
	}
	names := e.nameOf()
	var out []string
	for _, x := range es {
		var flags []string
		if x.Self {
			flags = append(flags, "self")
		}
		if x.ExtLearned {
			flags = append(flags, "extern_learn")
		}
		if x.Sticky {
			flags = append(flags, "sticky")
		}
		if x.Offloaded {
			flags = append(flags, "offload")
		}
		out = append(out, fdbKey(x.MAC.String(), names[x.Port], names[x.Master], x.State.String(), flags))
	}
	slices.Sort(out)
	return out
}

// TestIntegrationFDBOptions checks Sticky, Use (taking over a control
// plane's extern_learn entry on a vxlan port), DelFDBSelf, FDBEntry and
// the FDB dump against iproute2.
func TestIntegrationFDBOptions(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	br := e.bridge("br0")
	t0 := e.tap("t0", tap.Options{})
	// No link-local address: its multicast entries would come and go
	// between the two dumps compared below.
	e.ip("link", "set", "t0", "addrgenmode", "none")
	e.ip("link", "set", "t0", "master", "br0", "up")
	e.ip("link", "add", "vxlan100", "type", "vxlan", "id", "100", "local", "192.0.2.1", "dstport", "4789", "nolearning")
	e.ip("link", "set", "vxlan100", "master", "br0", "up")
	vx := e.index("vxlan100")
	mac := net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 1}
	other := net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 2}

	entry := func(step string) *rtnl.FDBEntry {
		t.Helper()
		got, err := e.c.FDBEntry(ctx, t0, mac)
		if err != nil {
			t.Fatalf("%s: FDBEntry(t0, %s) = %v", step, mac, err)
		}
		return got
	}

	// Sticky static entry.
	if err := e.c.AddFDBWith(ctx, t0, other, &rtnl.FDBOptions{Sticky: true}); err != nil {
		t.Fatalf("AddFDBWith(t0, %s, Sticky) = %v", other, err)
	}
	if got, err := e.c.FDBEntry(ctx, t0, other); err != nil || got.Port != t0 || got.Master != br ||
		got.State != rtnl.FDBStatic || !got.Sticky || got.ExtLearned {
		t.Errorf("FDBEntry(t0, %s) after Sticky add = %+v, %v, want static sticky on t0", other, got, err)
	}

	// A control plane's entry: extern_learn on the vxlan port, and the
	// vxlan device's own entry towards the remote VTEP.
	testBridge(e, "fdb", "add", mac.String(), "dev", "vxlan100", "master", "extern_learn")
	testBridge(e, "fdb", "add", mac.String(), "dev", "vxlan100", "self", "dst", "192.0.2.2")
	if got := entry("extern_learn"); got.Port != vx || !got.ExtLearned {
		t.Fatalf("FDBEntry after extern_learn add = %+v, want extern_learn on vxlan100", got)
	}

	// Use on a port without carrier: acknowledged, nothing happens.
	if err := e.c.AddFDBWith(ctx, t0, mac, &rtnl.FDBOptions{Use: true}); err != nil {
		t.Fatalf("AddFDBWith(t0 without carrier, Use) = %v", err)
	}
	if got := entry("Use without carrier"); got.Port != vx || !got.ExtLearned {
		t.Errorf("FDBEntry after Use without carrier = %+v, want unchanged on vxlan100 (kernel ignores it)", got)
	}

	// With carrier (a queue open), Use takes the entry over.
	q, err := tap.Open("t0", &tap.Options{NetNS: e.ns})
	if err != nil {
		t.Fatalf("tap.Open(t0) = %v", err)
	}
	t.Cleanup(func() { q.Close() })
	// The carrier reaches the bridge through linkwatch, asynchronously
	// (net/core/link_watch.c; br_port_carrier_check): until the port is
	// forwarding, Use is still ignored.
	waitPortState(e, "t0", rtnl.PortForwarding)
	if err := e.c.AddFDBWith(ctx, t0, mac, &rtnl.FDBOptions{Use: true}); err != nil {
		t.Fatalf("AddFDBWith(t0, Use) = %v", err)
	}
	if got := entry("Use"); got.Port != t0 || got.ExtLearned || got.State != rtnl.FDBReachable {
		t.Errorf("FDBEntry after Use = %+v, want reachable on t0 without extern_learn", got)
	}
	if err := e.c.AddFDB(ctx, t0, mac); err != nil {
		t.Fatalf("AddFDB(t0) after Use = %v", err)
	}
	if got := entry("AddFDB"); got.Port != t0 || got.ExtLearned || got.State != rtnl.FDBStatic {
		t.Errorf("FDBEntry after Use + AddFDB = %+v, want static on t0 without extern_learn", got)
	}

	// The dump agrees with iproute2, also filtered.
	if got, want := ourFDB(e, nil), oracleFDB(e); !slices.Equal(got, want) {
		t.Errorf("FDB(nil) =\n%q\nbridge fdb show =\n%q", got, want)
	}
	var selfOnVX []string
	for _, k := range ourFDB(e, &rtnl.FDBFilter{Port: vx}) {
		if k == fdbKey(mac.String(), "vxlan100", "", "permanent", []string{"self"}) {
			selfOnVX = append(selfOnVX, k)
		}
	}
	if len(selfOnVX) != 1 {
		t.Errorf("FDB(port vxlan100) has %d self entries for %s, want 1", len(selfOnVX), mac)
	}
	writeCorpus(t, fdbCorpus, captureFDB(t, e))

	// DelFDBSelf removes the vxlan device's entry and reports a missing one.
	if err := e.c.DelFDBSelf(ctx, vx, mac); err != nil {
		t.Fatalf("DelFDBSelf(vxlan100, %s) = %v", mac, err)
	}
	for _, k := range oracleFDB(e) {
		if k == fdbKey(mac.String(), "vxlan100", "", "permanent", []string{"self"}) {
			t.Errorf("after DelFDBSelf: bridge fdb still shows %s", k)
		}
	}
	if got := entry("DelFDBSelf"); got.Port != t0 || got.State != rtnl.FDBStatic {
		t.Errorf("after DelFDBSelf: FDBEntry = %+v, want the bridge's static entry on t0 untouched", got)
	}
	if err := e.c.DelFDBSelf(ctx, vx, mac); !errors.Is(err, unix.ENOENT) {
		t.Errorf("DelFDBSelf(vxlan100, %s) again = %v, want ENOENT", mac, err)
	}
	if err := e.c.DelFDBSelf(ctx, 99999, mac); !errors.Is(err, unix.ENODEV) {
		t.Errorf("DelFDBSelf(no such link) = %v, want ENODEV", err)
	}
	if err := e.c.DelFDB(ctx, t0, mac); err != nil {
		t.Fatalf("DelFDB(t0) = %v", err)
	}
	if _, err := e.c.FDBEntry(ctx, t0, mac); !errors.Is(err, unix.ENOENT) {
		t.Errorf("FDBEntry(t0) after DelFDB = %v, want ENOENT", err)
	}
}

// captureFDB returns a few kernel FDB messages by kind.
func captureFDB(t *testing.T, e *nsEnv) map[string][]byte {
	out := make(map[string][]byte)
	for _, b := range rawFDBDump(t, e.ns) {
		x, err := rtnl.UnmarshalFDBEntry(b)
		if err != nil {
			t.Fatalf("UnmarshalFDBEntry(kernel %x) = %v", b, err)
		}
		var name string
		switch {
		case x.Self && x.Dst.IsValid() && x.MAC[0] == 0:
			name = "kernel-vxlan-flood"
		case x.Self && x.Dst.IsValid():
			name = "kernel-vxlan-remote"
		case x.Sticky:
			name = "kernel-sticky"
		case x.State == rtnl.FDBStatic && x.Master != 0:
			name = "kernel-static"
		case x.State == rtnl.FDBPermanent && x.Master != 0:
			name = "kernel-permanent"
		case x.Self:
			name = "kernel-self"
		default:
			continue
		}
		if _, ok := out[name]; !ok {
			out[name] = b
		}
	}
	return out
}

// testBridge runs iproute2's bridge in the namespace.
func testBridge(e *nsEnv, args ...string) {
	e.t.Helper()
	testutil.Run(e.t, e.ns, "bridge", args...)
}
