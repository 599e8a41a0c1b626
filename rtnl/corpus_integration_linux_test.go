package rtnl_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

// rawLinkDump dumps the namespace's links with a plain netlink socket and
// returns each RTM_NEWLINK payload as the kernel sent it, by ifindex.
func rawLinkDump(t *testing.T, ns int, skipStats bool) map[uint32][]byte {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: ns, Strict: true})
	if err != nil {
		t.Fatalf("netlink.Dial = %v", err)
	}
	defer c.Close()
	req := make([]byte, unix.SizeofIfInfomsg)
	if skipStats {
		ae := netlink.NewAttributeEncoder()
		ae.Uint32(unix.IFLA_EXT_MASK, 1<<3) // RTEXT_FILTER_SKIP_STATS
		a, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		req = append(req, a...)
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   req,
	})
	if err != nil {
		t.Fatalf("dump links: %v", err)
	}
	out := make(map[uint32][]byte)
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK || m.Header.Flags&netlink.DumpInterrupted != 0 {
			t.Fatalf("dump links: message type %d flags %v", m.Header.Type, m.Header.Flags)
		}
		out[binary.NativeEndian.Uint32(m.Data[4:8])] = m.Data
	}
	return out
}

// TestIntegrationKernelLinkMessages decodes real kernel link messages (a
// multi-queue TAP on a bridge with owner, group, alias, alternative names
// and held queues; the bridge; a veth; lo, also with statistics) and checks
// the decoder against iproute2, against rtnetlink and against Links.
//
// With RTNL_WRITE_CORPUS=1 it also writes them to the FuzzLinkDecode seed
// corpus as testdata/fuzz/FuzzLinkDecode/kernel-*.
func TestIntegrationKernelLinkMessages(t *testing.T) {
	e := newNS(t)
	e.bridge("br0")
	owner, group := uint32(4242), uint32(4343)
	e.tap("t0", tap.Options{MultiQueue: true, VnetHdr: true, Owner: &owner, Group: &group})
	e.ip("link", "set", "t0", "master", "br0", "alias", "vm 7 net0", "group", "9", "txqueuelen", "10000", "mtu", "1400")
	e.ip("link", "set", "dev", "t0", "type", "bridge_slave", "learning", "off", "isolated", "on")
	e.ip("link", "property", "add", "dev", "t0", "altname", "vm-7-net0-longer-than-ifnamsiz")
	e.ip("link", "set", "t0", "addrgenmode", "none")
	e.veth("v0", "v1")
	q, err := tap.Open("t0", &tap.Options{MultiQueue: true, Queues: 2, VnetHdr: true, NetNS: e.ns})
	if err != nil {
		t.Fatalf("tap.Open(t0) = %v", err)
	}
	defer q.Close()

	raw := rawLinkDump(t, e.ns, true)
	withStats := rawLinkDump(t, e.ns, false)
	links, err := e.c.Links(t.Context(), nil)
	if err != nil {
		t.Fatalf("Links = %v", err)
	}
	ipls := testutil.IPLinks(t, e.ns)
	nameOf := e.nameOf()
	if len(raw) != len(links) || len(raw) != len(ipls) {
		t.Fatalf("raw dump has %d links, Links %d, ip %d", len(raw), len(links), len(ipls))
	}
	for i := range links {
		want := &links[i]
		b := raw[want.Index]
		l, err := rtnl.UnmarshalLink(b)
		if err != nil {
			t.Errorf("UnmarshalLink(link %s) = %v", want.Name, err)
			continue
		}
		checkAgainstIP(t, want, ipls[want.Name], nameOf)
		if !checkAgainstRtnetlink(t, b, l) {
			t.Errorf("rtnetlink does not decode all of the kernel's message for %s", want.Name)
		}
		// The operational state of an up link may move between the dumps.
		w := *want
		l.OperState, w.OperState = 0, 0
		if !reflect.DeepEqual(l, &w) {
			t.Errorf("UnmarshalLink(raw %s) = %+v, Links says %+v", want.Name, l, w)
		}
		ls, err := rtnl.UnmarshalLink(withStats[want.Index])
		if err != nil || ls.Name != want.Name {
			t.Errorf("UnmarshalLink(%s with statistics) = %+v, %v", want.Name, ls, err)
		}
	}

	if os.Getenv("RTNL_WRITE_CORPUS") != "1" {
		return
	}
	captures := map[string][]byte{
		"kernel-tap-port": raw[e.index("t0")],
		"kernel-bridge":   raw[e.index("br0")],
		"kernel-veth":     raw[e.index("v0")],
		"kernel-lo":       raw[1],
		"kernel-lo-stats": withStats[1],
	}
	if err := os.MkdirAll(linkCorpus, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range captures {
		path := filepath.Join(linkCorpus, name)
		if err := os.WriteFile(path, formatCorpusFile(b), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(b))
	}
	fmt.Fprintln(os.Stderr, "corpus written")
}
