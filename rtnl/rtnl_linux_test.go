package rtnl_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
)

func ptr[T any](v T) *T { return &v }

// ack is the kernel's acknowledgement of req: an NLMSG_ERROR with errno 0
// that echoes the request's sequence number and port ID.
func ack(req netlink.Message) netlink.Message { return errAnswer(req, 0) }

// errAnswer is the kernel's error answer to req.
func errAnswer(req netlink.Message, errno unix.Errno) netlink.Message {
	msgs, err := nltest.Error(int(errno), []netlink.Message{req})
	if err != nil {
		panic(err)
	}
	return msgs[0]
}

// linkAnswer is the kernel's answer to a get: one RTM_NEWLINK message.
func linkAnswer(req netlink.Message, data []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{
			Type:     unix.RTM_NEWLINK,
			Sequence: req.Header.Sequence,
			PID:      req.Header.PID,
		},
		Data: data,
	}
}

// dumpAnswer is the kernel's multipart answer to a dump request: the given
// payloads as RTM_NEWLINK messages with extra flags, then NLMSG_DONE.
func dumpAnswer(req netlink.Message, flags netlink.HeaderFlags, payloads ...[]byte) []netlink.Message {
	return dumpAnswerOf(req, unix.RTM_NEWLINK, flags, payloads...)
}

// dumpAnswerOf is dumpAnswer with messages of type typ.
func dumpAnswerOf(req netlink.Message, typ netlink.HeaderType, flags netlink.HeaderFlags, payloads ...[]byte) []netlink.Message {
	h := netlink.Header{Type: typ, Flags: flags, Sequence: req.Header.Sequence, PID: req.Header.PID}
	msgs := make([]netlink.Message, 0, len(payloads)+1)
	for _, p := range payloads {
		msgs = append(msgs, netlink.Message{Header: h, Data: p})
	}
	// nltest.Multipart turns the last message into NLMSG_DONE.
	msgs = append(msgs, netlink.Message{Header: h})
	if len(msgs) == 1 {
		msgs[0].Header.Type = netlink.Done
		msgs[0].Header.Flags |= netlink.Multi
		return msgs
	}
	msgs, err := nltest.Multipart(msgs)
	if err != nil {
		panic(err)
	}
	return msgs
}

// linkPayload builds an RTM_NEWLINK payload: a struct ifinfomsg for an
// Ethernet device and the attributes fn encodes.
func linkPayload(t testing.TB, index, flags uint32, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	lm := rtnetlink.LinkMessage{Type: unix.ARPHRD_ETHER, Index: index, Flags: flags}
	b, err := lm.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if fn == nil {
		return b
	}
	ae := netlink.NewAttributeEncoder()
	fn(ae)
	a, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, a...)
}

// tapPayload is what the kernel reports for a multi-queue TAP that is a
// port of bridge 3, with every attribute rtnl decodes.
func tapPayload(t testing.TB) []byte {
	return linkPayload(t, 7, unix.IFF_UP|unix.IFF_BROADCAST|unix.IFF_MULTICAST, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.IFLA_IFNAME, "t0")
		ae.Uint32(unix.IFLA_TXQLEN, 1000)
		ae.Uint8(unix.IFLA_OPERSTATE, 2)
		ae.Uint32(unix.IFLA_MTU, 1400)
		ae.Uint32(unix.IFLA_GROUP, 5)
		ae.Uint32(unix.IFLA_MASTER, 3)
		ae.Bytes(unix.IFLA_ADDRESS, []byte{2, 0, 0, 0, 0, 7})
		ae.String(unix.IFLA_IFALIAS, "vm 7")
		ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
			ae.String(unix.IFLA_INFO_KIND, "tun")
			ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(unix.IFLA_TUN_TYPE, unix.IFF_TAP)
				ae.Uint8(unix.IFLA_TUN_PI, 0)
				ae.Uint8(unix.IFLA_TUN_VNET_HDR, 1)
				ae.Uint8(unix.IFLA_TUN_PERSIST, 1)
				ae.Uint8(unix.IFLA_TUN_MULTI_QUEUE, 1)
				ae.Uint32(unix.IFLA_TUN_NUM_QUEUES, 2)
				ae.Uint32(unix.IFLA_TUN_NUM_DISABLED_QUEUES, 1)
				ae.Uint32(unix.IFLA_TUN_OWNER, 1000)
				ae.Uint32(unix.IFLA_TUN_GROUP, 100)
				return nil
			})
			ae.String(unix.IFLA_INFO_SLAVE_KIND, "bridge")
			ae.Nested(unix.IFLA_INFO_SLAVE_DATA, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(unix.IFLA_BRPORT_STATE, 3)
				ae.Uint8(unix.IFLA_BRPORT_LEARNING, 0)
				ae.Uint8(unix.IFLA_BRPORT_UNICAST_FLOOD, 1)
				ae.Uint8(unix.IFLA_BRPORT_ISOLATED, 1)
				ae.Uint8(unix.IFLA_BRPORT_LOCKED, 0)
				ae.Uint8(unix.IFLA_BRPORT_NEIGH_SUPPRESS, 1)
				ae.Uint8(unix.IFLA_BRPORT_BCAST_FLOOD, 0)
				ae.Uint8(unix.IFLA_BRPORT_MCAST_FLOOD, 1)
				return nil
			})
			return nil
		})
		ae.Nested(unix.IFLA_PROP_LIST, func(ae *netlink.AttributeEncoder) error {
			ae.String(unix.IFLA_ALT_IFNAME, "vm-7-net0")
			ae.String(unix.IFLA_ALT_IFNAME, "vm-7-tap")
			return nil
		})
		ae.Nested(unix.IFLA_AF_SPEC, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.AF_INET, func(ae *netlink.AttributeEncoder) error {
				ae.Bytes(1, make([]byte, 4)) // IFLA_INET_CONF, shortened
				return nil
			})
			ae.Nested(unix.AF_INET6, func(ae *netlink.AttributeEncoder) error {
				ae.Uint32(unix.IFLA_INET6_FLAGS, 0)
				ae.Uint8(unix.IFLA_INET6_ADDR_GEN_MODE, 1)
				return nil
			})
			return nil
		})
	})
}

// tapLink is the Link that tapPayload describes.
func tapLink() *rtnl.Link {
	return &rtnl.Link{
		Index:       7,
		Name:        "t0",
		Flags:       unix.IFF_UP | unix.IFF_BROADCAST | unix.IFF_MULTICAST,
		Type:        unix.ARPHRD_ETHER,
		MTU:         1400,
		TxQueueLen:  1000,
		Master:      3,
		Group:       5,
		Alias:       "vm 7",
		AltNames:    []string{"vm-7-net0", "vm-7-tap"},
		Address:     net.HardwareAddr{2, 0, 0, 0, 0, 7},
		OperState:   2,
		Kind:        "tun",
		SlaveKind:   "bridge",
		AddrGenMode: 1,
		Tun: &rtnl.TunInfo{
			TAP: true, VnetHdr: true, Persist: true, MultiQueue: true,
			Queues: 2, DisabledQueues: 1, Owner: ptr(uint32(1000)), Group: ptr(uint32(100)),
		},
		Port: &rtnl.PortInfo{UnicastFlood: true, Isolated: true, NeighSuppress: true, McastFlood: true, State: rtnl.PortForwarding},
	}
}

// equalTun compares TunInfos by value, owner and group included.
func equalTun(a, b *rtnl.TunInfo) bool {
	eq := func(x, y *uint32) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	a2, b2 := *a, *b
	a2.Owner, a2.Group, b2.Owner, b2.Group = nil, nil, nil, nil
	return a2 == b2 && eq(a.Owner, b.Owner) && eq(a.Group, b.Group)
}

