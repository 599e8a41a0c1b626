package guard_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/cbpf"
	f "github.com/tapbridge/tapbridge/internal/frames"
)

// The guest, its neighbours and the host side of its TAP.
var (
	guestMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x05}
	otherMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x06} // another VM
	gwMAC    = [6]byte{0xfe, 0x00, 0x00, 0x00, 0x00, 0x01} // the bridge
	tapMAC   = [6]byte{0xfe, 0x00, 0x00, 0x00, 0x00, 0x02} // the TAP's own MAC

	guest4   = netip.MustParseAddr("10.0.0.5")
	other4   = netip.MustParseAddr("10.0.0.6")
	gateway4 = netip.MustParseAddr("10.0.0.1")
	zero4    = netip.IPv4Unspecified()
	bcast4   = netip.MustParseAddr("255.255.255.255")

	guest6    = netip.MustParseAddr("2001:db8::5")
	other6    = netip.MustParseAddr("2001:db8::6")
	guestLL   = f.LinkLocal(guestMAC)
	otherLL   = f.LinkLocal(otherMAC)
	routerLL  = netip.MustParseAddr("fe80::1")
	unspec6   = netip.IPv6Unspecified()
	guestSN   = f.SolicitedNode(guestLL)
	nonce     = [6]byte{1, 2, 3, 4, 5, 6}
	routerOpt = []byte{0x94, 0x04, 0x00, 0x00} // IPv4 Router Alert option
)

// env is what a case's expectation depends on.
type env struct {
	enforce4, enforce6 bool // the family's source addresses are enforced
	bound4, bound6     bool // the guest's addresses guest4 / guest6 are bound
}

type verdict bool

const (
	pass verdict = true
	drop verdict = false
)

func (v verdict) String() string {
	if v {
		return "pass"
	}
	return "drop"
}

// frameCase is a frame a guest writes into its TAP and what the filter
// should do with it.
type frameCase struct {
	name  string
	frame []byte
	raw   bool // run the bytes as they are, not through cbpf.Ingress
	want  func(e env) verdict
}

func always(v verdict) func(env) verdict { return func(env) verdict { return v } }

// own4 passes where the guest may use guest4; own6 likewise for guest6.
func own4(e env) verdict { return verdict(!e.enforce4 || e.bound4) }
func own6(e env) verdict { return verdict(!e.enforce6 || e.bound6) }

// free4 passes only where IPv4 is not enforced; free6 likewise.
func free4(e env) verdict { return verdict(!e.enforce4) }
func free6(e env) verdict { return verdict(!e.enforce6) }

type policyCase struct {
	name string
	p    guard.Policy
	env  env
}

func policies() []policyCase {
	v4 := []netip.Prefix{netip.PrefixFrom(guest4, 24)}
	v6 := []netip.Prefix{netip.PrefixFrom(guest6, 64)}
	both := append(append([]netip.Prefix(nil), v6...), v4...)
	var out []policyCase
	for _, m := range []guard.Mode{guard.ModeL2, guard.ModeStrict} {
		strict := m == guard.ModeStrict
		out = append(out,
			policyCase{string(m) + " unbound", guard.Policy{Mode: m, MAC: guestMAC}, env{strict, strict, false, false}},
			policyCase{string(m) + " v4", guard.Policy{Mode: m, MAC: guestMAC, Addrs: v4, Gateway: gateway4}, env{true, strict, true, false}},
			policyCase{string(m) + " v6", guard.Policy{Mode: m, MAC: guestMAC, Addrs: v6}, env{strict, true, false, true}},
			policyCase{string(m) + " both", guard.Policy{Mode: m, MAC: guestMAC, Addrs: both, Gateway: gateway4}, env{true, true, true, true}},
		)
	}
	return out
}

// IPv4 helpers.
func ipv4(dst [6]byte, src [6]byte, h f.IPv4, payload []byte) []byte {
	return f.IPv4Frame(dst, src, h.Marshal(payload))
}

func ping4(src, dst netip.Addr, opts []byte) []byte {
	icmp := []byte{8, 0, 0, 0, 0, 1, 0, 1, 'p', 'i', 'n', 'g'}
	sum := f.Checksum(icmp)
	icmp[2], icmp[3] = byte(sum>>8), byte(sum)
	return f.IPv4{Protocol: f.ProtoICMP, Src: src, Dst: dst, Options: opts}.Marshal(icmp)
}

func udp4(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	return f.IPv4{Protocol: f.ProtoUDP, Src: src, Dst: dst}.Marshal(f.UDP(src, dst, sport, dport, payload))
}

