package frames

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

var (
	mac    = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	ip4    = netip.MustParseAddr("10.0.0.5")
	ip4b   = netip.MustParseAddr("10.0.0.1")
	ll     = netip.MustParseAddr("fe80::5054:ff:fe12:3456")
	global = netip.MustParseAddr("2001:db8::5")
)

func TestChecksum(t *testing.T) {
	tests := []struct {
		in   []byte
		want uint16
	}{
		// RFC 1071 section 3: the sum is ddf2, so the checksum is its complement.
		{[]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, ^uint16(0xddf2)},
		// A captured IPv4 header with its checksum field zeroed; the capture said b861.
		{[]byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
			0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0xb861},
		{[]byte{0xff}, ^uint16(0xff00)},
		{nil, 0xffff},
	}
	for _, tt := range tests {
		if got := Checksum(tt.in); got != tt.want {
			t.Errorf("Checksum(%x) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
}

func TestIPv4(t *testing.T) {
	h := IPv4{ID: 7, DF: true, Protocol: ProtoUDP, Src: ip4, Dst: ip4b, Options: []byte{0x94, 0x04, 0, 0, 1}}
	p := h.Marshal([]byte("hello"))
	if ihl := int(p[0]&0xf) * 4; p[0]>>4 != 4 || ihl != 28 {
		t.Fatalf("version/IHL = %#x, want 4/28 bytes", p[0])
	}
	if got := binary.BigEndian.Uint16(p[2:]); int(got) != len(p) || len(p) != 28+5 {
		t.Errorf("total length = %d, len %d, want 33", got, len(p))
	}
	if got := binary.BigEndian.Uint16(p[6:]); got != 0x4000 {
		t.Errorf("flags/offset = %#x, want DF", got)
	}
	if Checksum(p[:28]) != 0 {
		t.Errorf("header checksum does not verify: %x", p[:28])
	}
	if !bytes.Equal(p[28:], []byte("hello")) || p[8] != 64 || p[9] != ProtoUDP {
		t.Errorf("IPv4.Marshal() = %x", p)
	}
}

func TestIPv4Fragments(t *testing.T) {
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i)
	}
	frags := IPv4Fragments(IPv4{ID: 9, Protocol: ProtoUDP, Src: ip4, Dst: ip4b}, payload, 1500)
	if len(frags) != 3 {
		t.Fatalf("IPv4Fragments() = %d fragments, want 3", len(frags))
	}
	var got []byte
	for i, f := range frags {
		if Checksum(f[:20]) != 0 {
			t.Errorf("fragment %d: bad header checksum", i)
		}
		v := binary.BigEndian.Uint16(f[6:])
		if int(v&0x1fff)*8 != len(got) || (v&0x2000 != 0) != (i < 2) || len(f) > 1500 {
			t.Errorf("fragment %d: flags/offset %#x at %d, len %d", i, v, len(got), len(f))
		}
		got = append(got, f[20:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("reassembled payload differs")
	}
}

// verifyUpper checks an upper-layer checksum over its pseudo-header.
func verifyUpper(t *testing.T, src, dst netip.Addr, proto uint8, msg []byte) {
	t.Helper()
	if Checksum(append(pseudoHeader(src, dst, proto, len(msg)), msg...)) != 0 {
		t.Errorf("checksum of %x from %v to %v does not verify", msg, src, dst)
	}
}

func TestUDP(t *testing.T) {
	for _, pair := range [][2]netip.Addr{{ip4, ip4b}, {ll, AllDHCPv6}} {
		u := UDP(pair[0], pair[1], 546, 547, []byte("odd"))
		if binary.BigEndian.Uint16(u) != 546 || binary.BigEndian.Uint16(u[2:]) != 547 || binary.BigEndian.Uint16(u[4:]) != 11 {
			t.Errorf("UDP() header = %x", u[:8])
		}
		verifyUpper(t, pair[0], pair[1], ProtoUDP, u)
	}
}

func TestDHCPv4(t *testing.T) {
	f := DHCPv4Client(mac, DHCPDiscover, 0x1234)
	if [6]byte(f[:6]) != Broadcast || [6]byte(f[6:12]) != mac || binary.BigEndian.Uint16(f[12:]) != EtherTypeIPv4 {
		t.Fatalf("DHCPv4Client() Ethernet header = %x", f[:14])
	}
	ip := f[14:]
	if [4]byte(ip[12:16]) != [4]byte{} || Checksum(ip[:20]) != 0 {
		t.Errorf("DHCPv4Client() IPv4 header = %x", ip[:20])
	}
	udp := ip[20:]
	if binary.BigEndian.Uint16(udp) != 68 || binary.BigEndian.Uint16(udp[2:]) != 67 {
		t.Errorf("DHCPv4Client() ports = %x", udp[:4])
	}
	verifyUpper(t, netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255}), ProtoUDP, udp)
	msg := udp[8:]
	if msg[0] != 1 || [6]byte(msg[28:34]) != mac || !bytes.Equal(msg[236:243], []byte{99, 130, 83, 99, 53, 1, DHCPDiscover}) {
		t.Errorf("DHCPv4Client() BOOTP = %x", msg)
	}

	s := DHCPv4Server(mac, ip4b, [6]byte{2}, ip4, DHCPOffer, 1, []byte{0x94, 0x04, 0, 0})
	ip = s[14:]
	ihl := int(ip[0]&0xf) * 4
	if ihl != 24 || Checksum(ip[:ihl]) != 0 || binary.BigEndian.Uint16(ip[ihl:]) != 67 || binary.BigEndian.Uint16(ip[ihl+2:]) != 68 {
		t.Errorf("DHCPv4Server() = IHL %d, ports %x", ihl, ip[ihl:ihl+4])
	}
	if ip[ihl+8] != 2 || [4]byte(ip[ihl+8+16:ihl+8+20]) != ip4.As4() {
		t.Errorf("DHCPv4Server() op/yiaddr = %x", ip[ihl+8:ihl+8+20])
	}
}

func TestDHCPv6(t *testing.T) {
	f := DHCPv6Client(mac, ll, DHCPv6Solicit, 0xabcdef)
	ip := f[14:]
	if ip[6] != ProtoUDP || [16]byte(ip[24:40]) != AllDHCPv6.As16() || [6]byte(f[:6]) != [6]byte{0x33, 0x33, 0, 1, 0, 2} {
		t.Fatalf("DHCPv6Client() = %x", f[:54])
	}
	udp := ip[40:]
	if binary.BigEndian.Uint16(udp) != 546 || binary.BigEndian.Uint16(udp[2:]) != 547 || udp[8] != DHCPv6Solicit {
		t.Errorf("DHCPv6Client() UDP = %x", udp)
	}
	verifyUpper(t, ll, AllDHCPv6, ProtoUDP, udp)
	s := DHCPv6Server([6]byte{2}, netip.MustParseAddr("fe80::1"), mac, ll, DHCPv6Advertise, 1)
	if udp := s[54:]; binary.BigEndian.Uint16(udp) != 547 || binary.BigEndian.Uint16(udp[2:]) != 546 || udp[8] != DHCPv6Advertise {
		t.Errorf("DHCPv6Server() UDP = %x", udp)
	}
}

// walk follows an IPv6 extension header chain independently of Marshal.
func walk(t *testing.T, p []byte) (types []uint8, upper uint8, off int) {
	t.Helper()
	if int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
		t.Fatalf("payload length %d, packet %d", binary.BigEndian.Uint16(p[4:]), len(p))
	}
	next, off := p[6], 40
	for {
		switch next {
		case ProtoHopByHop, ProtoDestOpts, ProtoRouting:
			types = append(types, next)
			next, off = p[off], off+(int(p[off+1])+1)*8
		case ProtoAH:
			types = append(types, next)
			next, off = p[off], off+(int(p[off+1])+2)*4
		case ProtoFragment:
			types = append(types, next)
			next, off = p[off], off+8
		default:
			return types, next, off
		}
	}
}