// topAttrs returns the top-level attributes of b, keyed by type without
// the NLA_F_NESTED and NLA_F_NET_BYTEORDER flags.
func topAttrs(t testing.TB, b []byte) map[uint16][]byte {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatalf("NewAttributeDecoder: %v", err)
	}
	m := make(map[uint16][]byte)
	for ad.Next() {
		if _, dup := m[ad.Type()]; dup {
			t.Errorf("attribute %d appears twice", ad.Type())
		}
		m[ad.Type()] = ad.Bytes()
	}
	if err := ad.Err(); err != nil {
		t.Fatalf("decode attributes: %v", err)
	}
	return m
}

// unmarshalLinkMessage decodes a request's ifinfomsg payload.
func unmarshalLinkMessage(t testing.TB, b []byte) *rtnetlink.LinkMessage {
	t.Helper()
	var lm rtnetlink.LinkMessage
	if err := lm.UnmarshalBinary(b); err != nil {
		t.Fatalf("LinkMessage.UnmarshalBinary: %v", err)
	}
	if lm.Attributes == nil {
		lm.Attributes = &rtnetlink.LinkAttributes{}
	}
	return &lm
}

// neverCalled is an nltest.Func for connections that must send nothing.
func neverCalled(t *testing.T) nltest.Func {
	return func(req []netlink.Message) ([]netlink.Message, error) {
		t.Errorf("request sent: %+v", req)
		return nil, errors.New("unexpected request")
	}
}

// oneByOne returns an nltest.Func that answers like the kernel does: one
// datagram per answer, each read by its own recvmsg. answer is called for
// every request, in order, with its position in the whole session.
// nltest reads a request's answers at once and drops those after an error,
// so a Func that returns all answers together can only fail last; this one
// queues them and hands one out per receive.
func oneByOne(answer func(i int, req netlink.Message) netlink.Message) nltest.Func {
	var queue []netlink.Message
	n := 0
	return func(reqs []netlink.Message) ([]netlink.Message, error) {
		if reqs == nil { // a receive with nothing pending
			if len(queue) == 0 {
				return nil, errors.New("receive with no answer queued")
			}
			m := queue[0]
			queue = queue[1:]
			return []netlink.Message{m}, nil
		}
		for _, r := range reqs {
			queue = append(queue, answer(n, r))
			n++
		}
		return nil, nil
	}
}

