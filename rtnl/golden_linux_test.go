package rtnl_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
)

func isBigEndian() bool { return binary.NativeEndian.Uint16([]byte{0, 1}) == 1 }

// skipBigEndian skips golden-byte tests, whose bytes are little-endian.
func skipBigEndian(t testing.TB) {
	t.Helper()
	if isBigEndian() {
		t.Skip("skipping: golden bytes are little-endian")
	}
}

// unhex decodes hex written in groups with spaces and line breaks.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad golden hex: %v", err)
	}
	return b
}

// requestBytes returns the payload rtnl sends for the one request that add
// puts in a batch.
func requestBytes(t *testing.T, add func(b *rtnl.Batch)) (netlink.Header, []byte) {
	t.Helper()
	var got []netlink.Message
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		got = append(got, req...)
		switch req[0].Header.Type {
		case unix.RTM_GETLINK:
			return []netlink.Message{linkAnswer(req[0], tapPayload(t))}, nil
		case unix.RTM_GETNEIGH:
			e := rtnl.FDBEntry{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Port: 7, Master: 3, State: rtnl.FDBStatic}
			return []netlink.Message{answerOf(req[0], unix.RTM_NEWNEIGH, fdbPayload(t, &e))}, nil
		case unix.RTM_GETTFILTER:
			return []netlink.Message{errAnswer(req[0], unix.ENOENT)}, nil
		case unix.RTM_GETQDISC:
			q := rtnl.Qdisc{Index: 7, Kind: "clsact", Handle: 0xFFFF0000}
			return []netlink.Message{answerOf(req[0], unix.RTM_NEWQDISC, qdiscPayload(t, q))}, nil
		}
		return []netlink.Message{ack(req[0])}, nil
	}))
	defer c.Close()
	var b rtnl.Batch
	add(&b)
	if _, err := c.Exec(t.Context(), &b); err != nil {
		t.Fatalf("Exec = %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Exec sent %d messages, want 1", len(got))
	}
	return got[0].Header, got[0].Data
}

