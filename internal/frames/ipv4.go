package frames

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtoHopByHop = 0
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDestOpts = 60
)

// IPv4 is an IPv4 header. Marshal fills in the version, IHL, total length
// and header checksum.
type IPv4 struct {
	TOS        uint8
	ID         uint16
	DF, MF     bool   // don't fragment, more fragments
	FragOffset uint16 // in units of 8 bytes
	TTL        uint8  // zero means 64
	Protocol   uint8
	Src, Dst   netip.Addr
	Options    []byte // padded with end-of-options to a multiple of 4 bytes, at most 40
}

// Marshal returns the header followed by payload.
func (h IPv4) Marshal(payload []byte) []byte {
	opts := append([]byte(nil), h.Options...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0) // end of option list
	}
	if len(opts) > 40 {
		panic("frames: IPv4 options longer than 40 bytes")
	}
	hl := 20 + len(opts)
	if hl+len(payload) > 0xffff {
		panic("frames: IPv4 packet longer than 65535 bytes")
	}
	b := make([]byte, 0, hl+len(payload))
	b = append(b, 0x40|byte(hl/4), h.TOS)
	b = binary.BigEndian.AppendUint16(b, uint16(hl+len(payload)))
	b = binary.BigEndian.AppendUint16(b, h.ID)
	frag := h.FragOffset & 0x1fff
	if h.DF {
		frag |= 0x4000
	}
	if h.MF {
		frag |= 0x2000
	}
	b = binary.BigEndian.AppendUint16(b, frag)
	b = append(b, or8(h.TTL, 64), h.Protocol, 0, 0)
	src, dst := addr4(h.Src), addr4(h.Dst)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	b = append(b, opts...)
	binary.BigEndian.PutUint16(b[10:], Checksum(b))
	return append(b, payload...)
}

// IPv4Fragments splits payload (a whole upper-layer datagram) into
// fragments whose IP packets are at most mtu bytes. Options are copied into
// every fragment. h.FragOffset and h.MF are ignored.
func IPv4Fragments(h IPv4, payload []byte, mtu int) [][]byte {
	hl := 20 + (len(h.Options)+3)/4*4
	step := (mtu - hl) / 8 * 8
	if step <= 0 {
		panic("frames: MTU too small for one fragment")
	}
	var out [][]byte
	for off := 0; off < len(payload) || off == 0; off += step {
		end := min(off+step, len(payload))
		f := h
		f.FragOffset = uint16(off / 8)
		f.MF = end < len(payload)
		out = append(out, f.Marshal(payload[off:end]))
		if end == len(payload) {
			break
		}
	}
	return out
}

// IPv4Frame returns an IPv4 packet in an Ethernet frame.
func IPv4Frame(dst, src [6]byte, packet []byte) []byte {
	return Ethernet(dst, src, EtherTypeIPv4, packet)
}

// UDP returns a UDP datagram with its checksum computed over the IPv4 or
// IPv6 pseudo-header of src and dst (for IPv6 the final destination, RFC
// 8200 section 8.1).
func UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 0, 8+len(payload))
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = append(b, 0, 0)
	b = append(b, payload...)
	sum := Checksum(append(pseudoHeader(src, dst, ProtoUDP, len(b)), b...))
	if sum == 0 {
		sum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(b[6:], sum)
	return b
}

// Checksum returns the Internet checksum (RFC 1071) of b: the one's
// complement of the one's complement sum of its 16-bit words. A header
// whose checksum field is right sums to a Checksum of 0.
func Checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// pseudoHeader returns the pseudo-header an upper-layer checksum covers
// (RFC 768 for IPv4, RFC 8200 section 8.1 for IPv6).
func pseudoHeader(src, dst netip.Addr, proto uint8, n int) []byte {
	if src.Is4() {
		s, d := v4(src), v4(dst)
		b := append(s[:], d[:]...)
		b = append(b, 0, proto)
		return binary.BigEndian.AppendUint16(b, uint16(n))
	}
	s, d := v6(src), v6(dst)
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return append(b, 0, 0, 0, proto)
}