// IPv6 helpers.
func icmp6(dst [6]byte, src [6]byte, from, to netip.Addr, hop uint8, exts []f.Ext, typ uint8, body []byte) []byte {
	return f.ICMPv6Frame(dst, src, f.IPv6{HopLimit: hop, Src: from, Dst: to}, exts, typ, 0, body)
}

func echo6(from, to netip.Addr, exts ...f.Ext) []byte {
	return icmp6(gwMAC, guestMAC, from, to, 64, exts, f.ICMPv6EchoRequest, f.Echo(1, 1, []byte("ping")))
}

func ra(exts ...f.Ext) []byte {
	return icmp6(f.IPv6MulticastMAC(f.AllNodes), guestMAC, guestLL, f.AllNodes, 255, exts, f.ICMPv6RA,
		f.RA(1800, f.SLLA(guestMAC), f.PrefixInfo(netip.MustParsePrefix("2001:db8:bad::/64"))))
}

func ns(from netip.Addr, target netip.Addr, opts ...[]byte) []byte {
	to := f.SolicitedNode(target)
	return icmp6(f.IPv6MulticastMAC(to), guestMAC, from, to, 255, nil, f.ICMPv6NS, f.NS(target, opts...))
}

func na(from netip.Addr, target netip.Addr, opts ...[]byte) []byte {
	return icmp6(f.IPv6MulticastMAC(f.AllNodes), guestMAC, from, f.AllNodes, 255, nil, f.ICMPv6NA,
		f.NA(f.NAOverride, target, opts...))
}

func udp6(from, to netip.Addr, sport, dport uint16, exts ...f.Ext) []byte {
	return f.IPv6Frame(gwMAC, guestMAC, f.IPv6{Src: from, Dst: to}.Marshal(exts, f.ProtoUDP, f.UDP(from, to, sport, dport, []byte("data"))))
}

func destOpts(n int) []f.Ext {
	exts := make([]f.Ext, n)
	for i := range exts {
		exts[i] = f.DestOpts()
	}
	return exts
}

func withSrcMAC(frame []byte, mac [6]byte) []byte {
	out := append([]byte(nil), frame...)
	copy(out[6:12], mac[:])
	return out
}