func TestIPv6Chain(t *testing.T) {
	exts := []Ext{HopByHop(RouterAlert(0)), DestOpts(PadN(10)), Routing(4, 0, make([]byte, 20)), Fragment(0, false, 5),
		AH(1, 2, make([]byte, 12)), DestOpts()}
	body := Echo(1, 2, []byte("abc"))
	p := IPv6{Src: ll, Dst: AllNodes}.Marshal(exts, ProtoICMPv6, ICMPv6(ll, AllNodes, ICMPv6EchoRequest, 0, body))
	types, upper, off := walk(t, p)
	want := []uint8{0, 60, 43, 44, 51, 60}
	if !bytes.Equal(types, want) || upper != ProtoICMPv6 {
		t.Fatalf("chain = %v then %d, want %v then 58", types, upper, want)
	}
	if p[off] != ICMPv6EchoRequest || !bytes.Equal(p[off+4:], body) {
		t.Errorf("upper layer at %d = %x", off, p[off:])
	}
	verifyUpper(t, ll, AllNodes, ProtoICMPv6, p[off:])
	for _, e := range exts {
		if e.Type != ProtoAH && (len(e.Body)+1)%8 != 0 {
			t.Errorf("extension header %d is %d bytes, want a multiple of 8", e.Type, len(e.Body)+1)
		}
	}
}