func TestRequestTypesAndAttributes(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	tests := []struct {
		name  string
		typ   netlink.HeaderType
		flags netlink.HeaderFlags
		do    func(ctx context.Context, c *rtnl.Conn) error
		check func(t *testing.T, data []byte)
	}{
		{
			name: "LinkByName", typ: unix.RTM_GETLINK, flags: netlink.Request,
			do: func(ctx context.Context, c *rtnl.Conn) error { _, err := c.LinkByName(ctx, "t0"); return err },
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if lm.Index != 0 || lm.Attributes.Name != "t0" {
					t.Errorf("request = index %d name %q, want index 0 name %q", lm.Index, lm.Attributes.Name, "t0")
				}
				checkSkipStats(t, data)
			},
		},
		{
			name: "LinkByIndex", typ: unix.RTM_GETLINK, flags: netlink.Request,
			do: func(ctx context.Context, c *rtnl.Conn) error { _, err := c.LinkByIndex(ctx, 7); return err },
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if lm.Index != 7 || lm.Attributes.Name != "" {
					t.Errorf("request = index %d name %q, want index 7 and no name", lm.Index, lm.Attributes.Name)
				}
			},
		},
		{
			name: "LinkByAltName", typ: unix.RTM_GETLINK, flags: netlink.Request,
			do: func(ctx context.Context, c *rtnl.Conn) error {
				_, err := c.LinkByAltName(ctx, "a-rather-long-alternative-name")
				return err
			},
			check: func(t *testing.T, data []byte) {
				a := topAttrs(t, data[unix.SizeofIfInfomsg:])
				if got := string(a[unix.IFLA_ALT_IFNAME]); got != "a-rather-long-alternative-name\x00" {
					t.Errorf("IFLA_ALT_IFNAME = %q, want the name NUL-terminated", got)
				}
				if _, ok := a[unix.IFLA_IFNAME]; ok {
					t.Error("request carries IFLA_IFNAME")
				}
			},
		},
		{
			name: "SetLink", typ: unix.RTM_NEWLINK, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error {
				return c.SetLink(ctx, &rtnl.LinkChange{
					Index: 7, Name: "t1", MTU: 1400, TxQueueLen: ptr(uint32(500)), Address: mac,
					Up: ptr(true), Master: ptr(uint32(3)), Group: ptr(uint32(9)), Alias: ptr("vm"),
					AddrGenModeNone: true,
				})
			},
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				a := lm.Attributes
				if lm.Index != 7 || lm.Flags != unix.IFF_UP || lm.Change != unix.IFF_UP {
					t.Errorf("ifinfomsg = index %d flags %#x change %#x, want 7, IFF_UP, IFF_UP", lm.Index, lm.Flags, lm.Change)
				}
				if a.Name != "t1" || a.MTU != 1400 || !slices.Equal(a.Address, mac) {
					t.Errorf("name, MTU, address = %q, %d, %v, want t1, 1400, %v", a.Name, a.MTU, a.Address, mac)
				}
				if a.Master == nil || *a.Master != 3 || a.Alias == nil || *a.Alias != "vm" {
					t.Errorf("master, alias = %v, %v, want 3, vm", a.Master, a.Alias)
				}
				if a.TxQueueLen == nil || *a.TxQueueLen != 500 || a.NetDevGroup == nil || *a.NetDevGroup != 9 {
					t.Errorf("txqlen, group = %v, %v, want 500, 9", a.TxQueueLen, a.NetDevGroup)
				}
				spec := topAttrs(t, topAttrs(t, data[unix.SizeofIfInfomsg:])[unix.IFLA_AF_SPEC])
				inet6 := topAttrs(t, spec[unix.AF_INET6])
				if got := inet6[unix.IFLA_INET6_ADDR_GEN_MODE]; !slices.Equal(got, []byte{1}) {
					t.Errorf("IFLA_INET6_ADDR_GEN_MODE = %v, want [1] (none)", got)
				}
			},
		},
		{
			name: "SetLink with port settings", typ: unix.RTM_NEWLINK, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error {
				return c.SetLink(ctx, &rtnl.LinkChange{
					Index: 7, Group: ptr(uint32(9)), Alias: ptr("vm"),
					Port: &rtnl.BridgePort{Locked: ptr(true), BcastFlood: ptr(false), McastFlood: ptr(false), State: ptr(rtnl.PortLearning)},
				})
			},
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if a := lm.Attributes; lm.Index != 7 || a.NetDevGroup == nil || *a.NetDevGroup != 9 || a.Alias == nil || *a.Alias != "vm" || a.Master != nil {
					t.Errorf("request = index %d group %v alias %v master %v, want 7, 9, vm, none", lm.Index, a.NetDevGroup, a.Alias, a.Master)
				}
				info := topAttrs(t, topAttrs(t, data[unix.SizeofIfInfomsg:])[unix.IFLA_LINKINFO])
				if len(info) != 1 {
					t.Errorf("IFLA_LINKINFO = %v, want only IFLA_INFO_SLAVE_DATA", info)
				}
				port := topAttrs(t, info[unix.IFLA_INFO_SLAVE_DATA])
				want := map[uint16][]byte{
					unix.IFLA_BRPORT_LOCKED: {1}, unix.IFLA_BRPORT_BCAST_FLOOD: {0},
					unix.IFLA_BRPORT_MCAST_FLOOD: {0}, unix.IFLA_BRPORT_STATE: {2},
				}
				if !reflect.DeepEqual(port, want) {
					t.Errorf("IFLA_INFO_SLAVE_DATA = %v, want %v", port, want)
				}
			},
		},
		{
			name: "SetLink down and release", typ: unix.RTM_NEWLINK, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error {
				return c.SetLink(ctx, &rtnl.LinkChange{Index: 7, Up: ptr(false), Master: ptr(uint32(0))})
			},
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if lm.Flags != 0 || lm.Change != unix.IFF_UP {
					t.Errorf("flags, change = %#x, %#x, want 0, IFF_UP", lm.Flags, lm.Change)
				}
				if m := lm.Attributes.Master; m == nil || *m != 0 {
					t.Errorf("IFLA_MASTER = %v, want 0", m)
				}
				a := topAttrs(t, data[unix.SizeofIfInfomsg:])
				if len(a) != 1 {
					t.Errorf("attributes = %v, want only IFLA_MASTER", a)
				}
			},
		},
		{
			name: "DeleteLink", typ: unix.RTM_DELLINK, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.DeleteLink(ctx, 7) },
			check: func(t *testing.T, data []byte) {
				if lm := unmarshalLinkMessage(t, data); lm.Index != 7 || len(data) != unix.SizeofIfInfomsg {
					t.Errorf("request = index %d, %d bytes, want index 7, a bare ifinfomsg", lm.Index, len(data))
				}
			},
		},
		{
			name: "DeleteGroup", typ: unix.RTM_DELLINK, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.DeleteGroup(ctx, 42) },
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if g := lm.Attributes.NetDevGroup; lm.Index != 0 || g == nil || *g != 42 {
					t.Errorf("request = index %d group %v, want index 0 group 42", lm.Index, g)
				}
			},
		},
		{
			name: "AddAltName", typ: unix.RTM_NEWLINKPROP, flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.AddAltName(ctx, 7, "vm-7-net0") },
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if lm.Index != 7 || !slices.Equal(lm.Attributes.AltNames, []string{"vm-7-net0"}) {
					t.Errorf("request = index %d altnames %q, want 7 [vm-7-net0]", lm.Index, lm.Attributes.AltNames)
				}
			},
		},
		{
			name: "DelAltName", typ: unix.RTM_DELLINKPROP, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.DelAltName(ctx, 7, "vm-7-net0") },
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if lm.Index != 7 || !slices.Equal(lm.Attributes.AltNames, []string{"vm-7-net0"}) {
					t.Errorf("request = index %d altnames %q, want 7 [vm-7-net0]", lm.Index, lm.Attributes.AltNames)
				}
			},
		},
		{
			name: "SetBridgePort", typ: unix.RTM_NEWLINK, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error {
				return c.SetBridgePort(ctx, 7, &rtnl.BridgePort{Learning: ptr(false), Locked: ptr(true)})
			},
			check: func(t *testing.T, data []byte) {
				lm := unmarshalLinkMessage(t, data)
				if lm.Index != 7 || lm.Change != 0 {
					t.Errorf("ifinfomsg = index %d change %#x, want 7, 0", lm.Index, lm.Change)
				}
				info := topAttrs(t, topAttrs(t, data[unix.SizeofIfInfomsg:])[unix.IFLA_LINKINFO])
				if _, ok := info[unix.IFLA_INFO_SLAVE_KIND]; ok {
					t.Error("IFLA_LINKINFO carries IFLA_INFO_SLAVE_KIND")
				}
				port := topAttrs(t, info[unix.IFLA_INFO_SLAVE_DATA])
				want := map[uint16][]byte{unix.IFLA_BRPORT_LEARNING: {0}, unix.IFLA_BRPORT_LOCKED: {1}}
				if !reflect.DeepEqual(port, want) {
					t.Errorf("IFLA_INFO_SLAVE_DATA = %v, want %v", port, want)
				}
			},
		},
		{
			name: "AddFDB", typ: unix.RTM_NEWNEIGH, flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.AddFDB(ctx, 7, mac) },
			check: func(t *testing.T, data []byte) {
				checkNdmsg(t, data, 7, mac)
			},
		},
		{
			name: "DelFDB", typ: unix.RTM_DELNEIGH, flags: netlink.Request | netlink.Acknowledge,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.DelFDB(ctx, 7, mac) },
			check: func(t *testing.T, data []byte) {
				checkNdmsg(t, data, 7, mac)
			},
		},
		{
			name: "SetNoQueue", typ: unix.RTM_NEWQDISC, flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.SetNoQueue(ctx, 7) },
			check: func(t *testing.T, data []byte) {
				const sizeofTcmsg = 20
				if len(data) < sizeofTcmsg {
					t.Fatalf("request is %d bytes, shorter than struct tcmsg", len(data))
				}
				ne := binary.NativeEndian
				ifindex, handle, parent := ne.Uint32(data[4:8]), ne.Uint32(data[8:12]), ne.Uint32(data[12:16])
				if ifindex != 7 || handle != 0 || parent != 0xFFFFFFFF {
					t.Errorf("tcmsg = ifindex %d handle %#x parent %#x, want 7, 0, TC_H_ROOT", ifindex, handle, parent)
				}
				a := topAttrs(t, data[sizeofTcmsg:])
				if got := string(a[unix.TCA_KIND]); got != "noqueue\x00" || len(a) != 1 {
					t.Errorf("attributes = %v, want only TCA_KIND noqueue", a)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []netlink.Message
			c := rtnl.NewConn(nltest.Dial(nltest.CheckRequest(
				[]netlink.HeaderType{tt.typ}, []netlink.HeaderFlags{tt.flags},
				func(req []netlink.Message) ([]netlink.Message, error) {
					got = append(got, req...)
					if req[0].Header.Type == unix.RTM_GETLINK {
						return []netlink.Message{linkAnswer(req[0], tapPayload(t))}, nil
					}
					return []netlink.Message{ack(req[0])}, nil
				})))
			defer c.Close()
			if err := tt.do(t.Context(), c); err != nil {
				t.Fatalf("%s = %v, want nil", tt.name, err)
			}
			if len(got) != 1 {
				t.Fatalf("%s sent %d messages, want 1", tt.name, len(got))
			}
			tt.check(t, got[0].Data)
		})
	}
}

// checkSkipStats checks that a link request asks the kernel to leave the
// statistics out (IFLA_EXT_MASK with RTEXT_FILTER_SKIP_STATS).
func checkSkipStats(t *testing.T, data []byte) {
	t.Helper()
	const rtextFilterSkipStats = 1 << 3
	got := topAttrs(t, data[unix.SizeofIfInfomsg:])[unix.IFLA_EXT_MASK]
	if len(got) != 4 || binary.NativeEndian.Uint32(got) != rtextFilterSkipStats {
		t.Errorf("IFLA_EXT_MASK = %v, want RTEXT_FILTER_SKIP_STATS", got)
	}
}

func checkNdmsg(t *testing.T, data []byte, index uint32, mac net.HardwareAddr) {
	t.Helper()
	if len(data) < unix.SizeofNdMsg {
		t.Fatalf("request is %d bytes, shorter than struct ndmsg", len(data))
	}
	ne := binary.NativeEndian
	family, ifindex, state, flags := data[0], ne.Uint32(data[4:8]), ne.Uint16(data[8:10]), data[10]
	if family != unix.AF_BRIDGE || ifindex != index || state != unix.NUD_NOARP || flags != unix.NTF_MASTER {
		t.Errorf("ndmsg = family %d ifindex %d state %#x flags %#x, want AF_BRIDGE, %d, NUD_NOARP, NTF_MASTER",
			family, ifindex, state, flags, index)
	}
	a := topAttrs(t, data[unix.SizeofNdMsg:])
	if got := a[unix.NDA_LLADDR]; !slices.Equal(got, mac) || len(a) != 1 {
		t.Errorf("attributes = %v, want only NDA_LLADDR %v", a, mac)
	}
}

