package frames

import (
	"encoding/binary"
	"net/netip"
)

// DHCPv4 message types (option 53, RFC 2132).
const (
	DHCPDiscover = 1
	DHCPOffer    = 2
	DHCPRequest  = 3
	DHCPDecline  = 4
	DHCPAck      = 5
	DHCPNak      = 6
	DHCPRelease  = 7
	DHCPInform   = 8
)

// DHCPv6 message types (RFC 8415).
const (
	DHCPv6Solicit   = 1
	DHCPv6Advertise = 2
	DHCPv6Request   = 3
	DHCPv6Reply     = 7
	DHCPv6RelayForw = 12
	DHCPv6RelayRepl = 13
)

// UDP ports of DHCP.
const (
	DHCPServerPort   = 67
	DHCPClientPort   = 68
	DHCPv6ClientPort = 546
	DHCPv6ServerPort = 547
)

// AllDHCPv6 is All_DHCP_Relay_Agents_and_Servers, where DHCPv6 clients send.
var AllDHCPv6 = netip.MustParseAddr("ff02::1:2")

// DHCPv4 is a BOOTP message with DHCP options. Marshal adds the magic
// cookie, the message type option (53) and the end option.
type DHCPv4 struct {
	Op                             uint8 // 1 BOOTREQUEST, 2 BOOTREPLY
	XID                            uint32
	Flags                          uint16 // 0x8000: broadcast
	CIAddr, YIAddr, SIAddr, GIAddr netip.Addr
	CHAddr                         [6]byte
	MsgType                        uint8
	Options                        []byte // encoded options after the message type
}

// Marshal returns the message.
func (d DHCPv4) Marshal() []byte {
	b := make([]byte, 0, 300)
	b = append(b, d.Op, 1, 6, 0) // htype Ethernet, hlen 6, hops 0
	b = binary.BigEndian.AppendUint32(b, d.XID)
	b = append(b, 0, 0) // secs
	b = binary.BigEndian.AppendUint16(b, d.Flags)
	for _, a := range []netip.Addr{d.CIAddr, d.YIAddr, d.SIAddr, d.GIAddr} {
		a4 := addr4(a)
		b = append(b, a4[:]...)
	}
	b = append(b, d.CHAddr[:]...)
	b = append(b, make([]byte, 10+64+128)...) // chaddr padding, sname, file
	b = append(b, 99, 130, 83, 99)            // magic cookie
	b = append(b, 53, 1, d.MsgType)
	b = append(b, d.Options...)
	return append(b, 255)
}

// DHCPv4Client returns a client message (DISCOVER, REQUEST, ...) from mac
// before it has an address: 0.0.0.0:68 to 255.255.255.255:67, broadcast.
func DHCPv4Client(mac [6]byte, msgType uint8, xid uint32) []byte {
	msg := DHCPv4{Op: 1, XID: xid, CHAddr: mac, MsgType: msgType, Flags: 0x8000}
	src, dst := netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255})
	udp := UDP(src, dst, DHCPClientPort, DHCPServerPort, msg.Marshal())
	return IPv4Frame(Broadcast, mac, IPv4{Protocol: ProtoUDP, Src: src, Dst: dst}.Marshal(udp))
}

// DHCPv4Server returns a server message (OFFER, ACK, ...) from server at
// serverIP giving yiaddr to client: serverIP:67 to 255.255.255.255:68,
// broadcast, with the server identifier option. Options go into the IP
// header (to test that a filter honours the IHL).
func DHCPv4Server(server [6]byte, serverIP netip.Addr, client [6]byte, yiaddr netip.Addr, msgType uint8, xid uint32, ipOptions []byte) []byte {
	sid := addr4(serverIP)
	msg := DHCPv4{Op: 2, XID: xid, CHAddr: client, YIAddr: yiaddr, SIAddr: serverIP, MsgType: msgType,
		Flags: 0x8000, Options: append([]byte{54, 4}, sid[:]...)}
	dst := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	udp := UDP(serverIP, dst, DHCPServerPort, DHCPClientPort, msg.Marshal())
	return IPv4Frame(Broadcast, server, IPv4{Protocol: ProtoUDP, Src: serverIP, Dst: dst, Options: ipOptions}.Marshal(udp))
}

// DHCPv6 returns a DHCPv6 client/server message (RFC 8415 section 8) with
// a client identifier (DUID-LL of mac) and the encoded options that follow.
func DHCPv6(msgType uint8, txid uint32, mac [6]byte, options []byte) []byte {
	b := []byte{msgType, byte(txid >> 16), byte(txid >> 8), byte(txid)}
	duid := append([]byte{0, 3, 0, 1}, mac[:]...) // DUID-LL, hardware type Ethernet
	b = binary.BigEndian.AppendUint16(b, 1)       // OPTION_CLIENTID
	b = binary.BigEndian.AppendUint16(b, uint16(len(duid)))
	b = append(b, duid...)
	return append(b, options...)
}

// DHCPv6Client returns a client message (SOLICIT, REQUEST, ...) from mac at
// its link-local address src: [src]:546 to [ff02::1:2]:547.
func DHCPv6Client(mac [6]byte, src netip.Addr, msgType uint8, txid uint32) []byte {
	udp := UDP(src, AllDHCPv6, DHCPv6ClientPort, DHCPv6ServerPort, DHCPv6(msgType, txid, mac, nil))
	return IPv6Frame(IPv6MulticastMAC(AllDHCPv6), mac, IPv6{Src: src, Dst: AllDHCPv6}.Marshal(nil, ProtoUDP, udp))
}

// DHCPv6Server returns a server message (ADVERTISE, REPLY, ...) from server
// at src to client at dst: [src]:547 to [dst]:546.
func DHCPv6Server(server [6]byte, src netip.Addr, client [6]byte, dst netip.Addr, msgType uint8, txid uint32) []byte {
	udp := UDP(src, dst, DHCPv6ServerPort, DHCPv6ClientPort, DHCPv6(msgType, txid, client, nil))
	return IPv6Frame(client, server, IPv6{Src: src, Dst: dst}.Marshal(nil, ProtoUDP, udp))
}
