package frames

import (
	"encoding/binary"
	"net/netip"
)

// Well-known IPv6 multicast groups.
var (
	AllNodes   = netip.MustParseAddr("ff02::1")
	AllRouters = netip.MustParseAddr("ff02::2")
	AllMLDv2   = netip.MustParseAddr("ff02::16") // all MLDv2-capable routers
)

// IPv6 is an IPv6 header. Marshal fills in the version, payload length and
// next header.
type IPv6 struct {
	TrafficClass uint8
	FlowLabel    uint32
	HopLimit     uint8 // zero means 64
	Src, Dst     netip.Addr
}

// Ext is an IPv6 extension header: Type is its protocol number (0
// Hop-by-Hop, 43 Routing, 44 Fragment, 51 AH, 60 Destination Options) and
// Body its bytes after the next-header byte, which Marshal fills in.
type Ext struct {
	Type uint8
	Body []byte
}

// Marshal returns the header, the extension headers in order, and payload,
// an upper-layer message of protocol proto.
func (h IPv6) Marshal(exts []Ext, proto uint8, payload []byte) []byte {
	n := len(payload)
	for _, e := range exts {
		n += 1 + len(e.Body)
	}
	if n > 0xffff {
		panic("frames: IPv6 payload longer than 65535 bytes")
	}
	next := proto
	if len(exts) > 0 {
		next = exts[0].Type
	}
	b := make([]byte, 0, 40+n)
	b = binary.BigEndian.AppendUint32(b, 6<<28|uint32(h.TrafficClass)<<20|h.FlowLabel&0xfffff)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, next, or8(h.HopLimit, 64))
	src, dst := v6(h.Src), v6(h.Dst)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	for i, e := range exts {
		next = proto
		if i+1 < len(exts) {
			next = exts[i+1].Type
		}
		b = append(b, next)
		b = append(b, e.Body...)
	}
	return append(b, payload...)
}

// IPv6Frame returns an IPv6 packet in an Ethernet frame.
func IPv6Frame(dst, src [6]byte, packet []byte) []byte {
	return Ethernet(dst, src, EtherTypeIPv6, packet)
}

// HopByHop returns a Hop-by-Hop Options header holding options (encoded
// TLVs, such as RouterAlert), padded to a multiple of 8 bytes.
func HopByHop(options ...[]byte) Ext { return optionsHeader(ProtoHopByHop, options) }

// DestOpts returns a Destination Options header holding options, padded to
// a multiple of 8 bytes.
func DestOpts(options ...[]byte) Ext { return optionsHeader(ProtoDestOpts, options) }

// RouterAlert returns the Router Alert option (RFC 2711); 0 means MLD.
func RouterAlert(value uint16) []byte { return []byte{5, 2, byte(value >> 8), byte(value)} }

// PadN returns a PadN option (or Pad1 for n == 1) of n bytes in all.
func PadN(n int) []byte {
	switch {
	case n <= 0:
		return nil
	case n == 1:
		return []byte{0}
	}
	return append([]byte{1, byte(n - 2)}, make([]byte, n-2)...)
}

func optionsHeader(typ uint8, options [][]byte) Ext {
	body := []byte{0}
	for _, o := range options {
		body = append(body, o...)
	}
	body = append(body, PadN((8-(len(body)+1)%8)%8)...)
	if (len(body)+1)/8-1 > 255 {
		panic("frames: options header longer than 2048 bytes")
	}
	body[0] = byte((len(body)+1)/8 - 1)
	return Ext{Type: typ, Body: body}
}

// Routing returns a Routing header of the given type and segments left,
// its type-specific data padded with zeros to a multiple of 8 bytes.
func Routing(rtype, segmentsLeft uint8, data []byte) Ext {
	body := append([]byte{0, rtype, segmentsLeft}, data...)
	for (len(body)+1)%8 != 0 {
		body = append(body, 0)
	}
	body[0] = byte((len(body)+1)/8 - 1)
	return Ext{Type: ProtoRouting, Body: body}
}

// Fragment returns a Fragment header: offset in units of 8 bytes, the M
// (more fragments) flag and the identification.
func Fragment(offset uint16, more bool, id uint32) Ext {
	v := offset << 3
	if more {
		v |= 1
	}
	body := []byte{0, byte(v >> 8), byte(v)}
	return Ext{Type: ProtoFragment, Body: binary.BigEndian.AppendUint32(body, id)}
}

// AH returns an Authentication Header (RFC 4302) with the given SPI,
// sequence number and integrity check value; its length field counts
// 4-byte units minus 2, unlike the other extension headers.
func AH(spi, seq uint32, icv []byte) Ext {
	total := 12 + len(icv)
	if total%8 != 0 {
		panic("frames: an IPv6 AH must be a multiple of 8 bytes")
	}
	body := []byte{byte(total/4 - 2), 0, 0}
	body = binary.BigEndian.AppendUint32(body, spi)
	body = binary.BigEndian.AppendUint32(body, seq)
	return Ext{Type: ProtoAH, Body: append(body, icv...)}
}

// IPv6Fragments splits an upper-layer message of protocol proto into IPv6
// packets of at most mtu bytes: the header, the unfragmentable extension
// headers, a Fragment header with id, and a piece of payload.
func IPv6Fragments(h IPv6, unfragmentable []Ext, proto uint8, payload []byte, mtu int, id uint32) [][]byte {
	hl := 40 + 8
	for _, e := range unfragmentable {
		hl += 1 + len(e.Body)
	}
	step := (mtu - hl) / 8 * 8
	if step <= 0 {
		panic("frames: MTU too small for one fragment")
	}
	var out [][]byte
	for off := 0; ; off += step {
		end := min(off+step, len(payload))
		exts := append(append([]Ext(nil), unfragmentable...), Fragment(uint16(off/8), end < len(payload), id))
		out = append(out, h.Marshal(exts, proto, payload[off:end]))
		if end == len(payload) {
			return out
		}
	}
}

// LinkLocal returns the modified EUI-64 link-local address of mac (RFC
// 4291 appendix A).
func LinkLocal(mac [6]byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80,
		8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]})
}

// SolicitedNode returns the solicited-node multicast group of a (RFC 4291
// section 2.7.1).
func SolicitedNode(a netip.Addr) netip.Addr {
	b := v6(a)
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}