func TestLinksRequest(t *testing.T) {
	tests := []struct {
		name   string
		filter *rtnl.LinkFilter
		master uint32
		kind   string
	}{
		{"nil filter", nil, 0, ""},
		{"zero filter", &rtnl.LinkFilter{}, 0, ""},
		{"master", &rtnl.LinkFilter{Master: 3}, 3, ""},
		{"kind", &rtnl.LinkFilter{Kind: "tun"}, 0, "tun"},
		{"master and kind", &rtnl.LinkFilter{Master: 3, Kind: "veth"}, 3, "veth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rtnl.NewConn(nltest.Dial(nltest.CheckRequest(
				[]netlink.HeaderType{unix.RTM_GETLINK}, []netlink.HeaderFlags{netlink.Request | netlink.Dump},
				func(req []netlink.Message) ([]netlink.Message, error) {
					lm := unmarshalLinkMessage(t, req[0].Data)
					var master uint32
					if lm.Attributes.Master != nil {
						master = *lm.Attributes.Master
					}
					var kind string
					if lm.Attributes.Info != nil {
						kind = lm.Attributes.Info.Kind
					}
					if master != tt.master || kind != tt.kind {
						t.Errorf("dump request filters master %d kind %q, want %d %q", master, kind, tt.master, tt.kind)
					}
					checkSkipStats(t, req[0].Data)
					return dumpAnswer(req[0], netlink.Multi, tapPayload(t)), nil
				})))
			defer c.Close()
			links, err := c.Links(t.Context(), tt.filter)
			if err != nil {
				t.Fatalf("Links(%+v) = %v", tt.filter, err)
			}
			if want := []rtnl.Link{*tapLink()}; !reflect.DeepEqual(links, want) {
				t.Errorf("Links(%+v) = %+v, want %+v", tt.filter, links, want)
			}
		})
	}
}

func TestLinksMultipart(t *testing.T) {
	var payloads [][]byte
	var want []rtnl.Link
	for i := uint32(1); i <= 9; i++ {
		name := fmt.Sprintf("t%d", i)
		payloads = append(payloads, linkPayload(t, i, 0, func(ae *netlink.AttributeEncoder) {
			ae.String(unix.IFLA_IFNAME, name)
		}))
		want = append(want, rtnl.Link{Index: i, Name: name, Type: unix.ARPHRD_ETHER, AddrGenMode: -1})
	}
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		return dumpAnswer(req[0], netlink.Multi, payloads...), nil
	}))
	defer c.Close()
	got, err := c.Links(t.Context(), nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Links(nil) = %+v, %v, want %+v, nil", got, err, want)
	}

	// An empty dump is an empty result.
	c = rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		return dumpAnswer(req[0], netlink.Multi), nil
	}))
	defer c.Close()
	if got, err := c.Links(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("Links(nil) of an empty dump = %+v, %v, want none, nil", got, err)
	}
}

func TestUnmarshalLink(t *testing.T) {
	dataFirst := linkPayload(t, 4, 0, func(ae *netlink.AttributeEncoder) {
		ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.IFLA_INFO_SLAVE_DATA, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(unix.IFLA_BRPORT_LEARNING, 1)
				return nil
			})
			ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(unix.IFLA_TUN_TYPE, unix.IFF_TUN)
				ae.Uint8(unix.IFLA_TUN_PI, 1)
				return nil
			})
			ae.String(unix.IFLA_INFO_SLAVE_KIND, "bridge")
			ae.String(unix.IFLA_INFO_KIND, "tun")
			return nil
		})
	})
	tests := []struct {
		name    string
		b       []byte
		want    *rtnl.Link
		wantErr bool
	}{
		{
			name: "ifinfomsg only",
			b:    linkPayload(t, 9, unix.IFF_LOOPBACK, nil),
			want: &rtnl.Link{Index: 9, Flags: unix.IFF_LOOPBACK, Type: unix.ARPHRD_ETHER, AddrGenMode: -1},
		},
		{name: "TAP on a bridge", b: tapPayload(t), want: tapLink()},
		{
			name: "data before kind",
			b:    dataFirst,
			want: &rtnl.Link{
				Index: 4, Type: unix.ARPHRD_ETHER, AddrGenMode: -1, Kind: "tun", SlaveKind: "bridge",
				Tun:  &rtnl.TunInfo{PI: true},
				Port: &rtnl.PortInfo{Learning: true},
			},
		},
		{
			name: "other kinds keep no driver data",
			b: linkPayload(t, 5, 0, func(ae *netlink.AttributeEncoder) {
				ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
					ae.String(unix.IFLA_INFO_KIND, "veth")
					ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
						ae.Uint8(unix.IFLA_TUN_TYPE, unix.IFF_TAP) // would be a TAP if read
						return nil
					})
					ae.String(unix.IFLA_INFO_SLAVE_KIND, "bond")
					ae.Nested(unix.IFLA_INFO_SLAVE_DATA, func(ae *netlink.AttributeEncoder) error {
						ae.Uint8(unix.IFLA_BRPORT_LEARNING, 1)
						return nil
					})
					return nil
				})
			}),
			want: &rtnl.Link{Index: 5, Type: unix.ARPHRD_ETHER, AddrGenMode: -1, Kind: "veth", SlaveKind: "bond"},
		},
		{
			name: "tun kind without data",
			b: linkPayload(t, 6, 0, func(ae *netlink.AttributeEncoder) {
				ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
					ae.String(unix.IFLA_INFO_KIND, "tun")
					return nil
				})
			}),
			want: &rtnl.Link{Index: 6, Type: unix.ARPHRD_ETHER, AddrGenMode: -1, Kind: "tun"},
		},
		{
			name: "IPv6 state without mode",
			b: linkPayload(t, 8, 0, func(ae *netlink.AttributeEncoder) {
				ae.Nested(unix.IFLA_AF_SPEC, func(ae *netlink.AttributeEncoder) error {
					ae.Nested(unix.AF_INET6, func(ae *netlink.AttributeEncoder) error {
						ae.Uint32(unix.IFLA_INET6_FLAGS, 0)
						return nil
					})
					return nil
				})
			}),
			want: &rtnl.Link{Index: 8, Type: unix.ARPHRD_ETHER, AddrGenMode: -1},
		},
		{name: "empty", b: nil, wantErr: true},
		{name: "short ifinfomsg", b: make([]byte, 15), wantErr: true},
		{name: "truncated attribute header", b: append(linkPayload(t, 1, 0, nil), 8, 0), wantErr: true},
		{name: "attribute longer than message", b: append(linkPayload(t, 1, 0, nil), 12, 0, 3, 0, 't', '0', 0, 0), wantErr: true},
		{
			name: "MTU of 2 bytes",
			b: linkPayload(t, 1, 0, func(ae *netlink.AttributeEncoder) {
				ae.Uint16(unix.IFLA_MTU, 1500)
			}),
			wantErr: true,
		},
		{
			name: "bad TUN data",
			b: linkPayload(t, 1, 0, func(ae *netlink.AttributeEncoder) {
				ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
					ae.String(unix.IFLA_INFO_KIND, "tun")
					ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
						ae.Uint32(unix.IFLA_TUN_PERSIST, 1)
						return nil
					})
					return nil
				})
			}),
			wantErr: true,
		},
		{
			name: "bad alternative-name list",
			b: linkPayload(t, 1, 0, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(unix.IFLA_PROP_LIST, []byte{9, 0, 0x35})
			}),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rtnl.UnmarshalLink(tt.b)
			if tt.wantErr {
				if err == nil {
					t.Errorf("UnmarshalLink(%x) = %+v, nil, want an error", tt.b, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("UnmarshalLink(%x) = %+v, %v, want %+v, nil", tt.b, got, err, tt.want)
			}
		})
	}
}