func cases() []frameCase {
	unfragUDP := func(from, to netip.Addr) []byte { return udp4(from, to, 5000, 53, []byte("query")) }
	big := make([]byte, 1600)
	for i := range big {
		big[i] = 67 // every 16-bit word reads as port 67 where a UDP header would be
	}
	frags4 := f.IPv4Fragments(f.IPv4{ID: 99, Protocol: f.ProtoUDP, Src: guest4, Dst: other4}, f.UDP(guest4, other4, 5000, 5001, big), 1000)
	frags6 := f.IPv6Fragments(f.IPv6{Src: guestLL, Dst: otherLL}, nil, f.ProtoUDP, f.UDP(guestLL, otherLL, 5000, 5001, big), 1000, 7)
	rogueFrags := f.IPv6Fragments(f.IPv6{Src: guestLL, Dst: f.AllNodes, HopLimit: 255}, nil, f.ProtoICMPv6,
		f.ICMPv6(guestLL, f.AllNodes, f.ICMPv6RA, 0, f.RA(1800, make([]byte, 1400))), 1000, 8)
	tooManyOpts := make([][]byte, guard.MaxNDOptions+1)
	for i := range tooManyOpts {
		tooManyOpts[i] = f.Nonce(nonce)
	}
	arp := func(a f.ARP) []byte { return f.ARPFrame(f.Broadcast, guestMAC, a) }
	padded := func(frame []byte) []byte {
		return append(append([]byte(nil), frame...), make([]byte, 60-len(frame))...)
	}

	return []frameCase{
		// Link layer.
		{"spoofed source MAC", withSrcMAC(ipv4(gwMAC, guestMAC, f.IPv4{Protocol: f.ProtoICMP, Src: guest4, Dst: gateway4}, nil), otherMAC), false, always(drop)},
		{"spoofed source MAC, ARP", withSrcMAC(f.ARPRequestFrame(guestMAC, guest4, gateway4), otherMAC), false, always(drop)},
		{"broadcast source MAC", withSrcMAC(f.ARPProbe(guestMAC, guest4), f.Broadcast), false, always(drop)},
		{"802.1Q tagged (tag taken into the skb)", f.Tagged(f.Broadcast, guestMAC, []f.Tag{{TPID: f.EtherTypeVLAN, TCI: 5}}, f.EtherTypeARP, f.ARP{Op: 1, SHA: guestMAC, SPA: guest4, TPA: gateway4}.Marshal()), false, always(drop)},
		{"802.1Q priority tag, VLAN 0", f.Tagged(gwMAC, guestMAC, []f.Tag{{TPID: f.EtherTypeVLAN, TCI: 0x6000}}, f.EtherTypeIPv4, ping4(guest4, gateway4, nil)), false, always(drop)},
		{"802.1ad tagged", f.Tagged(gwMAC, guestMAC, []f.Tag{{TPID: f.EtherTypeQinQ, TCI: 7}}, f.EtherTypeIPv6, echo6(guestLL, routerLL)[14:]), false, always(drop)},
		{"QinQ (inner tag left in the frame)", f.Tagged(gwMAC, guestMAC, []f.Tag{{TPID: f.EtherTypeQinQ, TCI: 7}, {TPID: f.EtherTypeVLAN, TCI: 5}}, f.EtherTypeIPv4, ping4(guest4, gateway4, nil)), false, always(drop)},
		{"802.1Q in the frame bytes", f.Tagged(gwMAC, guestMAC, []f.Tag{{TPID: f.EtherTypeVLAN, TCI: 5}}, f.EtherTypeIPv4, ping4(guest4, gateway4, nil)), true, always(drop)},
		{"802.1ad in the frame bytes", f.Tagged(gwMAC, guestMAC, []f.Tag{{TPID: f.EtherTypeQinQ, TCI: 5}}, f.EtherTypeIPv4, ping4(guest4, gateway4, nil)), true, always(drop)},
		{"STP BPDU", f.STPBPDU(guestMAC), false, always(drop)},
		{"LLC", f.LLC(gwMAC, guestMAC, 0xaa, 0xaa, 0x03, []byte{0, 0, 0, 0x08, 0x00, 0x45}), false, always(drop)},
		{"LLDP", f.LLDP(guestMAC), false, always(drop)},
		{"unknown ethertype (PPPoE discovery)", f.Ethernet(f.Broadcast, guestMAC, 0x8863, make([]byte, 46)), false, always(drop)},
		{"RARP", f.Ethernet(f.Broadcast, guestMAC, 0x8035, f.ARP{Op: 3, SHA: guestMAC, THA: guestMAC}.Marshal()), false, always(drop)},
		{"bare Ethernet header", f.Ethernet(gwMAC, guestMAC, f.EtherTypeIPv4, nil), false, always(drop)},

		// ARP.
		{"ARP request from the bound IP", f.ARPRequestFrame(guestMAC, guest4, gateway4), false, own4},
		{"ARP reply from the bound IP", f.ARPReplyFrame(guestMAC, guest4, gwMAC, gateway4), false, own4},
		{"ARP reply padded to 60 bytes", padded(f.ARPReplyFrame(guestMAC, guest4, gwMAC, gateway4)), false, own4},
		{"ARP announcement of the bound IP", f.GratuitousARP(guestMAC, guest4), false, own4},
		{"ARP probe", f.ARPProbe(guestMAC, guest4), false, always(pass)},
		{"ARP reply with another VM's IP", f.ARPReplyFrame(guestMAC, other4, gwMAC, gateway4), false, free4},
		{"gratuitous ARP claiming the gateway", f.GratuitousARP(guestMAC, gateway4), false, free4},
		{"ARP with a spoofed sender MAC", f.ARPFrame(f.Broadcast, guestMAC, f.ARP{Op: 2, SHA: otherMAC, SPA: guest4, TPA: gateway4}), false, always(drop)},
		{"ARP op 3", arp(f.ARP{Op: 3, SHA: guestMAC, SPA: guest4, TPA: gateway4}), false, always(drop)},
		{"ARP op 0", arp(f.ARP{Op: 0, SHA: guestMAC, SPA: guest4, TPA: gateway4}), false, always(drop)},
		{"ARP op 0x0101", arp(f.ARP{Op: 0x0101, SHA: guestMAC, SPA: guest4, TPA: gateway4}), false, always(drop)},
		{"ARP for another hardware type", arp(f.ARP{HType: 6, Op: 1, SHA: guestMAC, SPA: guest4, TPA: gateway4}), false, always(drop)},
		{"ARP for another protocol", arp(f.ARP{PType: 0x86dd, Op: 1, SHA: guestMAC, SPA: guest4, TPA: gateway4}), false, always(drop)},
		{"ARP with other sizes", arp(f.ARP{HLen: 8, PLen: 4, Op: 1, SHA: guestMAC, SPA: guest4, TPA: gateway4}), false, always(drop)},

		// IPv4.
		{"ping from the bound IP", f.IPv4Frame(gwMAC, guestMAC, ping4(guest4, gateway4, nil)), false, own4},
		{"ping with IP options from the bound IP", f.IPv4Frame(gwMAC, guestMAC, ping4(guest4, gateway4, []byte{7, 7, 4, 0, 0, 0, 0})), false, own4},
		{"unicast to another VM", f.IPv4Frame(otherMAC, guestMAC, unfragUDP(guest4, other4)), false, own4},
		{"broadcast from the bound IP", f.IPv4Frame(f.Broadcast, guestMAC, udp4(guest4, netip.MustParseAddr("10.0.0.255"), 137, 137, []byte("nb"))), false, own4},
		{"IPv4 short datagram padded to 60 bytes", padded(f.IPv4Frame(gwMAC, guestMAC, f.IPv4{Protocol: 253, Src: guest4, Dst: gateway4}.Marshal([]byte{1}))), false, own4},
		{"IPv4 first fragment", f.IPv4Frame(otherMAC, guestMAC, frags4[0]), false, own4},
		{"IPv4 non-first fragment (no UDP header, bytes read as 67)", f.IPv4Frame(otherMAC, guestMAC, frags4[1]), false, own4},
		{"IPv4 from another VM's IP", f.IPv4Frame(gwMAC, guestMAC, ping4(other4, gateway4, nil)), false, free4},
		{"IPv4 from the gateway's IP", f.IPv4Frame(otherMAC, guestMAC, ping4(gateway4, other4, nil)), false, free4},
		{"IPv4 from 0.0.0.0, not DHCP", f.IPv4Frame(gwMAC, guestMAC, ping4(zero4, gateway4, nil)), false, free4},
		{"IPv4 from 0.0.0.0, UDP 68 to 53", f.IPv4Frame(f.Broadcast, guestMAC, udp4(zero4, bcast4, 68, 53, []byte("x"))), false, free4},
		{"IPv4 from 0.0.0.0, UDP 68 to 67 fragmented", f.IPv4Frame(f.Broadcast, guestMAC, f.IPv4{MF: true, Protocol: f.ProtoUDP, Src: zero4, Dst: bcast4}.Marshal(f.UDP(zero4, bcast4, 68, 67, make([]byte, 16)))), false, free4},
		{"DHCP DISCOVER", f.DHCPv4Client(guestMAC, f.DHCPDiscover, 1), false, always(pass)},
		{"DHCP REQUEST", f.DHCPv4Client(guestMAC, f.DHCPRequest, 2), false, always(pass)},
		{"DHCP renewal from the bound IP", f.IPv4Frame(gwMAC, guestMAC, udp4(guest4, gateway4, 68, 67, f.DHCPv4{Op: 1, XID: 3, CIAddr: guest4, CHAddr: guestMAC, MsgType: f.DHCPRequest}.Marshal())), false, own4},
		{"DHCP OFFER (rogue server)", f.DHCPv4Server(guestMAC, guest4, otherMAC, other4, f.DHCPOffer, 1, nil), false, always(drop)},
		{"DHCP ACK with IP options", f.DHCPv4Server(guestMAC, guest4, otherMAC, other4, f.DHCPAck, 1, routerOpt), false, always(drop)},
		{"DHCP OFFER with 40 bytes of IP options", f.DHCPv4Server(guestMAC, guest4, otherMAC, other4, f.DHCPOffer, 1, append([]byte{7, 39, 4}, make([]byte, 36)...)), false, always(drop)},
		{"DHCP OFFER from 0.0.0.0", f.DHCPv4Server(guestMAC, zero4, otherMAC, other4, f.DHCPOffer, 1, nil), false, always(drop)},
		{"DHCP OFFER from another VM's IP", f.DHCPv4Server(guestMAC, other4, otherMAC, other4, f.DHCPOffer, 1, nil), false, always(drop)},
		{"DHCP relay message (67 to 67)", f.IPv4Frame(gwMAC, guestMAC, udp4(guest4, gateway4, 67, 67, []byte("relay"))), false, always(drop)},
		{"DHCP OFFER as a first fragment", f.IPv4Frame(f.Broadcast, guestMAC, f.IPv4{MF: true, Protocol: f.ProtoUDP, Src: guest4, Dst: bcast4}.Marshal(f.UDP(guest4, bcast4, 67, 68, make([]byte, 16)))), false, always(drop)},
		{"IPv4 header length 4", f.IPv4Frame(gwMAC, guestMAC, func() []byte { p := ping4(guest4, gateway4, nil); p[0] = 0x44; return p }()), false, always(drop)},
		{"IPv4 version 6", f.IPv4Frame(gwMAC, guestMAC, func() []byte { p := ping4(guest4, gateway4, nil); p[0] = 0x65; return p }()), false, always(drop)},
		{"IPv4 total length past the frame", f.IPv4Frame(gwMAC, guestMAC, func() []byte { p := ping4(guest4, gateway4, nil); p[3] += 4; return p }()), false, always(drop)},
		{"IPv4 total length below the header", f.IPv4Frame(gwMAC, guestMAC, func() []byte { p := ping4(guest4, gateway4, nil); p[2], p[3] = 0, 19; return p }()), false, always(drop)},

		// IPv6.
		{"link-local ICMPv6 echo", echo6(guestLL, routerLL), false, always(pass)},
		{"ICMPv6 echo from the bound IP", echo6(guest6, other6), false, own6},
		{"ICMPv6 echo reply from the bound IP", icmp6(otherMAC, guestMAC, guest6, other6, 64, nil, f.ICMPv6EchoReply, f.Echo(1, 1, nil)), false, own6},
		{"IPv6 from another VM's IP", echo6(other6, guest6), false, free6},
		{"IPv6 from ::, not ND", echo6(unspec6, routerLL), false, free6},
		{"UDP from ::", udp6(unspec6, f.AllNodes, 5000, 5001), false, free6},
		{"IPv6 with a legitimate chain", echo6(guestLL, routerLL, f.HopByHop(f.PadN(6)), f.DestOpts(f.PadN(14)), f.Routing(4, 0, make([]byte, 20)), f.Fragment(0, false, 1), f.AH(1, 1, make([]byte, 12)), f.DestOpts()), false, always(pass)},
		{"IPv6 with 8 extension headers", echo6(guestLL, routerLL, destOpts(guard.MaxExtHeaders)...), false, always(pass)},
		{"IPv6 with 9 extension headers", echo6(guestLL, routerLL, destOpts(guard.MaxExtHeaders+1)...), false, always(drop)},
		{"IPv6 non-first fragment (no upper-layer header)", f.IPv6Frame(gwMAC, guestMAC, frags6[1]), false, always(pass)},
		{"IPv6 first fragment", f.IPv6Frame(gwMAC, guestMAC, frags6[0]), false, always(pass)},
		{"IPv6 non-first fragment from another VM's IP", f.IPv6Frame(gwMAC, guestMAC, f.IPv6{Src: other6, Dst: guest6}.Marshal([]f.Ext{f.Fragment(100, false, 1)}, f.ProtoUDP, make([]byte, 16))), false, free6},
		{"IPv6 non-first fragment from ::", f.IPv6Frame(gwMAC, guestMAC, f.IPv6{Src: unspec6, Dst: routerLL}.Marshal([]f.Ext{f.Fragment(100, false, 1)}, f.ProtoUDP, make([]byte, 16))), false, free6},
		{"IPv6 No Next Header", f.IPv6Frame(gwMAC, guestMAC, f.IPv6{Src: guestLL, Dst: routerLL}.Marshal(nil, f.ProtoNoNext, nil)), false, always(pass)},
		{"IPv6 version 4 in an IPv6 ethertype", func() []byte { p := echo6(guestLL, routerLL); p[14] = 0x40; return p }(), false, always(drop)},
		{"IPv6 payload length past the frame", func() []byte { p := echo6(guestLL, routerLL); p[19] += 8; return p }(), false, always(drop)},
		{"IPv6 padded with a trailer", append(echo6(guestLL, routerLL), 0xde, 0xad), false, always(pass)},
		{"extension header past the payload", func() []byte {
			p := echo6(guestLL, routerLL, f.DestOpts())
			p[55] = 200 // a 1608-byte header
			return p
		}(), false, always(drop)},
		{"AH past the payload", func() []byte {
			p := echo6(guestLL, routerLL, f.AH(1, 1, make([]byte, 12)))
			p[55] = 200
			return p
		}(), false, always(drop)},
		{"fragment header cut by the payload end", f.IPv6Frame(gwMAC, guestMAC, f.IPv6{Src: guestLL, Dst: routerLL}.Marshal([]f.Ext{{Type: f.ProtoFragment, Body: []byte{0, 0, 1}}}, f.ProtoUDP, nil)), false, always(drop)},
		{"MLDv2 report from ::", f.MLDv2ReportFrame(guestMAC, unspec6, guestSN), false, always(pass)},
		{"MLDv2 report", f.MLDv2ReportFrame(guestMAC, guestLL, guestSN), false, always(pass)},
		{"MLDv1 report", icmp6(f.IPv6MulticastMAC(guestSN), guestMAC, guestLL, guestSN, 1, []f.Ext{f.HopByHop(f.RouterAlert(0))}, f.ICMPv6MLDv1Report, f.MLDv1Report(guestSN)), false, always(pass)},
		{"DHCPv6 SOLICIT", f.DHCPv6Client(guestMAC, guestLL, f.DHCPv6Solicit, 1), false, always(pass)},
		{"DHCPv6 REQUEST", f.DHCPv6Client(guestMAC, guestLL, f.DHCPv6Request, 2), false, always(pass)},
		{"DHCPv6 ADVERTISE (rogue server)", f.DHCPv6Server(guestMAC, guestLL, otherMAC, otherLL, f.DHCPv6Advertise, 1), false, always(drop)},
		{"DHCPv6 REPLY from the bound IP", f.DHCPv6Server(guestMAC, guest6, otherMAC, other6, f.DHCPv6Reply, 1), false, always(drop)},
		{"DHCPv6 relay (547 to 547)", udp6(guestLL, f.AllDHCPv6, 547, 547), false, always(drop)},
		{"DHCPv6 ADVERTISE behind a chain", udp6(guestLL, otherLL, 547, 546, f.HopByHop(), f.DestOpts(), f.Fragment(0, false, 3)), false, always(drop)},
		{"DHCPv6 server port in a non-first fragment", udp6(guestLL, otherLL, 547, 546, f.Fragment(8, false, 3)), false, always(pass)},

		// ICMPv6: router advertisements and redirects.
		{"RA", ra(), false, always(drop)},
		{"RA behind Hop-by-Hop", ra(f.HopByHop(f.RouterAlert(0))), false, always(drop)},
		{"RA behind Destination Options", ra(f.DestOpts(f.PadN(30))), false, always(drop)},
		{"RA behind Routing", ra(f.Routing(0, 0, make([]byte, 20))), false, always(drop)},
		{"RA behind an atomic Fragment", ra(f.Fragment(0, false, 1)), false, always(drop)},
		{"RA as a first fragment", f.IPv6Frame(f.IPv6MulticastMAC(f.AllNodes), guestMAC, rogueFrags[0]), false, always(drop)},
		{"RA behind AH", ra(f.AH(7, 1, make([]byte, 12))), false, always(drop)},
		{"RA behind a chain", ra(f.HopByHop(), f.DestOpts(), f.Routing(4, 0, nil), f.Fragment(0, false, 2), f.AH(1, 2, make([]byte, 4)), f.DestOpts()), false, always(drop)},
		{"RA behind 8 headers", ra(destOpts(guard.MaxExtHeaders)...), false, always(drop)},
		{"RA behind 9 headers", ra(destOpts(guard.MaxExtHeaders + 1)...), false, always(drop)},
		{"RA from a global source", icmp6(f.IPv6MulticastMAC(f.AllNodes), guestMAC, guest6, f.AllNodes, 255, nil, f.ICMPv6RA, f.RA(1800)), false, always(drop)},
		{"Redirect", icmp6(otherMAC, guestMAC, guestLL, otherLL, 255, nil, f.ICMPv6Redirect, f.Redirect(guestLL, other6, f.TLLA(guestMAC))), false, always(drop)},
		{"Redirect behind Destination Options", icmp6(otherMAC, guestMAC, guestLL, otherLL, 255, []f.Ext{f.DestOpts()}, f.ICMPv6Redirect, f.Redirect(guestLL, other6)), false, always(drop)},
		{"ICMPv6 header cut by the payload end", f.IPv6Frame(gwMAC, guestMAC, f.IPv6{Src: guestLL, Dst: routerLL}.Marshal(nil, f.ProtoICMPv6, []byte{f.ICMPv6RA, 0})), false, always(drop)},

		// Neighbour discovery.
		{"RS with own SLLA", icmp6(f.IPv6MulticastMAC(f.AllRouters), guestMAC, guestLL, f.AllRouters, 255, nil, f.ICMPv6RS, f.RS(f.SLLA(guestMAC))), false, always(pass)},
		{"RS from ::", icmp6(f.IPv6MulticastMAC(f.AllRouters), guestMAC, unspec6, f.AllRouters, 255, nil, f.ICMPv6RS, f.RS()), false, always(pass)},
		{"RS with a spoofed SLLA", icmp6(f.IPv6MulticastMAC(f.AllRouters), guestMAC, guestLL, f.AllRouters, 255, nil, f.ICMPv6RS, f.RS(f.SLLA(otherMAC))), false, always(drop)},
		{"DAD NS from :: for own link-local", ns(unspec6, guestLL), false, always(pass)},
		{"DAD NS from :: with a nonce", ns(unspec6, guestLL, f.Nonce(nonce)), false, always(pass)},
		{"DAD NS from :: for the bound IP", ns(unspec6, guest6, f.Nonce(nonce)), false, own6},
		{"DAD NS from :: for another VM's IP", ns(unspec6, other6, f.Nonce(nonce)), false, free6},
		{"NS with own SLLA", ns(guestLL, other6, f.SLLA(guestMAC)), false, always(pass)},
		{"NS from the bound IP", ns(guest6, other6, f.SLLA(guestMAC)), false, own6},
		{"NS with own SLLA and a nonce", ns(guestLL, other6, f.Nonce(nonce), f.SLLA(guestMAC)), false, always(pass)},
		{"NS with a spoofed SLLA", ns(guestLL, other6, f.SLLA(otherMAC)), false, always(drop)},
		{"NS with a spoofed SLLA after other options", ns(guestLL, other6, f.Nonce(nonce), f.NDOption(99, make([]byte, 14)), f.SLLA(otherMAC)), false, always(drop)},
		{"NS with a spoofed TLLA", ns(guestLL, other6, f.TLLA(otherMAC)), false, always(drop)},
		{"NS with a 16-byte SLLA", ns(guestLL, other6, f.NDOption(1, append(guestMAC[:], make([]byte, 8)...))), false, always(drop)},
		{"NS with a zero-length option", ns(guestLL, other6, []byte{14, 0, 0, 0, 0, 0, 0, 0}), false, always(drop)},
		{"NS with an option past the payload", ns(guestLL, other6, []byte{14, 2, 0, 0, 0, 0, 0, 0}), false, always(drop)},
		{"NS with a truncated option", ns(guestLL, other6, []byte{1, 1, 2, 0}), false, always(drop)},
		{"NS with 8 options", ns(guestLL, other6, tooManyOpts[1:]...), false, always(pass)},
		{"NS with 9 options", ns(guestLL, other6, tooManyOpts...), false, always(drop)},
		{"NS without its target", icmp6(gwMAC, guestMAC, guestLL, otherLL, 255, nil, f.ICMPv6NS, make([]byte, 12)), false, always(drop)},
		{"NS behind Destination Options with a spoofed SLLA", icmp6(gwMAC, guestMAC, guestLL, otherLL, 255, []f.Ext{f.DestOpts()}, f.ICMPv6NS, f.NS(otherLL, f.SLLA(otherMAC))), false, always(drop)},
		{"NS in a fragment", icmp6(gwMAC, guestMAC, guestLL, otherLL, 255, []f.Ext{f.Fragment(0, false, 1)}, f.ICMPv6NS, f.NS(otherLL, f.SLLA(guestMAC))), false, always(drop)},
		{"NA for own link-local", na(guestLL, guestLL, f.TLLA(guestMAC)), false, always(pass)},
		{"NA for the bound IP", na(guest6, guest6, f.TLLA(guestMAC)), false, own6},
		{"NA for the bound IP from link-local", na(guestLL, guest6, f.TLLA(guestMAC)), false, own6},
		{"NA with a spoofed TLLA", na(guestLL, guestLL, f.TLLA(otherMAC)), false, always(drop)},
		{"NA for another VM's IP", na(guestLL, other6, f.TLLA(guestMAC)), false, free6},
		{"NA for another VM's link-local", na(guestLL, otherLL, f.TLLA(guestMAC)), false, always(pass)},
		{"NA from ::", na(unspec6, guestLL, f.TLLA(guestMAC)), false, free6},
		{"NA in a fragment", icmp6(gwMAC, guestMAC, guestLL, f.AllNodes, 255, []f.Ext{f.Fragment(0, true, 1)}, f.ICMPv6NA, f.NA(0, guestLL, f.TLLA(guestMAC))), false, always(drop)},
	}
}

