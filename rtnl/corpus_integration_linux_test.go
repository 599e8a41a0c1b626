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

// rawDump runs a dump request with a plain netlink socket and returns the
// payloads of the answers of type typ, as the kernel sent them.
func rawDump(t *testing.T, ns int, req netlink.Message, typ netlink.HeaderType) [][]byte {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: ns, Strict: true})
	if err != nil {
		t.Fatalf("netlink.Dial = %v", err)
	}
	defer c.Close()
	req.Header.Flags |= netlink.Request | netlink.Dump
	msgs, err := c.Execute(req)
	if err != nil {
		t.Fatalf("dump %v: %v", req.Header.Type, err)
	}
	var out [][]byte
	for _, m := range msgs {
		if m.Header.Type == typ {
			out = append(out, m.Data)
		}
	}
	return out
}

// writeCorpus writes captures into dir when RTNL_WRITE_CORPUS=1.
func writeCorpus(t *testing.T, dir string, captures map[string][]byte) {
	t.Helper()
	if os.Getenv("RTNL_WRITE_CORPUS") != "1" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range captures {
		if b == nil {
			t.Fatalf("no capture for %s", name)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, formatCorpusFile(b), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(b))
	}
}

// TestIntegrationKernelTCMessages decodes real kernel qdisc and filter
// messages (a TAP with a noqueue root, a clsact that has dropped frames,
// tapbridge's filter) and checks them against tc. With
// RTNL_WRITE_CORPUS=1 it also writes them to the FuzzQdiscDecode and
// FuzzBPFFilterDecode seed corpora.
func TestIntegrationKernelTCMessages(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	d, err := tap.Create("t0", &tap.Options{NetNS: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := e.index("t0")
	mac := [6]byte{2, 0, 0, 0, 0xbe, 0xef}
	prog := dropSource(mac, false)
	var b rtnl.Batch
	b.SetNoQueue(t0)
	b.AddClsact(t0)
	b.SetIngressBPF(t0, prog)
	b.SetLink(&rtnl.LinkChange{Index: t0, AddrGenModeNone: true})
	b.SetLink(&rtnl.LinkChange{Index: t0, Up: ptr(true)})
	if _, err := e.c.Exec(ctx, &b); err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:], mac[:])
	frame[12], frame[13] = 0x88, 0xb5
	for range 5 {
		if _, err := d.Queues()[0].Write(frame); err != nil {
			t.Fatal(err)
		}
	}

	qdiscs := rawDump(t, e.ns, netlink.Message{Header: netlink.Header{Type: unix.RTM_GETQDISC}, Data: make([]byte, 20)}, unix.RTM_NEWQDISC)
	var clsact, noqueue []byte
	for _, p := range qdiscs {
		q, err := rtnl.UnmarshalQdisc(p)
		if err != nil {
			t.Fatalf("UnmarshalQdisc(kernel qdisc) = %v", err)
		}
		switch {
		case q.Index == t0 && q.Kind == "clsact":
			clsact = p
			if q.Stats.Packets != 5 || q.Stats.Drops != 5 || q.Stats.Bytes != 5*(60-14) {
				t.Errorf("kernel clsact qdisc decodes as %+v, want 5 packets of 46 bytes (60 less the Ethernet header), 5 drops", q)
			}
		case q.Index == t0 && q.Kind == "noqueue":
			noqueue = p
		}
	}
	if clsact == nil || noqueue == nil {
		t.Fatalf("qdisc dump has no clsact or noqueue of t0 among %d qdiscs", len(qdiscs))
	}

	req := make([]byte, 20)
	binary.NativeEndian.PutUint32(req[4:8], t0)
	binary.NativeEndian.PutUint32(req[12:16], 0xFFFFFFF2)
	filters := rawDump(t, e.ns, netlink.Message{Header: netlink.Header{Type: unix.RTM_GETTFILTER}, Data: req}, unix.RTM_NEWTFILTER)
	var head, filter []byte
	for _, p := range filters {
		f, err := rtnl.UnmarshalBPFFilter(p)
		if err != nil {
			t.Fatalf("UnmarshalBPFFilter(kernel filter) = %v", err)
		}
		if f.OpsLen < 0 {
			head = p // the chain's head: no handle, no options
			continue
		}
		filter = p
		if f.Kind != "bpf" || f.Handle != rtnl.IngressBPFHandle || f.Parent != 0xFFFFFFF2 || f.Flags != 1 ||
			f.Info>>16 != uint32(rtnl.IngressBPFPriority) || !reflect.DeepEqual(f.Prog, prog) {
			t.Errorf("kernel filter decodes as %+v, want tapbridge's filter with %v", f, prog)
		}
	}
	if head == nil || filter == nil {
		t.Fatalf("filter dump has %d messages, want the chain head and the filter", len(filters))
	}
	writeCorpus(t, qdiscCorpus, map[string][]byte{"kernel-clsact": clsact, "kernel-noqueue": noqueue})
	writeCorpus(t, filterCorpus, map[string][]byte{"kernel-bpf-filter": filter, "kernel-bpf-chain-head": head})
}
