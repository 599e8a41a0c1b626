package frames

import (
	"encoding/binary"
	"net/netip"
)

// Ethertypes.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100 // 802.1Q C-tag
	EtherTypeQinQ = 0x88a8 // 802.1ad S-tag
	EtherTypeIPv6 = 0x86dd
	EtherTypeLLDP = 0x88cc
)

// Well-known destination MACs.
var (
	Broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	STPGroup  = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00} // bridge group address
	LLDPGroup = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e} // nearest bridge
)

// Tag is an 802.1Q (TPID 0x8100) or 802.1ad (TPID 0x88a8) tag.
type Tag struct {
	TPID uint16
	TCI  uint16 // priority (3 bits), DEI (1 bit), VLAN ID (12 bits)
}

// Ethernet returns an Ethernet II frame.
func Ethernet(dst, src [6]byte, ethertype uint16, payload []byte) []byte {
	return Tagged(dst, src, nil, ethertype, payload)
}

// Tagged returns an Ethernet frame with tags, outermost first, between the
// source MAC and the ethertype.
func Tagged(dst, src [6]byte, tags []Tag, ethertype uint16, payload []byte) []byte {
	b := make([]byte, 0, 14+4*len(tags)+len(payload))
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t.TPID)
		b = binary.BigEndian.AppendUint16(b, t.TCI)
	}
	b = binary.BigEndian.AppendUint16(b, ethertype)
	return append(b, payload...)
}

// LLC returns an IEEE 802.3 frame: a length field (below 0x600) instead of
// an ethertype, then an 802.2 LLC header and the payload.
func LLC(dst, src [6]byte, dsap, ssap, control byte, payload []byte) []byte {
	n := 3 + len(payload)
	if n >= 0x600 {
		panic("frames: LLC payload too long for a length field")
	}
	return Ethernet(dst, src, uint16(n), append([]byte{dsap, ssap, control}, payload...))
}

// STPBPDU returns an 802.1D configuration BPDU from bridge src claiming to
// be the root bridge with priority 0: what a guest would send to take over
// the spanning tree.
func STPBPDU(src [6]byte) []byte {
	bpdu := []byte{
		0x00, 0x00, // protocol identifier
		0x00,       // version
		0x00,       // configuration BPDU
		0x00,       // flags
		0x00, 0x00, // root priority 0
	}
	bpdu = append(bpdu, src[:]...)           // root MAC
	bpdu = append(bpdu, 0, 0, 0, 0)          // root path cost
	bpdu = append(bpdu, 0x00, 0x00)          // bridge priority
	bpdu = append(bpdu, src[:]...)           // bridge MAC
	bpdu = append(bpdu, 0x80, 0x01)          // port ID
	bpdu = append(bpdu, 0, 0, 0x14, 0, 2, 0) // message age 0, max age 20 s, hello 2 s
	bpdu = append(bpdu, 0x0f, 0x00)          // forward delay 15 s
	return LLC(STPGroup, src, 0x42, 0x42, 0x03, bpdu)
}

// LLDP returns an LLDPDU to the nearest-bridge group address with the
// mandatory TLVs: chassis ID and port ID (both the MAC), TTL, end.
func LLDP(src [6]byte) []byte {
	tlv := func(b []byte, typ int, value []byte) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(len(value)))
		return append(b, value...)
	}
	var b []byte
	b = tlv(b, 1, append([]byte{4}, src[:]...)) // chassis ID, subtype MAC address
	b = tlv(b, 2, append([]byte{3}, src[:]...)) // port ID, subtype MAC address
	b = tlv(b, 3, []byte{0, 120})               // TTL 120 s
	b = tlv(b, 0, nil)                          // end of LLDPDU
	return Ethernet(LLDPGroup, src, EtherTypeLLDP, b)
}

// IPv4MulticastMAC returns the MAC an IPv4 multicast group maps to
// (01:00:5e + the low 23 bits, RFC 1112).
func IPv4MulticastMAC(group netip.Addr) [6]byte {
	a := v4(group)
	return [6]byte{0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]}
}

// IPv6MulticastMAC returns the MAC an IPv6 multicast group maps to (33:33 +
// the low 32 bits, RFC 2464).
func IPv6MulticastMAC(group netip.Addr) [6]byte {
	a := v6(group)
	return [6]byte{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

func v4(a netip.Addr) [4]byte {
	if !a.Is4() {
		panic("frames: " + a.String() + " is not an IPv4 address")
	}
	return a.As4()
}

func v6(a netip.Addr) [16]byte {
	if !a.Is6() {
		panic("frames: " + a.String() + " is not an IPv6 address")
	}
	return a.As16()
}