// The expected bytes are written from the kernel's structures, not from
// what the code produces: struct ifinfomsg is 16 bytes (family, pad, type,
// index, flags, change), struct ndmsg 12 (family, 3 pad, ifindex, state,
// flags, type), struct tcmsg 20 (family, 3 pad, ifindex, handle, parent,
// info); each attribute is a 4-byte header (length including the header,
// then type) and data padded to 4 bytes. netlink.AttributeEncoder.Nested
// sets NLA_F_NESTED (0x8000) in the type of every nested attribute, which
// the kernel masks off (nla_type).
func TestGoldenRequests(t *testing.T) {
	skipBigEndian(t)
	tests := []struct {
		name string
		add  func(b *rtnl.Batch)
		want string
	}{
		{
			name: "SetLink TxQueueLen Group AddrGenModeNone",
			add: func(b *rtnl.Batch) {
				b.SetLink(&rtnl.LinkChange{Index: 7, TxQueueLen: ptr(uint32(1000)), Group: ptr(uint32(5)), AddrGenModeNone: true})
			},
			want: `
				00 00 0000  07000000  00000000  00000000 ` + // ifinfomsg: index 7
				`08 00 0d00  e8030000 ` + // IFLA_TXQLEN (13) = 1000
				`08 00 1b00  05000000 ` + // IFLA_GROUP (27) = 5
				`1000 1a80 ` + // IFLA_AF_SPEC (26) | NLA_F_NESTED, 16 bytes
				`  0c00 0a80 ` + // AF_INET6 (10) | NLA_F_NESTED, 12 bytes
				`    0500 0800  01 000000`, // IFLA_INET6_ADDR_GEN_MODE (8) = 1 (none), padded
		},
		{
			name: "SetLink every field",
			add: func(b *rtnl.Batch) {
				b.SetLink(&rtnl.LinkChange{
					Index: 7, Name: "t1", MTU: 1400, TxQueueLen: ptr(uint32(1000)),
					Address: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Up: ptr(true), Master: ptr(uint32(3)),
					Group: ptr(uint32(5)), Alias: ptr("vm"),
				})
			},
			want: `
				00 00 0000  07000000  01000000  01000000 ` + // index 7, flags IFF_UP, change IFF_UP
				`0700 0300  74 31 00 00 ` + // IFLA_IFNAME (3) "t1\0", padded
				`0700 1400  76 6d 00 00 ` + // IFLA_IFALIAS (20) "vm\0", padded
				`0800 0400  78050000 ` + // IFLA_MTU (4) = 1400
				`0a00 0100  02 00 00 00 00 01 0000 ` + // IFLA_ADDRESS (1), padded
				`0800 0a00  03000000 ` + // IFLA_MASTER (10) = 3
				`0800 0d00  e8030000 ` + // IFLA_TXQLEN (13) = 1000
				`0800 1b00  05000000`, // IFLA_GROUP (27) = 5
		},
		{
			name: "DeleteGroup",
			add:  func(b *rtnl.Batch) { b.DeleteGroup(9) },
			want: `
				00 00 0000  00000000  00000000  00000000 ` + // ifinfomsg: no index
				`0800 1b00  09000000`, // IFLA_GROUP (27) = 9
		},
		{
			name: "DeleteLink",
			add:  func(b *rtnl.Batch) { b.DeleteLink(7) },
			want: `00 00 0000  07000000  00000000  00000000`,
		},
		{
			name: "AddAltName",
			add:  func(b *rtnl.Batch) { b.AddAltName(7, "vm-1") },
			want: `
				00 00 0000  07000000  00000000  00000000 ` +
				`1000 3480 ` + // IFLA_PROP_LIST (52) | NLA_F_NESTED, 16 bytes
				`  0900 3500  76 6d 2d 31 00 000000`, // IFLA_ALT_IFNAME (53) "vm-1\0", padded
		},
		{
			name: "DelAltName",
			add:  func(b *rtnl.Batch) { b.DelAltName(7, "vm0") },
			want: `
				00 00 0000  07000000  00000000  00000000 ` +
				`0c00 3480 ` + // IFLA_PROP_LIST | NLA_F_NESTED, 12 bytes
				`  0800 3500  76 6d 30 00`, // IFLA_ALT_IFNAME "vm0\0"
		},
		{
			name: "SetBridgePort",
			add: func(b *rtnl.Batch) {
				b.SetBridgePort(7, &rtnl.BridgePort{
					Learning: ptr(false), UnicastFlood: ptr(true), Isolated: ptr(true),
					Locked: ptr(false), NeighSuppress: ptr(true),
				})
			},
			want: `
				00 00 0000  07000000  00000000  00000000 ` +
				`3000 1280 ` + // IFLA_LINKINFO (18) | NLA_F_NESTED, 48 bytes
				`  2c00 0580 ` + // IFLA_INFO_SLAVE_DATA (5) | NLA_F_NESTED, 44 bytes
				`    0500 0800  00 000000 ` + // IFLA_BRPORT_LEARNING (8) = 0
				`    0500 0900  01 000000 ` + // IFLA_BRPORT_UNICAST_FLOOD (9) = 1
				`    0500 2100  01 000000 ` + // IFLA_BRPORT_ISOLATED (33) = 1
				`    0500 2700  00 000000 ` + // IFLA_BRPORT_LOCKED (39) = 0
				`    0500 2000  01 000000`, // IFLA_BRPORT_NEIGH_SUPPRESS (32) = 1
		},
		{
			name: "SetBridgePort new flags and state",
			add: func(b *rtnl.Batch) {
				b.SetBridgePort(7, &rtnl.BridgePort{BcastFlood: ptr(false), McastFlood: ptr(true), State: ptr(rtnl.PortLearning)})
			},
			want: `
				00 00 0000  07000000  00000000  00000000 ` +
				`2000 1280 ` + // IFLA_LINKINFO (18) | NLA_F_NESTED, 32 bytes
				`  1c00 0580 ` + // IFLA_INFO_SLAVE_DATA (5) | NLA_F_NESTED, 28 bytes
				`    0500 1e00  00 000000 ` + // IFLA_BRPORT_BCAST_FLOOD (30) = 0
				`    0500 1b00  01 000000 ` + // IFLA_BRPORT_MCAST_FLOOD (27) = 1
				`    0500 0100  02 000000`, // IFLA_BRPORT_STATE (1) = BR_STATE_LEARNING
		},
		{
			name: "SetLink Group and Port",
			add: func(b *rtnl.Batch) {
				b.SetLink(&rtnl.LinkChange{Index: 7, Group: ptr(uint32(5)), Port: &rtnl.BridgePort{Locked: ptr(true)}})
			},
			want: `
				00 00 0000  07000000  00000000  00000000 ` +
				`0800 1b00  05000000 ` + // IFLA_GROUP (27) = 5
				`1000 1280 ` + // IFLA_LINKINFO (18) | NLA_F_NESTED, 16 bytes
				`  0c00 0580 ` + // IFLA_INFO_SLAVE_DATA (5) | NLA_F_NESTED, 12 bytes
				`    0500 2700  01 000000`, // IFLA_BRPORT_LOCKED (39) = 1
		},
		{
			name: "SetBridgePort one flag",
			add:  func(b *rtnl.Batch) { b.SetBridgePort(7, &rtnl.BridgePort{Learning: ptr(true)}) },
			want: `
				00 00 0000  07000000  00000000  00000000 ` +
				`1000 1280  0c00 0580  0500 0800  01 000000`,
		},
		{
			name: "AddFDB",
			add:  func(b *rtnl.Batch) { b.AddFDB(7, net.HardwareAddr{2, 0, 0, 0, 0, 1}) },
			want: `
				07 00 0000 ` + // ndm_family AF_BRIDGE (7), padding
				`07000000 ` + // ndm_ifindex 7
				`4000 04 00 ` + // ndm_state NUD_NOARP (0x40), ndm_flags NTF_MASTER (4), ndm_type 0
				`0a00 0200  02 00 00 00 00 01 0000`, // NDA_LLADDR (2), padded
		},
		{
			name: "DelFDB",
			add:  func(b *rtnl.Batch) { b.DelFDB(7, net.HardwareAddr{2, 0, 0, 0, 0, 1}) },
			want: `
				07 00 0000  07000000  4000 04 00 ` +
				`0a00 0200  02 00 00 00 00 01 0000`,
		},
		{
			name: "AddFDBWith Sticky",
			add: func(b *rtnl.Batch) {
				b.AddFDBWith(7, net.HardwareAddr{2, 0, 0, 0, 0, 1}, &rtnl.FDBOptions{Sticky: true})
			},
			want: `
				07 00 0000  07000000 ` +
				`4000 44 00 ` + // NUD_NOARP, NTF_MASTER|NTF_STICKY (0x40)
				`0a00 0200  02 00 00 00 00 01 0000`,
		},
		{
			name: "AddFDBWith Use",
			add: func(b *rtnl.Batch) {
				b.AddFDBWith(7, net.HardwareAddr{2, 0, 0, 0, 0, 1}, &rtnl.FDBOptions{Use: true})
			},
			want: `
				07 00 0000  07000000 ` +
				`0200 05 00 ` + // NUD_REACHABLE (2), NTF_MASTER|NTF_USE (1)
				`0a00 0200  02 00 00 00 00 01 0000`,
		},
		{
			name: "DelFDBSelf",
			add:  func(b *rtnl.Batch) { b.DelFDBSelf(9, net.HardwareAddr{2, 0, 0, 0, 0, 1}) },
			want: `
				07 00 0000  09000000 ` +
				`0000 02 00 ` + // no state, NTF_SELF (2)
				`0a00 0200  02 00 00 00 00 01 0000`,
		},
		{
			name: "GetFDBEntry",
			add:  func(b *rtnl.Batch) { b.GetFDBEntry(7, net.HardwareAddr{2, 0, 0, 0, 0, 1}, new(rtnl.FDBEntry)) },
			want: `
				07 00 0000  07000000 ` +
				`0000 04 00 ` + // state 0, NTF_MASTER (valid_fdb_get_strict)
				`0a00 0200  02 00 00 00 00 01 0000`,
		},
		{
			name: "SetNoQueue",
			add:  func(b *rtnl.Batch) { b.SetNoQueue(7) },
			want: `
				00 00 0000 ` + // tcm_family AF_UNSPEC, padding
				`07000000 ` + // tcm_ifindex 7
				`00000000 ` + // tcm_handle: the kernel picks one
				`ffffffff ` + // tcm_parent TC_H_ROOT
				`00000000 ` + // tcm_info
				`0c00 0100  6e 6f 71 75 65 75 65 00`, // TCA_KIND (1) "noqueue\0"
		},
		{
			name: "AddClsact",
			add:  func(b *rtnl.Batch) { b.AddClsact(7) },
			want: `
				00 00 0000 ` + // tcm_family AF_UNSPEC, padding
				`07000000 ` + // tcm_ifindex 7
				`0000ffff ` + // tcm_handle ffff: (TC_H_MAKE(TC_H_CLSACT, 0))
				`f1ffffff ` + // tcm_parent TC_H_CLSACT
				`00000000 ` + // tcm_info
				`0b00 0100  63 6c 73 61 63 74 00 00`, // TCA_KIND (1) "clsact\0", padded
		},
		{
			name: "GetClsact",
			add:  func(b *rtnl.Batch) { b.GetClsact(7, new(rtnl.Qdisc)) },
			want: `00 00 0000  07000000  0000ffff  00000000  00000000`, // by handle ffff:, parent 0
		},
		{
			name: "SetIngressBPF",
			add: func(b *rtnl.Batch) {
				b.SetIngressBPF(7, []rtnl.SockFilter{{Op: 0x28, Jt: 1, Jf: 2, K: 12}, {Op: 0x06, K: 0xFFFFFFFF}})
			},
			want: `
				00 00 0000  07000000 ` +
				`62740000 ` + // tcm_handle 0x7462 (IngressBPFHandle)
				`f2ffffff ` + // tcm_parent TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
				`0003 0100 ` + // tcm_info: protocol htons(ETH_P_ALL) = 00 03, priority 1
				`0800 0100  62 70 66 00 ` + // TCA_KIND (1) "bpf\0"
				`2800 0280 ` + // TCA_OPTIONS (2) | NLA_F_NESTED, 40 bytes
				`  0600 0400  0200 0000 ` + // TCA_BPF_OPS_LEN (4) = 2, padded
				`  1400 0500 ` + // TCA_BPF_OPS (5), 16 bytes of struct sock_filter
				`    2800 01 02 0c000000 ` + // ldh [12] (code 0x28, jt 1, jf 2, k 12)
				`    0600 00 00 ffffffff ` + // ret #TC_ACT_UNSPEC
				`  0800 0800  01000000`, // TCA_BPF_FLAGS (8) = TCA_BPF_FLAG_ACT_DIRECT
		},
		{
			name: "GetIngressBPF",
			add:  func(b *rtnl.Batch) { b.GetIngressBPF(7, new([]rtnl.SockFilter)) },
			want: `
				00 00 0000  07000000  62740000  f2ffffff  0003 0100 ` +
				`0800 0100  62 70 66 00`, // TCA_KIND "bpf\0"
		},
		{
			name: "GetLinkByAltName",
			add:  func(b *rtnl.Batch) { b.GetLinkByAltName("vm-1", new(rtnl.Link)) },
			want: `
				00 00 0000  00000000  00000000  00000000 ` +
				`0800 1d00  08000000 ` + // IFLA_EXT_MASK (29) = RTEXT_FILTER_SKIP_STATS
				`0900 3500  76 6d 2d 31 00 000000`, // IFLA_ALT_IFNAME (53) "vm-1\0", padded
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := requestBytes(t, tt.add)
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("%s encodes\n%x\nwant\n%x", tt.name, got, want)
			}
		})
	}
}

