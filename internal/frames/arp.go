package frames

import (
	"encoding/binary"
	"net/netip"
)

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// ARP is an ARP message. Zero HType, PType, HLen and PLen mean Ethernet and
// IPv4 (1, 0x0800, 6, 4). A zero SPA or TPA means 0.0.0.0.
type ARP struct {
	HType, PType uint16
	HLen, PLen   uint8
	Op           uint16
	SHA          [6]byte
	SPA          netip.Addr
	THA          [6]byte
	TPA          netip.Addr
}

// Marshal returns the 28-byte ARP message.
func (a ARP) Marshal() []byte {
	b := make([]byte, 0, 28)
	b = binary.BigEndian.AppendUint16(b, or16(a.HType, 1))
	b = binary.BigEndian.AppendUint16(b, or16(a.PType, EtherTypeIPv4))
	b = append(b, or8(a.HLen, 6), or8(a.PLen, 4))
	b = binary.BigEndian.AppendUint16(b, a.Op)
	spa, tpa := addr4(a.SPA), addr4(a.TPA)
	b = append(b, a.SHA[:]...)
	b = append(b, spa[:]...)
	b = append(b, a.THA[:]...)
	return append(b, tpa[:]...)
}

// ARPFrame returns a in an Ethernet frame.
func ARPFrame(dst, src [6]byte, a ARP) []byte {
	return Ethernet(dst, src, EtherTypeARP, a.Marshal())
}

// ARPRequestFrame returns a broadcast who-has tpa from mac at spa.
func ARPRequestFrame(mac [6]byte, spa, tpa netip.Addr) []byte {
	return ARPFrame(Broadcast, mac, ARP{Op: ARPRequest, SHA: mac, SPA: spa, TPA: tpa})
}

// ARPReplyFrame returns a reply from mac at spa to dst at tpa.
func ARPReplyFrame(mac [6]byte, spa netip.Addr, dst [6]byte, tpa netip.Addr) []byte {
	return ARPFrame(dst, mac, ARP{Op: ARPReply, SHA: mac, SPA: spa, THA: dst, TPA: tpa})
}

// GratuitousARP returns a broadcast announcement that ip is at mac (a
// request with sender and target IP both ip, RFC 5227).
func GratuitousARP(mac [6]byte, ip netip.Addr) []byte {
	return ARPFrame(Broadcast, mac, ARP{Op: ARPRequest, SHA: mac, SPA: ip, TPA: ip})
}

// ARPProbe returns an RFC 5227 probe for tpa: sender IP 0.0.0.0.
func ARPProbe(mac [6]byte, tpa netip.Addr) []byte {
	return ARPFrame(Broadcast, mac, ARP{Op: ARPRequest, SHA: mac, TPA: tpa})
}

func addr4(a netip.Addr) [4]byte {
	if !a.IsValid() {
		return [4]byte{}
	}
	return v4(a)
}

func or16(v, def uint16) uint16 {
	if v == 0 {
		return def
	}
	return v
}

func or8(v, def uint8) uint8 {
	if v == 0 {
		return def
	}
	return v
}
