package frames

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv6 types.
const (
	ICMPv6EchoRequest = 128
	ICMPv6EchoReply   = 129
	ICMPv6MLDQuery    = 130
	ICMPv6MLDv1Report = 131
	ICMPv6RS          = 133 // router solicitation
	ICMPv6RA          = 134 // router advertisement
	ICMPv6NS          = 135 // neighbour solicitation
	ICMPv6NA          = 136 // neighbour advertisement
	ICMPv6Redirect    = 137
	ICMPv6MLDv2Report = 143
)

// Neighbour advertisement flags.
const (
	NARouter    = 0x80
	NASolicited = 0x40
	NAOverride  = 0x20
)

// ICMPv6 returns an ICMPv6 message with its checksum over the pseudo-header
// of src and dst (the final destination).
func ICMPv6(src, dst netip.Addr, typ, code uint8, body []byte) []byte {
	b := append([]byte{typ, code, 0, 0}, body...)
	binary.BigEndian.PutUint16(b[2:], Checksum(append(pseudoHeader(src, dst, ProtoICMPv6, len(b)), b...)))
	return b
}

// ICMPv6Frame returns an Ethernet frame holding an IPv6 packet from h.Src
// to h.Dst with the extension headers exts and the ICMPv6 message.
func ICMPv6Frame(dst, src [6]byte, h IPv6, exts []Ext, typ, code uint8, body []byte) []byte {
	return IPv6Frame(dst, src, h.Marshal(exts, ProtoICMPv6, ICMPv6(h.Src, h.Dst, typ, code, body)))
}

// Echo returns the body of an echo request or reply.
func Echo(id, seq uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	return append(binary.BigEndian.AppendUint16(b, seq), data...)
}

// RS returns the body of a router solicitation.
func RS(options ...[]byte) []byte { return cat(make([]byte, 4), options) }

// RA returns the body of a router advertisement with hop limit 64, no
// flags, the router lifetime in seconds, and the options.
func RA(lifetime uint16, options ...[]byte) []byte {
	b := []byte{64, 0}
	b = binary.BigEndian.AppendUint16(b, lifetime)
	return cat(append(b, make([]byte, 8)...), options) // reachable time, retrans timer
}

// NS returns the body of a neighbour solicitation for target.
func NS(target netip.Addr, options ...[]byte) []byte {
	t := v6(target)
	return cat(append(make([]byte, 4), t[:]...), options)
}

// NA returns the body of a neighbour advertisement for target with flags
// (NARouter, NASolicited, NAOverride).
func NA(flags uint8, target netip.Addr, options ...[]byte) []byte {
	t := v6(target)
	return cat(append([]byte{flags, 0, 0, 0}, t[:]...), options)
}

// Redirect returns the body of a redirect: a better first hop target for
// destination dst.
func Redirect(target, dst netip.Addr, options ...[]byte) []byte {
	t, d := v6(target), v6(dst)
	return cat(append(append(make([]byte, 4), t[:]...), d[:]...), options)
}

// MLDv1Report returns the body of an MLDv1 report for group.
func MLDv1Report(group netip.Addr) []byte {
	g := v6(group)
	return append(make([]byte, 4), g[:]...)
}

// MLDv2Report returns the body of an MLDv2 report joining groups (one
// CHANGE_TO_EXCLUDE record with no sources each).
func MLDv2Report(groups ...netip.Addr) []byte {
	b := binary.BigEndian.AppendUint16([]byte{0, 0}, uint16(len(groups)))
	for _, g := range groups {
		a := v6(g)
		b = append(append(b, 4, 0, 0, 0), a[:]...)
	}
	return b
}

// MLDv2ReportFrame returns a complete MLDv2 report from mac at src (a
// link-local address, or :: before one is assigned) joining groups: hop
// limit 1 and a Router Alert in a Hop-by-Hop header, to ff02::16.
func MLDv2ReportFrame(mac [6]byte, src netip.Addr, groups ...netip.Addr) []byte {
	h := IPv6{HopLimit: 1, Src: src, Dst: AllMLDv2}
	return ICMPv6Frame(IPv6MulticastMAC(AllMLDv2), mac, h, []Ext{HopByHop(RouterAlert(0))}, ICMPv6MLDv2Report, 0, MLDv2Report(groups...))
}

// SLLA returns a source link-layer address option (type 1).
func SLLA(mac [6]byte) []byte { return NDOption(1, mac[:]) }

// TLLA returns a target link-layer address option (type 2).
func TLLA(mac [6]byte) []byte { return NDOption(2, mac[:]) }

// Nonce returns a nonce option (type 14, RFC 3971), as Linux sends in DAD
// solicitations (RFC 7527).
func Nonce(n [6]byte) []byte { return NDOption(14, n[:]) }

// PrefixInfo returns a prefix information option (type 3) for an RA.
func PrefixInfo(p netip.Prefix) []byte {
	a := v6(p.Addr())
	b := []byte{byte(p.Bits()), 0xc0}                          // on-link, autonomous
	b = binary.BigEndian.AppendUint32(b, 86400)                // valid lifetime
	b = binary.BigEndian.AppendUint32(b, 14400)                // preferred lifetime
	return NDOption(3, append(append(b, 0, 0, 0, 0), a[:]...)) // reserved
}

// NDOption returns a neighbour discovery option of type typ holding data,
// padded with zeros to a multiple of 8 bytes; its length field counts 8-byte
// units.
func NDOption(typ uint8, data []byte) []byte {
	b := append([]byte{typ, 0}, data...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	if len(b)/8 > 255 {
		panic("frames: ND option longer than 2040 bytes")
	}
	b[1] = byte(len(b) / 8)
	return b
}

func cat(b []byte, parts [][]byte) []byte {
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