func TestGoldenDumpRequest(t *testing.T) {
	skipBigEndian(t)
	const ifinfomsg = `00 00 0000  00000000  00000000  00000000 `
	const extMask = `0800 1d00  08000000 ` // IFLA_EXT_MASK (29) = RTEXT_FILTER_SKIP_STATS
	tests := []struct {
		name   string
		filter *rtnl.LinkFilter
		want   string
	}{
		{"no filter", nil, ifinfomsg + extMask},
		{
			"master", &rtnl.LinkFilter{Master: 3},
			ifinfomsg + `0800 0a00  03000000 ` + extMask, // IFLA_MASTER (10) = 3
		},
		{
			"kind", &rtnl.LinkFilter{Kind: "tun"},
			ifinfomsg + extMask +
				`0c00 1280 ` + // IFLA_LINKINFO (18) | NLA_F_NESTED, 12 bytes
				`  0800 0100  74 75 6e 00`, // IFLA_INFO_KIND (1) "tun\0"
		},
		{
			"master and kind", &rtnl.LinkFilter{Master: 3, Kind: "bridge"},
			ifinfomsg + `0800 0a00  03000000 ` + extMask +
				`1000 1280 ` + // IFLA_LINKINFO | NLA_F_NESTED, 16 bytes
				`  0b00 0100  62 72 69 64 67 65 00 00`, // IFLA_INFO_KIND "bridge\0", padded
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got netlink.Message
			c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				got = req[0]
				return dumpAnswer(req[0], netlink.Multi), nil
			}))
			defer c.Close()
			if _, err := c.Links(t.Context(), tt.filter); err != nil {
				t.Fatalf("Links(%+v) = %v", tt.filter, err)
			}
			if want := netlink.Request | netlink.Dump; got.Header.Flags != want {
				t.Errorf("Links(%+v) header flags = %v, want %v", tt.filter, got.Header.Flags, want)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got.Data, want) {
				t.Errorf("Links(%+v) encodes\n%x\nwant\n%x", tt.filter, got.Data, want)
			}
		})
	}
}