func TestGetsDecodeAnswer(t *testing.T) {
	tests := []struct {
		name string
		get  func(ctx context.Context, c *rtnl.Conn) (*rtnl.Link, error)
	}{
		{"LinkByName", func(ctx context.Context, c *rtnl.Conn) (*rtnl.Link, error) { return c.LinkByName(ctx, "t0") }},
		{"LinkByIndex", func(ctx context.Context, c *rtnl.Conn) (*rtnl.Link, error) { return c.LinkByIndex(ctx, 7) }},
		{"LinkByAltName", func(ctx context.Context, c *rtnl.Conn) (*rtnl.Link, error) { return c.LinkByAltName(ctx, "vm-7-tap") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				return []netlink.Message{linkAnswer(req[0], tapPayload(t))}, nil
			}))
			defer c.Close()
			got, err := tt.get(t.Context(), c)
			if want := tapLink(); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %+v, %v, want %+v, nil", tt.name, got, err, want)
			}
		})
	}
}

// A Batch can be executed again; a get's destination must then describe
// the second answer alone, not a merge of both.
func TestExecAgainRefillsDestination(t *testing.T) {
	answers := [][]byte{
		tapPayload(t),
		linkPayload(t, 7, 0, func(ae *netlink.AttributeEncoder) {
			ae.String(unix.IFLA_IFNAME, "t0")
		}),
	}
	n := 0
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		a := answers[n]
		n++
		return []netlink.Message{linkAnswer(req[0], a)}, nil
	}))
	defer c.Close()
	var b rtnl.Batch
	var l rtnl.Link
	b.GetLinkByIndex(7, &l)
	for i, want := range []*rtnl.Link{
		tapLink(),
		{Index: 7, Name: "t0", Type: unix.ARPHRD_ETHER, AddrGenMode: -1},
	} {
		if _, err := c.Exec(t.Context(), &b); err != nil {
			t.Fatalf("Exec #%d = %v", i+1, err)
		}
		if !reflect.DeepEqual(&l, want) {
			t.Errorf("after Exec #%d, destination = %+v, want %+v", i+1, l, *want)
		}
	}
}

func TestKernelErrors(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	type op struct {
		name string
		do   func(ctx context.Context, c *rtnl.Conn) error
	}
	var (
		linkByName    = op{"LinkByName", func(ctx context.Context, c *rtnl.Conn) error { _, err := c.LinkByName(ctx, "t0"); return err }}
		linkByIndex   = op{"LinkByIndex", func(ctx context.Context, c *rtnl.Conn) error { _, err := c.LinkByIndex(ctx, 7); return err }}
		linkByAltName = op{"LinkByAltName", func(ctx context.Context, c *rtnl.Conn) error { _, err := c.LinkByAltName(ctx, "x"); return err }}
		indexByName   = op{"IndexByName", func(ctx context.Context, c *rtnl.Conn) error { _, err := c.IndexByName(ctx, "t0"); return err }}
		setLink       = op{"SetLink", func(ctx context.Context, c *rtnl.Conn) error {
			return c.SetLink(ctx, &rtnl.LinkChange{Index: 7, MTU: 10})
		}}
		deleteLink    = op{"DeleteLink", func(ctx context.Context, c *rtnl.Conn) error { return c.DeleteLink(ctx, 7) }}
		deleteGroup   = op{"DeleteGroup", func(ctx context.Context, c *rtnl.Conn) error { return c.DeleteGroup(ctx, 9) }}
		addAltName    = op{"AddAltName", func(ctx context.Context, c *rtnl.Conn) error { return c.AddAltName(ctx, 7, "x") }}
		delAltName    = op{"DelAltName", func(ctx context.Context, c *rtnl.Conn) error { return c.DelAltName(ctx, 7, "x") }}
		setBridgePort = op{"SetBridgePort", func(ctx context.Context, c *rtnl.Conn) error {
			return c.SetBridgePort(ctx, 7, &rtnl.BridgePort{Learning: ptr(true)})
		}}
		addFDB     = op{"AddFDB", func(ctx context.Context, c *rtnl.Conn) error { return c.AddFDB(ctx, 7, mac) }}
		delFDB     = op{"DelFDB", func(ctx context.Context, c *rtnl.Conn) error { return c.DelFDB(ctx, 7, mac) }}
		setNoQueue = op{"SetNoQueue", func(ctx context.Context, c *rtnl.Conn) error { return c.SetNoQueue(ctx, 7) }}
		addClsact  = op{"AddClsact", func(ctx context.Context, c *rtnl.Conn) error { return c.AddClsact(ctx, 7) }}
		clsact     = op{"Clsact", func(ctx context.Context, c *rtnl.Conn) error { _, err := c.Clsact(ctx, 7); return err }}
		setBPF     = op{"SetIngressBPF", func(ctx context.Context, c *rtnl.Conn) error {
			return c.SetIngressBPF(ctx, 7, []rtnl.SockFilter{{Op: 6}})
		}}
		getBPF = op{"IngressBPF", func(ctx context.Context, c *rtnl.Conn) error { _, err := c.IngressBPF(ctx, 7); return err }}
	)
	tests := []struct {
		op    op
		errno unix.Errno
		want  error // nil: the errno means success
	}{
		{linkByName, unix.ENODEV, unix.ENODEV},
		{linkByIndex, unix.ENODEV, unix.ENODEV},
		{linkByAltName, unix.ENODEV, unix.ENODEV},
		{indexByName, unix.ENODEV, unix.ENODEV},
		{linkByName, unix.EINVAL, unix.EINVAL},
		{setLink, unix.ENODEV, unix.ENODEV},
		{setLink, unix.EINVAL, unix.EINVAL},
		{setLink, unix.EEXIST, os.ErrExist},
		{deleteLink, unix.ENODEV, nil},
		{deleteLink, unix.EOPNOTSUPP, unix.EOPNOTSUPP},
		{deleteLink, unix.EPERM, os.ErrPermission},
		{deleteGroup, unix.ENODEV, nil},
		{deleteGroup, unix.EOPNOTSUPP, unix.EOPNOTSUPP},
		{addAltName, unix.EEXIST, unix.EEXIST},
		{addAltName, unix.ENODEV, unix.ENODEV},
		{delAltName, unix.ENOENT, nil},
		{delAltName, unix.ENODEV, nil},
		{delAltName, unix.EINVAL, unix.EINVAL},
		{setBridgePort, unix.EOPNOTSUPP, unix.EOPNOTSUPP},
		{setBridgePort, unix.ENODEV, unix.ENODEV},
		{addFDB, unix.EOPNOTSUPP, unix.EOPNOTSUPP},
		{delFDB, unix.ENOENT, nil},
		{delFDB, unix.ENODEV, unix.ENODEV},
		{setNoQueue, unix.ENODEV, unix.ENODEV},
		{addClsact, unix.ENODEV, unix.ENODEV},
		{addClsact, unix.EINVAL, unix.EINVAL},
		{addClsact, unix.EEXIST, os.ErrExist},
		{clsact, unix.ENOENT, unix.ENOENT},
		{clsact, unix.ENODEV, unix.ENODEV},
		{setBPF, unix.ENODEV, unix.ENODEV},
		{setBPF, unix.EINVAL, unix.EINVAL},
		{getBPF, unix.ENODEV, unix.ENODEV},
		{getBPF, unix.ENOENT, nil},
		{getBPF, unix.EINVAL, unix.EINVAL},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.op.name, unix.ErrnoName(tt.errno)), func(t *testing.T) {
			var sent int
			c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				sent += len(req)
				return []netlink.Message{errAnswer(req[0], tt.errno)}, nil
			}))
			defer c.Close()
			err := tt.op.do(t.Context(), c)
			if sent != 1 {
				t.Errorf("%s sent %d requests, want 1", tt.op.name, sent)
			}
			if tt.want == nil {
				if err != nil {
					t.Errorf("%s with kernel error %s = %v, want nil", tt.op.name, unix.ErrnoName(tt.errno), err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("%s with kernel error %s = %v, want an error satisfying errors.Is(err, %v)", tt.op.name, unix.ErrnoName(tt.errno), err, tt.want)
			}
			var oe *netlink.OpError
			if !errors.As(err, &oe) {
				t.Errorf("%s = %v, want a *netlink.OpError in the chain", tt.op.name, err)
			}
		})
	}
}