// run returns the verdict of prog for a frame the guest writes, as the
// kernel would give it: the frame goes through what the kernel does before
// tc ingress (cbpf.Ingress) unless raw. It fails the test unless the
// program returns one of its two verdicts: any other value means a load
// went past the end of the frame (the kernel returns 0, a pass).
func run(t testing.TB, prog []guard.Instruction, frame []byte, raw bool) verdict {
	t.Helper()
	data, meta := frame, cbpf.Meta{}
	if !raw {
		var ok bool
		if data, meta, ok = cbpf.Ingress(frame, tapMAC); !ok {
			return drop // the kernel drops it before tc
		}
	}
	p := toCBPF(prog)
	ret, path, err := cbpf.Trace(p, data, &meta)
	if err != nil {
		t.Fatalf("Run(%x) error: %v", frame, err)
	}
	switch ret {
	case guard.Pass:
		return pass
	case guard.Drop:
		return drop
	}
	t.Fatalf("Run(%x) = %#x, want Pass or Drop: a load past the end of the frame? path %v\n%s", data, ret, path, cbpf.Disasm(p))
	return drop
}

func toCBPF(prog []guard.Instruction) []cbpf.Insn {
	out := make([]cbpf.Insn, len(prog))
	for i, in := range prog {
		out[i] = cbpf.Insn(in)
	}
	return out
}