func TestIPv6Fragments(t *testing.T) {
	payload := make([]byte, 2000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	frags := IPv6Fragments(IPv6{Src: global, Dst: global}, []Ext{DestOpts()}, ProtoUDP, payload, 1280, 42)
	var got []byte
	for i, f := range frags {
		types, upper, off := walk(t, f)
		if len(types) != 2 || types[1] != ProtoFragment || upper != ProtoUDP || len(f) > 1280 {
			t.Fatalf("fragment %d: chain %v then %d, len %d", i, types, upper, len(f))
		}
		fh := f[off-8:]
		v := binary.BigEndian.Uint16(fh[2:])
		if int(v>>3)*8 != len(got) || (v&1 == 1) != (i < len(frags)-1) || binary.BigEndian.Uint32(fh[4:]) != 42 {
			t.Errorf("fragment %d: header %x at %d", i, fh[:8], len(got))
		}
		got = append(got, f[off:]...)
	}
	if len(frags) != 2 || !bytes.Equal(got, payload) {
		t.Errorf("%d fragments; reassembled payload equal: %v", len(frags), bytes.Equal(got, payload))
	}
}

func TestND(t *testing.T) {
	target := global
	tests := []struct {
		name string
		typ  uint8
		body []byte
		want []byte // the body bytes after the fixed part
	}{
		{"rs", ICMPv6RS, RS(SLLA(mac)), append([]byte{1, 1}, mac[:]...)},
		{"ns", ICMPv6NS, NS(target, SLLA(mac), Nonce([6]byte{1, 2, 3, 4, 5, 6})), append(append([]byte{1, 1}, mac[:]...), 14, 1, 1, 2, 3, 4, 5, 6)},
		{"na", ICMPv6NA, NA(NASolicited|NAOverride, target, TLLA(mac)), append([]byte{2, 1}, mac[:]...)},
		{"redirect", ICMPv6Redirect, Redirect(target, global, TLLA(mac)), append([]byte{2, 1}, mac[:]...)},
		{"ra", ICMPv6RA, RA(1800, SLLA(mac)), append([]byte{1, 1}, mac[:]...)},
	}
	fixed := map[uint8]int{ICMPv6RS: 4, ICMPv6NS: 20, ICMPv6NA: 20, ICMPv6Redirect: 36, ICMPv6RA: 12}
	for _, tt := range tests {
		f := ICMPv6Frame(IPv6MulticastMAC(AllNodes), mac, IPv6{HopLimit: 255, Src: ll, Dst: AllNodes}, nil, tt.typ, 0, tt.body)
		msg := f[54:]
		if msg[0] != tt.typ || !bytes.Equal(msg[4+fixed[tt.typ]:], tt.want) || f[21] != 255 {
			t.Errorf("%s: message = %x", tt.name, msg)
		}
		verifyUpper(t, ll, AllNodes, ProtoICMPv6, msg)
	}
	if pi := PrefixInfo(netip.MustParsePrefix("2001:db8::/64")); len(pi) != 32 || pi[1] != 4 || pi[2] != 64 {
		t.Errorf("PrefixInfo() = %x", pi)
	}
	if na := NA(NAOverride, target); na[0] != NAOverride || [16]byte(na[4:20]) != target.As16() {
		t.Errorf("NA() = %x", na)
	}
}

func TestMLD(t *testing.T) {
	g := SolicitedNode(ll)
	f := MLDv2ReportFrame(mac, netip.IPv6Unspecified(), g)
	types, upper, off := walk(t, f[14:])
	if len(types) != 1 || types[0] != ProtoHopByHop || upper != ProtoICMPv6 || f[14+7] != 1 {
		t.Fatalf("MLDv2ReportFrame() chain %v then %d, hop limit %d", types, upper, f[21])
	}
	msg := f[14+off:]
	if msg[0] != ICMPv6MLDv2Report || binary.BigEndian.Uint16(msg[6:]) != 1 || [16]byte(msg[12:28]) != g.As16() {
		t.Errorf("MLDv2 report = %x", msg)
	}
	verifyUpper(t, netip.IPv6Unspecified(), AllMLDv2, ProtoICMPv6, msg)
	if r := MLDv1Report(g); len(r) != 20 || [16]byte(r[4:]) != g.As16() {
		t.Errorf("MLDv1Report() = %x", r)
	}
}

func TestAddresses(t *testing.T) {
	if got := LinkLocal(mac); got != ll {
		t.Errorf("LinkLocal(%x) = %v, want %v", mac, got, ll)
	}
	if got, want := SolicitedNode(ll), netip.MustParseAddr("ff02::1:ff12:3456"); got != want {
		t.Errorf("SolicitedNode(%v) = %v, want %v", ll, got, want)
	}
	if got := IPv6MulticastMAC(netip.MustParseAddr("ff02::1:ff12:3456")); got != [6]byte{0x33, 0x33, 0xff, 0x12, 0x34, 0x56} {
		t.Errorf("IPv6MulticastMAC() = %x", got)
	}
	if got := IPv4MulticastMAC(netip.MustParseAddr("239.129.2.3")); got != [6]byte{1, 0, 0x5e, 1, 2, 3} {
		t.Errorf("IPv4MulticastMAC() = %x", got)
	}
}

func TestL2(t *testing.T) {
	f := Tagged(Broadcast, mac, []Tag{{EtherTypeQinQ, 100}, {EtherTypeVLAN, 5}}, EtherTypeARP, []byte{1})
	if !bytes.Equal(f[12:], []byte{0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 5, 0x08, 0x06, 1}) {
		t.Errorf("Tagged() = %x", f)
	}
	s := STPBPDU(mac)
	if n := binary.BigEndian.Uint16(s[12:]); int(n) != len(s)-14 || n >= 0x600 || s[14] != 0x42 || s[15] != 0x42 || [6]byte(s[:6]) != STPGroup {
		t.Errorf("STPBPDU() = %x", s)
	}
	if len(s) != 14+3+35 {
		t.Errorf("STPBPDU() is %d bytes, want 52 (a 35-byte configuration BPDU)", len(s))
	}
	l := LLDP(mac)
	if binary.BigEndian.Uint16(l[12:]) != EtherTypeLLDP || [6]byte(l[:6]) != LLDPGroup || !bytes.Equal(l[len(l)-2:], []byte{0, 0}) {
		t.Errorf("LLDP() = %x", l)
	}
	a := ARPProbe(mac, ip4)
	want := append(append([]byte{0, 1, 8, 0, 6, 4, 0, 1}, mac[:]...), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 5)
	if !bytes.Equal(a[14:], want) || binary.BigEndian.Uint16(a[12:]) != EtherTypeARP {
		t.Errorf("ARPProbe() = %x, want payload %x", a, want)
	}
	g := GratuitousARP(mac, ip4)
	if [4]byte(g[28:32]) != ip4.As4() || [4]byte(g[38:42]) != ip4.As4() {
		t.Errorf("GratuitousARP() = %x", g)
	}
	r := ARPReplyFrame(mac, ip4, [6]byte{2, 0, 0, 0, 0, 1}, ip4b)
	if binary.BigEndian.Uint16(r[20:]) != ARPReply || [6]byte(r[:6]) != [6]byte{2, 0, 0, 0, 0, 1} {
		t.Errorf("ARPReplyFrame() = %x", r)
	}
}

func TestVnetHdr(t *testing.T) {
	f := []byte{1, 2, 3}
	for _, n := range []int{VnetHdrLen, VnetHdrMrgLen} {
		got := VnetHdr(f, n)
		if len(got) != n+3 || !bytes.Equal(got[n:], f) || !bytes.Equal(got[:n], make([]byte, n)) {
			t.Errorf("VnetHdr(%x, %d) = %x", f, n, got)
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("VnetHdr(f, 11) did not panic")
		}
	}()
	VnetHdr(f, 11)
}
