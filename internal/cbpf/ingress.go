package cbpf

// Ingress returns what a classic program on a TAP's tc ingress sees when a
// guest writes frame into the TAP whose own MAC is dev: the frame bytes
// (starting at the Ethernet header) and the skb's ancillary data. ok is
// false when the kernel refuses or drops the frame before tc runs.
//
// It models, in order:
//   - tun_get_user (drivers/net/tun.c): a frame shorter than an Ethernet
//     header is refused with EINVAL;
//   - eth_type_trans (net/ethernet/eth.c): skb->protocol is the ethertype,
//     or ETH_P_802_3 / ETH_P_802_2 for a length field (below 0x600), and
//     pkt_type follows the destination MAC;
//   - skb_vlan_untag, called by __netif_receive_skb_core (net/core/dev.c)
//     before tc ingress: an outer 802.1Q or 802.1ad tag is taken out of the
//     frame into vlan_tci, so the frame shows the inner ethertype at offset
//     12. Only one tag is taken out; a frame too short for the tag and the
//     two bytes after it is freed.
func Ingress(frame []byte, dev [6]byte) (data []byte, m Meta, ok bool) {
	const ethHLen = 14
	if len(frame) < ethHLen {
		return nil, Meta{}, false
	}
	data = append([]byte(nil), frame...)
	m.HAType = 1 // ARPHRD_ETHER
	m.NetOffset = ethHLen
	switch {
	case data[0]&1 == 0 && [6]byte(data[:6]) != dev:
		m.PktType = 3 // PACKET_OTHERHOST
	case data[0]&1 == 0:
		m.PktType = 0 // PACKET_HOST
	case [6]byte(data[:6]) == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}:
		m.PktType = 1 // PACKET_BROADCAST
	default:
		m.PktType = 2 // PACKET_MULTICAST
	}
	m.Protocol = encapProto(data[12:])
	if m.Protocol == 0x8100 || m.Protocol == 0x88a8 {
		// skb_vlan_untag: pskb_may_pull(VLAN_HLEN + 2) past the Ethernet header.
		if len(data) < ethHLen+4+2 {
			return nil, Meta{}, false
		}
		m.VLANPresent = true
		m.VLANTPID = m.Protocol
		m.VLANTCI = uint16(data[14])<<8 | uint16(data[15])
		m.Protocol = encapProto(data[16:])
		data = append(data[:12], data[16:]...)
	}
	return data, m, true
}

// encapProto is the protocol of the bytes after the MAC addresses (or after
// a VLAN tag): an ethertype, or ETH_P_802_3 (a raw 802.3 frame, 0xffff
// after the length field) or ETH_P_802_2 (LLC) for a length field
// (eth_type_trans, vlan_set_encap_proto).
func encapProto(b []byte) uint16 {
	proto := uint16(b[0])<<8 | uint16(b[1])
	if proto >= 0x600 {
		return proto
	}
	if len(b) >= 4 && b[2] == 0xff && b[3] == 0xff {
		return 0x0001
	}
	return 0x0004
}