func TestBatchAnswersInOrder(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	var b rtnl.Batch
	var l rtnl.Link
	b.SetLink(&rtnl.LinkChange{Index: 7, MTU: 1400})
	b.GetLinkByIndex(7, &l)
	b.AddFDB(7, mac)
	b.DeleteLink(8)
	b.SetNoQueue(7) // answered EINVAL: the last request fails
	if b.Len() != 5 {
		t.Fatalf("Batch.Len() = %d, want 5", b.Len())
	}
	types := []netlink.HeaderType{unix.RTM_NEWLINK, unix.RTM_GETLINK, unix.RTM_NEWNEIGH, unix.RTM_DELLINK, unix.RTM_NEWQDISC}
	flags := []netlink.HeaderFlags{
		netlink.Request | netlink.Acknowledge,
		netlink.Request,
		netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace,
		netlink.Request | netlink.Acknowledge,
		netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace,
	}
	calls := 0
	c := rtnl.NewConn(nltest.Dial(nltest.CheckRequest(types, flags, func(req []netlink.Message) ([]netlink.Message, error) {
		calls++
		for i := 1; i < len(req); i++ {
			if req[i].Header.Sequence != req[i-1].Header.Sequence+1 {
				t.Errorf("request %d has sequence %d after %d", i, req[i].Header.Sequence, req[i-1].Header.Sequence)
			}
		}
		return []netlink.Message{
			ack(req[0]),
			linkAnswer(req[1], tapPayload(t)),
			ack(req[2]),
			ack(req[3]),
			errAnswer(req[4], unix.EINVAL),
		}, nil
	})))
	defer c.Close()
	res, err := c.Exec(t.Context(), &b)
	if calls != 1 {
		t.Errorf("Exec wrote %d times, want once", calls)
	}
	if len(res) != 5 {
		t.Fatalf("Exec = %d results, want 5", len(res))
	}
	for i, e := range res[:4] {
		if e != nil {
			t.Errorf("Exec result %d = %v, want nil", i, e)
		}
	}
	if !errors.Is(res[4], unix.EINVAL) || !strings.Contains(res[4].Error(), "noqueue") {
		t.Errorf("Exec result 4 = %v, want the SetNoQueue request's EINVAL", res[4])
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("Exec joined error = %v, want it to satisfy errors.Is(err, EINVAL)", err)
	}
	if want := tapLink(); !reflect.DeepEqual(&l, want) {
		t.Errorf("GetLinkByIndex destination = %+v, want %+v", l, *want)
	}
}

// With one datagram per answer, as the kernel sends them, a failure
// anywhere in a batch is attributed to its own request.
func TestBatchErrorsAnywhere(t *testing.T) {
	const n = 40
	fail := func(i int) bool { return i%7 == 3 }
	c := rtnl.NewConn(nltest.Dial(oneByOne(func(i int, req netlink.Message) netlink.Message {
		if fail(i) {
			return errAnswer(req, unix.ENODEV)
		}
		return ack(req)
	})))
	defer c.Close()
	// Every third request is a delete, for which ENODEV means done.
	isDelete := func(i int) bool { return i%3 == 0 }
	var b rtnl.Batch
	for i := range n {
		if isDelete(i) {
			b.DeleteLink(uint32(100 + i))
		} else {
			b.SetLink(&rtnl.LinkChange{Index: uint32(100 + i), Group: ptr(uint32(1))})
		}
	}
	res, err := c.Exec(t.Context(), &b)
	if len(res) != n {
		t.Fatalf("Exec = %d results, want %d", len(res), n)
	}
	for i, e := range res {
		switch {
		case fail(i) && isDelete(i) && e != nil:
			t.Errorf("Exec result %d (a delete answered ENODEV) = %v, want nil", i, e)
		case fail(i) && isDelete(i):
		case fail(i) && !errors.Is(e, unix.ENODEV):
			t.Errorf("Exec result %d = %v, want ENODEV", i, e)
		case fail(i) && !strings.Contains(e.Error(), fmt.Sprintf("set link %d:", 100+i)):
			t.Errorf("Exec result %d = %v, want it to name link %d", i, e, 100+i)
		case !fail(i) && e != nil:
			t.Errorf("Exec result %d = %v, want nil", i, e)
		}
	}
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("Exec joined error = %v, want ENODEV", err)
	}
}

func TestBatchWindows(t *testing.T) {
	tests := []struct {
		n       int
		windows []int
	}{
		{0, nil},
		{1, []int{1}},
		{128, []int{128}},
		{129, []int{128, 1}},
		{300, []int{128, 128, 44}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			var windows []int
			var seqs []uint32
			c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				windows = append(windows, len(req))
				answers := make([]netlink.Message, len(req))
				for i, r := range req {
					seqs = append(seqs, r.Header.Sequence)
					if r.Header.PID != nltest.PID {
						t.Errorf("request PID = %d, want %d", r.Header.PID, nltest.PID)
					}
					answers[i] = ack(r)
				}
				return answers, nil
			}))
			defer c.Close()
			var b rtnl.Batch
			for i := range tt.n {
				b.DeleteLink(uint32(i + 1))
			}
			res, err := c.Exec(t.Context(), &b)
			if err != nil || len(res) != tt.n {
				t.Fatalf("Exec(%d requests) = %d results, %v, want %d, nil", tt.n, len(res), err, tt.n)
			}
			if !slices.Equal(windows, tt.windows) {
				t.Errorf("Exec(%d requests) wrote windows %v, want %v", tt.n, windows, tt.windows)
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] == seqs[i-1] {
					t.Fatalf("requests %d and %d share sequence %d", i-1, i, seqs[i])
				}
			}
		})
	}
}

func TestBatchReset(t *testing.T) {
	var b rtnl.Batch
	b.SetLink(&rtnl.LinkChange{}) // encoding error
	b.DeleteLink(1)
	b.Reset()
	if b.Len() != 0 {
		t.Fatalf("Batch.Len() after Reset = %d, want 0", b.Len())
	}
	b.DeleteLink(1)
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{ack(req[0])}, nil
	}))
	defer c.Close()
	if res, err := c.Exec(t.Context(), &b); err != nil || len(res) != 1 || res[0] != nil {
		t.Errorf("Exec after Reset = %v, %v, want [nil], nil: the encoding error must be forgotten", res, err)
	}
}

