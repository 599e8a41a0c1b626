package rtnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Constants x/sys/unix does not export.
const (
	// rtextFilterSkipStats (RTEXT_FILTER_SKIP_STATS, include/uapi/linux/
	// rtnetlink.h) leaves IFLA_STATS and IFLA_STATS64 out of link replies:
	// a third of a TAP's message that no caller here reads.
	rtextFilterSkipStats = 1 << 3

	// tcHRoot is TC_H_ROOT: the root of a device's egress qdisc tree.
	tcHRoot = 0xFFFFFFFF

	// tcHClsact is TC_H_CLSACT (= TC_H_INGRESS): the parent of a clsact
	// qdisc; tcHClsactHandle is its handle, TC_H_MAKE(TC_H_CLSACT, 0)
	// (ffff:); tcHIngress is the parent of its ingress filters,
	// TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS) (include/uapi/linux/
	// pkt_sched.h).
	tcHClsact       = 0xFFFFFFF1
	tcHClsactHandle = 0xFFFF0000
	tcHIngress      = 0xFFFFFFF2

	// sizeofTcMsg is sizeof(struct tcmsg).
	sizeofTcMsg = 20

	// TCA_STATS2 nested attributes (include/uapi/linux/gen_stats.h).
	tcaStatsBasic = 1 // struct gnet_stats_basic: u64 bytes, u32 packets
	tcaStatsQueue = 3 // struct gnet_stats_queue: qlen, backlog, drops, requeues, overlimits
	tcaStatsPkt64 = 8 // u64 packets, when they overflow gnet_stats_basic

	// sizeofGnetStatsBasic is sizeof(struct gnet_stats_basic) without its
	// tail padding (16 on 64-bit hosts, 12 on 32-bit ones);
	// sizeofGnetStatsQueue is sizeof(struct gnet_stats_queue).
	sizeofGnetStatsBasic = 12
	sizeofGnetStatsQueue = 20

	// cls_bpf's TCA_OPTIONS attributes (include/uapi/linux/pkt_cls.h).
	tcaBPFOpsLen = 4 // u16: number of classic instructions
	tcaBPFOps    = 5 // struct sock_filter[]
	tcaBPFFD     = 6 // u32: an eBPF program's fd (eBPF, not ours)
	tcaBPFFlags  = 8 // u32: TCA_BPF_FLAG_*

	// tcaBPFFlagActDirect is TCA_BPF_FLAG_ACT_DIRECT: the program's
	// return value is the action (TC_ACT_*), not a class id.
	tcaBPFFlagActDirect = 1

	// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE: no link-local address.
	in6AddrGenModeNone = 1
)

var ne = binary.NativeEndian

// ifinfomsg returns a struct ifinfomsg with room for attrs more bytes.
func ifinfomsg(index, flags, change uint32, extra int) []byte {
	b := make([]byte, unix.SizeofIfInfomsg, unix.SizeofIfInfomsg+extra)
	ne.PutUint32(b[4:8], index)
	ne.PutUint32(b[8:12], flags)
	ne.PutUint32(b[12:16], change)
	return b
}

// tcmsg returns a struct tcmsg with room for extra more bytes.
func tcmsg(index, handle, parent, info uint32, extra int) []byte {
	b := make([]byte, sizeofTcMsg, sizeofTcMsg+extra)
	ne.PutUint32(b[4:8], index)
	ne.PutUint32(b[8:12], handle)
	ne.PutUint32(b[12:16], parent)
	ne.PutUint32(b[16:20], info)
	return b
}

// appendAttrHeader appends the header of an attribute whose n bytes of
// data follow, n a multiple of 4 or the last thing in the message.
func appendAttrHeader(b []byte, typ uint16, n int) []byte {
	b = ne.AppendUint16(b, uint16(4+n))
	return ne.AppendUint16(b, typ)
}

// htons returns v in network byte order, as the kernel keeps a filter's
// protocol (tcm_info's low 16 bits).
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return ne.Uint16(b[:])
}

// encodeAttrs runs fn on a fresh encoder and appends the result to b.
func encodeAttrs(b []byte, fn func(ae *netlink.AttributeEncoder)) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	fn(ae)
	a, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append(b, a...), nil
}

var errBadAttr = errors.New("malformed netlink attribute")

// attrs walks the netlink attributes of b without copying them; the link
// decoder runs over every TAP of a GC scan, and netlink.AttributeDecoder
// copies each attribute, read or not. It follows the same rules as
// netlink.AttributeDecoder (lib/nlattr.c): a header of at least 4 bytes, a
// length no larger than what is left, zero-length attributes skipped over.
type attrs struct {
	b    []byte
	typ  uint16
	data []byte
	err  error
}

func (a *attrs) next() bool {
	if a.err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < 4 {
		a.err = errBadAttr
		return false
	}
	l := int(ne.Uint16(a.b[0:2]))
	switch {
	case l > len(a.b) || l != 0 && l < 4:
		a.err = errBadAttr
		return false
	case l == 0:
		l = 4
	}
	a.typ = ne.Uint16(a.b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
	a.data = a.b[4:l]
	a.b = a.b[min((l+3)&^3, len(a.b)):]
	return true
}

func (a *attrs) u8() uint8 {
	if len(a.data) != 1 {
		a.err = fmt.Errorf("attribute %d is not a uint8: %w", a.typ, errBadAttr)
		return 0
	}
	return a.data[0]
}

func (a *attrs) u16() uint16 {
	if len(a.data) != 2 {
		a.err = fmt.Errorf("attribute %d is not a uint16: %w", a.typ, errBadAttr)
		return 0
	}
	return ne.Uint16(a.data)
}

func (a *attrs) u32() uint32 {
	if len(a.data) != 4 {
		a.err = fmt.Errorf("attribute %d is not a uint32: %w", a.typ, errBadAttr)
		return 0
	}
	return ne.Uint32(a.data)
}

// str returns the attribute as a string without its trailing NULs.
func (a *attrs) str() string {
	return string(bytes.TrimRight(a.data, "\x00"))
}

// kind is str for IFLA_INFO_KIND and IFLA_INFO_SLAVE_KIND, without an
// allocation for the kinds a scan meets by the thousand.
func (a *attrs) kind() string {
	k := bytes.TrimRight(a.data, "\x00")
	for _, known := range [...]string{"tun", "bridge", "veth"} {
		if string(k) == known {
			return known
		}
	}
	return string(k)
}

// tcKind is str for TCA_KIND, without an allocation for the qdisc and
// filter kinds of tapbridge's devices.
func (a *attrs) tcKind() string {
	k := bytes.TrimRight(a.data, "\x00")
	for _, known := range [...]string{"noqueue", "clsact", "mq", "pfifo_fast", "fq_codel", "bpf"} {
		if string(k) == known {
			return known
		}
	}
	return string(k)
}