func mustProgram(t testing.TB, p *guard.Policy) []guard.Instruction {
	t.Helper()
	prog, err := guard.Program(p)
	if err != nil {
		t.Fatalf("Program(%+v) error: %v", p, err)
	}
	if err := cbpf.Check(toCBPF(prog)); err != nil {
		t.Fatalf("Check(Program(%+v)) = %v", p, err)
	}
	return prog
}

func TestFrames(t *testing.T) {
	for _, pc := range policies() {
		t.Run(pc.name, func(t *testing.T) {
			prog := mustProgram(t, &pc.p)
			for _, c := range cases() {
				if got, want := run(t, prog, c.frame, c.raw), c.want(pc.env); got != want {
					t.Errorf("%s: %s, want %s\nframe %x", c.name, got, want, c.frame)
				}
			}
		})
	}
}

// needed returns how much of a frame (as the kernel sees it) a receiver
// uses: the IP datagram, the ARP message; the rest is padding.
func needed(frame []byte) int {
	data, _, ok := cbpf.Ingress(frame, tapMAC)
	if !ok || len(data) < 20 {
		return len(frame)
	}
	pad := len(frame) - len(data) // a tag the kernel takes out
	switch uint16(data[12])<<8 | uint16(data[13]) {
	case f.EtherTypeIPv4:
		return pad + 14 + (int(data[16])<<8 | int(data[17]))
	case f.EtherTypeIPv6:
		return pad + 54 + (int(data[18])<<8 | int(data[19]))
	case f.EtherTypeARP:
		return pad + 42
	}
	return len(frame)
}