func TestEncodingErrors(t *testing.T) {
	tests := []struct {
		name string
		add  func(b *rtnl.Batch)
		want error // nil: any error
	}{
		{"SetLink index 0", func(b *rtnl.Batch) { b.SetLink(&rtnl.LinkChange{MTU: 1400}) }, nil},
		{"DeleteLink index 0", func(b *rtnl.Batch) { b.DeleteLink(0) }, nil},
		{"DeleteGroup 0", func(b *rtnl.Batch) { b.DeleteGroup(0) }, unix.EPERM},
		{"AddAltName index 0", func(b *rtnl.Batch) { b.AddAltName(0, "x") }, nil},
		{"DelAltName index 0", func(b *rtnl.Batch) { b.DelAltName(0, "x") }, nil},
		{"SetBridgePort index 0", func(b *rtnl.Batch) { b.SetBridgePort(0, &rtnl.BridgePort{Learning: ptr(true)}) }, nil},
		{"SetBridgePort state 5", func(b *rtnl.Batch) { b.SetBridgePort(7, &rtnl.BridgePort{State: ptr(rtnl.PortState(5))}) }, nil},
		{"SetLink Port with Master", func(b *rtnl.Batch) {
			b.SetLink(&rtnl.LinkChange{Index: 7, Master: ptr(uint32(3)), Port: &rtnl.BridgePort{Locked: ptr(true)}})
		}, nil},
		{"SetLink Port with nomaster", func(b *rtnl.Batch) {
			b.SetLink(&rtnl.LinkChange{Index: 7, Master: ptr(uint32(0)), Port: &rtnl.BridgePort{}})
		}, nil},
		{"AddFDB index 0", func(b *rtnl.Batch) { b.AddFDB(0, net.HardwareAddr{2, 0, 0, 0, 0, 1}) }, nil},
		{"AddFDB MAC of 5 bytes", func(b *rtnl.Batch) { b.AddFDB(7, net.HardwareAddr{2, 0, 0, 0, 1}) }, nil},
		{"AddFDB MAC of 8 bytes", func(b *rtnl.Batch) { b.AddFDB(7, make(net.HardwareAddr, 8)) }, nil},
		{"DelFDB nil MAC", func(b *rtnl.Batch) { b.DelFDB(7, nil) }, nil},
		{"DelFDBSelf index 0", func(b *rtnl.Batch) { b.DelFDBSelf(0, net.HardwareAddr{2, 0, 0, 0, 0, 1}) }, nil},
		{"AddFDBWith Use and Sticky", func(b *rtnl.Batch) {
			b.AddFDBWith(7, net.HardwareAddr{2, 0, 0, 0, 0, 1}, &rtnl.FDBOptions{Use: true, Sticky: true})
		}, nil},
		{"AddFDBWith Use and Exclusive", func(b *rtnl.Batch) {
			b.AddFDBWith(7, net.HardwareAddr{2, 0, 0, 0, 0, 1}, &rtnl.FDBOptions{Use: true, Exclusive: true})
		}, nil},
		{"GetFDBEntry MAC of 5 bytes", func(b *rtnl.Batch) { b.GetFDBEntry(7, net.HardwareAddr{2, 0, 0, 0, 1}, new(rtnl.FDBEntry)) }, nil},
		{"SetNoQueue index 0", func(b *rtnl.Batch) { b.SetNoQueue(0) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rtnl.NewConn(nltest.Dial(neverCalled(t)))
			defer c.Close()
			// The bad request sits between good ones: nothing at all is sent.
			var b rtnl.Batch
			b.DeleteLink(5)
			tt.add(&b)
			b.DeleteLink(6)
			res, err := c.Exec(t.Context(), &b)
			if err == nil {
				t.Fatalf("Exec(%s) = nil error, want an encoding error", tt.name)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Exec(%s) = %v, want errors.Is(err, %v)", tt.name, err, tt.want)
			}
			if len(res) != 3 {
				t.Fatalf("Exec(%s) = %d results, want 3", tt.name, len(res))
			}
			for i, e := range res {
				if e == nil {
					t.Errorf("Exec(%s) result %d = nil, want the encoding error: nothing was sent", tt.name, i)
				}
			}
		})
	}
}

func TestEncodingErrorsOfMethods(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(neverCalled(t)))
	defer c.Close()
	ctx := t.Context()
	tests := []struct {
		name string
		err  error
	}{
		{"SetLink", c.SetLink(ctx, &rtnl.LinkChange{Up: ptr(true)})},
		{"DeleteLink", c.DeleteLink(ctx, 0)},
		{"DeleteGroup", c.DeleteGroup(ctx, 0)},
		{"AddFDB", c.AddFDB(ctx, 1, net.HardwareAddr{1, 2, 3})},
		{"SetNoQueue", c.SetNoQueue(ctx, 0)},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s with invalid input = nil, want an error", tt.name)
		}
	}
	if _, err := c.IndexByName(ctx, "a-name-longer-than-ifnamsiz"); err == nil {
		t.Error("IndexByName(name of 27 bytes) = nil error, want an error")
	}
}

func TestExecAnswerSequenceMismatch(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		out := make([]netlink.Message, len(req))
		for i, r := range req {
			out[i] = ack(r)
		}
		out[1].Header.Sequence += 100
		return out, nil
	}))
	defer c.Close()
	var b rtnl.Batch
	for i := range 3 {
		b.DeleteLink(uint32(i + 1))
	}
	res, err := c.Exec(t.Context(), &b)
	if res[0] != nil {
		t.Errorf("Exec result 0 = %v, want nil", res[0])
	}
	for i := 1; i < 3; i++ {
		if res[i] == nil || !strings.Contains(res[i].Error(), "sequence") {
			t.Errorf("Exec result %d = %v, want a sequence mismatch", i, res[i])
		}
	}
	if err == nil {
		t.Error("Exec joined error = nil, want the mismatch")
	}
}

func TestExecSocketError(t *testing.T) {
	errBoom := errors.New("boom")
	c := rtnl.NewConn(nltest.Dial(func([]netlink.Message) ([]netlink.Message, error) {
		return nil, errBoom
	}))
	defer c.Close()
	var b rtnl.Batch
	b.DeleteLink(1)
	b.DeleteLink(2)
	res, err := c.Exec(t.Context(), &b)
	for i, e := range res {
		if !errors.Is(e, errBoom) {
			t.Errorf("Exec result %d = %v, want the socket error", i, e)
		}
	}
	if !errors.Is(err, errBoom) {
		t.Errorf("Exec = %v, want the socket error", err)
	}
}

// A failed recvmsg (here ENOBUFS, what an overrun socket reports) is not a
// kernel answer to the request being read: the whole rest of the batch
// gets it, and Exec does not read on.
func TestExecReceiveErrnoIsNotAnAnswer(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			t.Error("Exec read again after a failed recvmsg")
			return nil, errors.New("unexpected receive")
		}
		return nil, unix.ENOBUFS
	}))
	defer c.Close()
	var b rtnl.Batch
	b.DeleteLink(1) // ENOBUFS must not be read as this request's answer...
	b.DeleteLink(2)
	res, err := c.Exec(t.Context(), &b)
	for i, e := range res {
		var se *os.SyscallError
		if !errors.As(e, &se) || !errors.Is(e, unix.ENOBUFS) {
			t.Errorf("Exec result %d = %v, want the recvmsg error", i, e)
		}
	}
	if !errors.Is(err, unix.ENOBUFS) {
		t.Errorf("Exec = %v, want ENOBUFS", err)
	}
}

func TestExecNoAnswer(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(func([]netlink.Message) ([]netlink.Message, error) {
		return nil, nil // swallowed: every receive comes back empty
	}))
	defer c.Close()
	var b rtnl.Batch
	b.DeleteLink(1)
	res, err := c.Exec(t.Context(), &b)
	if err == nil || len(res) != 1 || res[0] == nil {
		t.Errorf("Exec with no answer = %v, %v, want an error, not a hang", res, err)
	}
}

func TestExecEmptyBatch(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(neverCalled(t)))
	defer c.Close()
	var b rtnl.Batch
	res, err := c.Exec(t.Context(), &b)
	if len(res) != 0 || err != nil {
		t.Errorf("Exec(empty batch) = %v, %v, want [], nil", res, err)
	}
}

func TestContextDone(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(neverCalled(t)))
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var b rtnl.Batch
	b.DeleteLink(1)
	b.DeleteLink(2)
	res, err := c.Exec(ctx, &b)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Exec(canceled) = %v, want context.Canceled", err)
	}
	for i, e := range res {
		if !errors.Is(e, context.Canceled) {
			t.Errorf("Exec(canceled) result %d = %v, want context.Canceled", i, e)
		}
	}
	tests := []struct {
		name string
		err  error
	}{
		{"LinkByName", func() error { _, err := c.LinkByName(ctx, "t0"); return err }()},
		{"IndexByName", func() error { _, err := c.IndexByName(ctx, "t0"); return err }()},
		{"Links", func() error { _, err := c.Links(ctx, nil); return err }()},
		{"DeleteLink", c.DeleteLink(ctx, 1)},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, context.Canceled) {
			t.Errorf("%s(canceled) = %v, want context.Canceled", tt.name, tt.err)
		}
	}
}

// A canceled context stops a batch between windows: the first window's
// requests have their answers, the rest carry the context error.
func TestContextDoneBetweenWindows(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		cancel()
		out := make([]netlink.Message, len(req))
		for i, r := range req {
			out[i] = ack(r)
		}
		return out, nil
	}))
	defer c.Close()
	var b rtnl.Batch
	for i := range 200 {
		b.DeleteLink(uint32(i + 1))
	}
	res, err := c.Exec(ctx, &b)
	for i, e := range res {
		if i < 128 && e != nil {
			t.Errorf("Exec result %d = %v, want nil (answered before the cancel)", i, e)
		}
		if i >= 128 && !errors.Is(e, context.Canceled) {
			t.Errorf("Exec result %d = %v, want context.Canceled", i, e)
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Exec = %v, want context.Canceled", err)
	}
}

func TestIndexByNameWithoutSocket(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(nltest.CheckRequest(
		[]netlink.HeaderType{unix.RTM_GETLINK}, []netlink.HeaderFlags{netlink.Request},
		func(req []netlink.Message) ([]netlink.Message, error) {
			if lm := unmarshalLinkMessage(t, req[0].Data); lm.Attributes.Name != "t0" {
				t.Errorf("RTM_GETLINK for name %q, want t0", lm.Attributes.Name)
			}
			return []netlink.Message{linkAnswer(req[0], tapPayload(t))}, nil
		})))
	defer c.Close()
	if got, err := c.IndexByName(t.Context(), "t0"); got != 7 || err != nil {
		t.Errorf("IndexByName(t0) = %d, %v, want 7, nil", got, err)
	}
}

func TestDumpInterrupted(t *testing.T) {
	stale := linkPayload(t, 1, 0, func(ae *netlink.AttributeEncoder) { ae.String(unix.IFLA_IFNAME, "stale") })
	fresh := linkPayload(t, 2, 0, func(ae *netlink.AttributeEncoder) { ae.String(unix.IFLA_IFNAME, "fresh") })
	tests := []struct {
		name        string
		interrupted int  // attempts the kernel marks interrupted
		late        bool // the mark comes on the second message, not the first
		wantErr     bool
		wantLinks   []string
	}{
		{name: "never", interrupted: 0, wantLinks: []string{"fresh"}},
		{name: "first attempt", interrupted: 1, wantLinks: []string{"fresh"}},
		{name: "first attempt, after one link", interrupted: 1, late: true, wantLinks: []string{"fresh"}},
		{name: "all but the last attempt", interrupted: 10, wantLinks: []string{"fresh"}},
		{name: "all but the last attempt, after one link", interrupted: 10, late: true, wantLinks: []string{"fresh"}},
		{name: "always", interrupted: 1000, wantErr: true},
		{name: "always, after one link", interrupted: 1000, late: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts := 0
			c := rtnl.NewConn(nltest.Dial(nltest.CheckRequest(
				[]netlink.HeaderType{unix.RTM_GETLINK}, []netlink.HeaderFlags{netlink.Request | netlink.Dump},
				func(req []netlink.Message) ([]netlink.Message, error) {
					attempts++
					if attempts <= tt.interrupted && tt.late {
						// The kernel checks for changes once per
						// datagram and flags that datagram's first
						// message: what came before is already out.
						msgs := dumpAnswer(req[0], netlink.Multi, stale, stale, stale)
						msgs[1].Header.Flags |= netlink.DumpInterrupted
						return msgs, nil
					}
					if attempts <= tt.interrupted {
						return dumpAnswer(req[0], netlink.Multi|netlink.DumpInterrupted, stale, stale, stale), nil
					}
					return dumpAnswer(req[0], netlink.Multi, fresh), nil
				})))
			defer c.Close()

			links, err := c.Links(t.Context(), nil)
			var names []string
			for _, l := range links {
				names = append(names, l.Name)
			}
			wantAttempts := min(tt.interrupted+1, 11)
			if attempts != wantAttempts {
				t.Errorf("Links sent %d dump requests, want %d", attempts, wantAttempts)
			}
			if tt.wantErr {
				if !errors.Is(err, rtnl.ErrDumpInterrupted) || links != nil {
					t.Errorf("Links = %v, %v, want nil, ErrDumpInterrupted", names, err)
				}
				return
			}
			if err != nil || !slices.Equal(names, tt.wantLinks) {
				t.Errorf("Links = %v, %v, want %v, nil", names, err, tt.wantLinks)
			}
		})
	}
}

func TestWalkLinksResetEachAttempt(t *testing.T) {
	stale := linkPayload(t, 1, 0, func(ae *netlink.AttributeEncoder) { ae.String(unix.IFLA_IFNAME, "stale") })
	fresh := linkPayload(t, 2, 0, func(ae *netlink.AttributeEncoder) { ae.String(unix.IFLA_IFNAME, "fresh") })
	attempts := 0
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		attempts++
		if attempts == 1 {
			// The first message is clean; the kernel notices the change
			// only at the second one.
			msgs := dumpAnswer(req[0], netlink.Multi, stale, stale, stale)
			msgs[1].Header.Flags |= netlink.DumpInterrupted
			return msgs, nil
		}
		return dumpAnswer(req[0], netlink.Multi, fresh), nil
	}))
	defer c.Close()
	var seen []string
	resets := 0
	err := c.WalkLinks(t.Context(), nil, func(l *rtnl.Link) error {
		seen = append(seen, l.Name)
		return nil
	}, func() {
		resets++
		seen = nil
	})
	if err != nil || resets != 2 || !slices.Equal(seen, []string{"fresh"}) {
		t.Errorf("WalkLinks = %v after %d resets, %v, want [fresh] after 2, nil", seen, resets, err)
	}
}

func TestWalkLinksCallbackError(t *testing.T) {
	errStop := errors.New("stop")
	var payloads [][]byte
	for i := uint32(1); i <= 6; i++ {
		payloads = append(payloads, linkPayload(t, i, 0, nil))
	}
	dumps := 0
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req[0].Header.Flags&netlink.Dump == 0 {
			return []netlink.Message{linkAnswer(req[0], tapPayload(t))}, nil
		}
		dumps++
		return dumpAnswer(req[0], netlink.Multi, payloads...), nil
	}))
	defer c.Close()
	calls := 0
	err := c.WalkLinks(t.Context(), nil, func(*rtnl.Link) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 || dumps != 1 {
		t.Errorf("WalkLinks = %v after %d calls and %d dumps, want errStop after 1 and 1", err, calls, dumps)
	}
	// The rest of the dump was drained: the next answer is the get's.
	if l, err := c.LinkByIndex(t.Context(), 7); err != nil || l.Name != "t0" {
		t.Errorf("LinkByIndex after a stopped walk = %+v, %v, want t0, nil", l, err)
	}
}

func TestDumpSequenceMismatch(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		msgs := dumpAnswer(req[0], netlink.Multi, linkPayload(t, 1, 0, nil), linkPayload(t, 2, 0, nil))
		msgs[0].Header.Sequence++
		return msgs, nil
	}))
	defer c.Close()
	if links, err := c.Links(t.Context(), nil); err == nil || links != nil {
		t.Errorf("Links with a foreign answer = %v, %v, want nil, an error", links, err)
	}
}

func TestDumpKernelError(t *testing.T) {
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		return nltest.Error(int(unix.EINVAL), req)
	}))
	defer c.Close()
	if links, err := c.Links(t.Context(), &rtnl.LinkFilter{Kind: "tun"}); !errors.Is(err, unix.EINVAL) || links != nil {
		t.Errorf("Links = %v, %v, want nil, EINVAL", links, err)
	}
}