// TestTruncation cuts every frame of the table at every length: where the
// full frame is dropped every cut is dropped, and a frame that passes is
// dropped when cut short of what it needs, and passes when only padding is
// cut. The interpreter returns 0 for a load past the end, as the kernel
// does, and run fails on it, so a missing length check cannot hide.
func TestTruncation(t *testing.T) {
	n := 0
	for _, pc := range policies() {
		prog := mustProgram(t, &pc.p)
		for _, c := range cases() {
			full := run(t, prog, c.frame, c.raw)
			need := needed(c.frame)
			if c.raw {
				need = len(c.frame)
			}
			for l := range len(c.frame) {
				want := drop
				if full == pass && l >= need {
					want = pass
				}
				n++
				if got := run(t, prog, c.frame[:l], c.raw); got != want {
					t.Errorf("%s: %s cut to %d of %d bytes: %s, want %s", pc.name, c.name, l, len(c.frame), got, want)
				}
			}
		}
	}
	t.Logf("%d truncated frames", n)
}

// TestCasesCover makes sure the table holds both outcomes in every policy,
// so that a program that always drops or always passes fails TestFrames.
func TestCasesCover(t *testing.T) {
	for _, pc := range policies() {
		count := map[verdict]int{}
		for _, c := range cases() {
			count[c.want(pc.env)]++
		}
		if count[pass] < 10 || count[drop] < 10 {
			t.Errorf("%s: %d passing and %d dropped cases, want at least 10 of each", pc.name, count[pass], count[drop])
		}
	}
	names := map[string]bool{}
	for _, c := range cases() {
		if names[c.name] || strings.TrimSpace(c.name) == "" {
			t.Errorf("case name %q is empty or repeated", c.name)
		}
		names[c.name] = true
	}
}
