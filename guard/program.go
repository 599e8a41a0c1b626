package guard

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/tapbridge/tapbridge/internal/cbpf"
)

// Verdicts: the values a guard program returns.
const (
	// Pass is TC_ACT_UNSPEC (-1): cls_bpf in direct-action mode goes on to
	// the next filter, and with none the frame continues to the bridge.
	Pass uint32 = 0xffffffff

	// Drop is TC_ACT_SHOT: the frame is freed and counted as a drop on the
	// clsact qdisc.
	Drop uint32 = 2
)

// Limits of what the program follows; beyond them it drops.
const (
	// MaxExtHeaders is how many IPv6 extension headers (Hop-by-Hop,
	// Destination Options, Routing, Fragment, AH) the program follows
	// before the upper-layer header; a longer chain is dropped.
	MaxExtHeaders = 8

	// MaxNDOptions is how many options of a router solicitation,
	// neighbour solicitation or neighbour advertisement the program reads;
	// a message with more is dropped.
	MaxNDOptions = 8
)

// Instruction is one classic BPF instruction, laid out as the kernel's
// struct sock_filter, which is also the encoding of TCA_BPF_OPS (8 bytes:
// code, jt, jf, k in host byte order).
type Instruction struct {
	Op uint16
	Jt uint8
	Jf uint8
	K  uint32
}

// Ethertypes, IP protocols and ports the program tests.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd

	protoHopByHop = 0
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
	protoICMPv6   = 58
	protoDestOpts = 60

	icmpRS          = 133
	icmpRA          = 134
	icmpNS          = 135
	icmpNA          = 136
	icmpRedirect    = 137
	icmpMLDv1Report = 131
	icmpMLDv2Report = 143

	portDHCPServer   = 67
	portDHCPClient   = 68
	portDHCPv6Server = 547
)

// Scratch memory cells of the IPv6 path.
const (
	memNext   = 0 // next header of the header at X
	memEnd    = 1 // end of the IPv6 payload: 14 + 40 + payload length
	memFrag   = 2 // 1 once a Fragment header was seen
	memUnspec = 3 // 1 if the source is :: (only in an enforced family)
)

// Program returns the classic BPF program that enforces p, to be attached
// with cls_bpf in direct-action mode on the ingress of the NIC's TAP
// (clsact). It returns Pass or Drop for every frame; see the package
// documentation for what it checks. The same Policy (in any address order)
// always gives the same instructions; they end in a record of the Policy
// that Decode reads back.
//
// For ModeOff Program returns no instructions and a nil error: off means
// no filter. The error wraps ErrInvalid if p is not valid.
func Program(p *Policy) ([]Instruction, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := p.canonical()
	if c.Mode == ModeOff {
		return nil, nil
	}
	prog, err := generate(c)
	if err != nil {
		return nil, err
	}
	out := make([]Instruction, len(prog))
	for i, in := range prog {
		out[i] = Instruction(in)
	}
	return out, nil
}

// generate returns the code and record for a canonical, valid policy.
func generate(p *Policy) ([]cbpf.Insn, error) {
	g := &gen{p: p}
	for _, pfx := range p.Addrs {
		if pfx.Addr().Is4() {
			g.v4 = append(g.v4, pfx.Addr())
		} else {
			g.v6 = append(g.v6, pfx.Addr())
		}
	}
	g.enforce4 = p.Mode == ModeStrict || len(g.v4) > 0
	g.enforce6 = p.Mode == ModeStrict || len(g.v6) > 0
	g.drop, g.pass = g.a.label(), g.a.label()
	g.frame()
	code, err := g.a.assemble()
	if err != nil {
		return nil, err
	}
	if n := len(code) + recordLen(p); n > cbpf.MaxInsns {
		return nil, fmt.Errorf("guard: program of %d instructions, the kernel takes at most %d: %w", n, cbpf.MaxInsns, ErrInvalid)
	}
	return append(code, record(p)...), nil
}

// gen writes the program. Every load is preceded by a check that the frame
// holds the bytes it reads: a load past the end would end the program with
// 0, which cls_bpf takes as TC_ACT_OK, a pass (net/core/filter.c,
// convert_bpf_ld_abs).
type gen struct {
	a                  asm
	p                  *Policy
	v4, v6             []netip.Addr
	enforce4, enforce6 bool
	drop, pass         label
}

// Shorthands for the instructions the program uses.
func (g *gen) ld(op uint16, k uint32) { g.a.stmt(op, k) }
func (g *gen) ldLen()                 { g.a.stmt(cbpf.LD|cbpf.W|cbpf.LEN, 0) }
func (g *gen) ldMem(cell uint32)      { g.a.stmt(cbpf.LD|cbpf.MEM, cell) }
func (g *gen) st(cell uint32)         { g.a.stmt(cbpf.ST, cell) }
func (g *gen) alu(op uint16, k uint32) {
	g.a.stmt(cbpf.ALU|op|cbpf.K, k)
}
func (g *gen) jeq(k uint32, t, f label)  { g.a.jmp(cbpf.JMP|cbpf.JEQ|cbpf.K, k, t, f) }
func (g *gen) jge(k uint32, t, f label)  { g.a.jmp(cbpf.JMP|cbpf.JGE|cbpf.K, k, t, f) }
func (g *gen) jset(k uint32, t, f label) { g.a.jmp(cbpf.JMP|cbpf.JSET|cbpf.K, k, t, f) }
func (g *gen) jgeX(t, f label)           { g.a.jmp(cbpf.JMP|cbpf.JGE|cbpf.X, 0, t, f) }
func (g *gen) jeqX(t, f label)           { g.a.jmp(cbpf.JMP|cbpf.JEQ|cbpf.X, 0, t, f) }

// needX drops unless X+n <= A0, where A0 is what load leaves in A (the
// frame length, a total length or a payload end), which must be at least n
// on every path that gets here, so that A0-n does not wrap.
func (g *gen) needX(load func(), n uint32) {
	load()
	g.alu(cbpf.SUB, n)
	g.jgeX(next, g.drop)
}

func (g *gen) frame() {
	a := &g.a
	ipv4, arp, ipv6 := a.label(), a.label(), a.label()
	g.ldLen()
	g.jge(14, next, g.drop)
	// An outer VLAN tag is taken out of the frame into skb->vlan_tci before
	// tc ingress (net/core/dev.c, __netif_receive_skb_core: skb_vlan_untag),
	// so the ethertype at offset 12 is the inner one: test the skb.
	g.ld(cbpf.LD|cbpf.W|cbpf.ABS, cbpf.AdOff+cbpf.AdVlanTagPresent)
	g.jeq(0, next, g.drop)
	g.macAt(cbpf.ABS, 6)
	g.ld(cbpf.LD|cbpf.H|cbpf.ABS, 12)
	g.jeq(etherIPv4, ipv4, next)
	g.jeq(etherARP, arp, next)
	g.jeq(etherIPv6, ipv6, g.drop)
	a.mark(arp)
	g.arp()
	a.mark(ipv4)
	g.ipv4()
	a.mark(ipv6)
	g.ipv6()
	a.mark(g.drop)
	a.ret(Drop)
	a.mark(g.pass)
	a.ret(Pass)
}

// macAt drops unless the 6 bytes at off (absolute, or X-relative with
// mode cbpf.IND) are the guest MAC. The caller has checked the length.
func (g *gen) macAt(mode uint16, off uint32) {
	m := g.p.MAC
	g.ld(cbpf.LD|cbpf.W|mode, off)
	g.jeq(binary.BigEndian.Uint32(m[:4]), next, g.drop)
	g.ld(cbpf.LD|cbpf.H|mode, off+4)
	g.jeq(uint32(binary.BigEndian.Uint16(m[4:])), next, g.drop)
}

// arp: requests and replies for Ethernet and IPv4 only, sender hardware
// address the guest's, and, if IPv4 is enforced, sender IP bound or
// 0.0.0.0 (a probe, RFC 5227).
func (g *gen) arp() {
	opOK := g.a.label()
	g.ldLen()
	g.jge(42, next, g.drop)
	g.ld(cbpf.LD|cbpf.W|cbpf.ABS, 14)
	g.jeq(1<<16|etherIPv4, next, g.drop) // htype Ethernet, ptype IPv4
	g.ld(cbpf.LD|cbpf.H|cbpf.ABS, 18)
	g.jeq(6<<8|4, next, g.drop) // hlen 6, plen 4
	g.ld(cbpf.LD|cbpf.H|cbpf.ABS, 20)
	g.jeq(1, opOK, next)
	g.jeq(2, opOK, g.drop)
	g.a.mark(opOK)
	g.macAt(cbpf.ABS, 22)
	if !g.enforce4 {
		g.a.ja(g.pass)
		return
	}
	g.ld(cbpf.LD|cbpf.W|cbpf.ABS, 28)
	g.jeq(0, g.pass, next)
	g.v4Set(g.pass)
	g.a.ja(g.drop)
}

// v4Set jumps to ok if A is a bound IPv4 address, else falls through.
func (g *gen) v4Set(ok label) {
	for _, a := range g.v4 {
		b := a.As4()
		g.jeq(binary.BigEndian.Uint32(b[:]), ok, next)
	}
}

// ipv4: a well-formed header; if IPv4 is enforced, a bound source, or
// 0.0.0.0 for DHCP client messages only; never a DHCP server message.
func (g *gen) ipv4() {
	a := &g.a
	l4 := a.label()
	ihl := func() { g.ld(cbpf.LDX|cbpf.B|cbpf.MSH, 14) } // X = 4 * IHL
	totLen := func() { g.ld(cbpf.LD|cbpf.H|cbpf.ABS, 16) }
	g.ldLen()
	g.jge(34, next, g.drop)
	g.ld(cbpf.LD|cbpf.B|cbpf.ABS, 14)
	g.jge(0x45, next, g.drop) // version 4, IHL at least 5
	g.jge(0x50, g.drop, next)
	// The whole datagram is in the frame (receivers drop it otherwise:
	// net/ipv4/ip_input.c, ip_rcv_core), and its header fits in it, so
	// reads below the total length are in the frame.
	totLen()
	g.alu(cbpf.ADD, 14)
	g.ld(cbpf.MISC|cbpf.TAX, 0)
	g.ldLen()
	g.jgeX(next, g.drop)
	ihl()
	totLen()
	g.jgeX(next, g.drop)
	if g.enforce4 {
		g.ld(cbpf.LD|cbpf.W|cbpf.ABS, 26)
		g.v4Set(l4)
		g.jeq(0, next, g.drop)
		// From 0.0.0.0 only a DHCP client message: UDP 68 to 67, unfragmented.
		g.ld(cbpf.LD|cbpf.B|cbpf.ABS, 23)
		g.jeq(protoUDP, next, g.drop)
		g.ld(cbpf.LD|cbpf.H|cbpf.ABS, 20)
		g.jset(0x3fff, g.drop, next) // MF or a fragment offset
		ihl()
		g.needX(totLen, 4) // total length >= IHL*4 >= 20
		g.ld(cbpf.LD|cbpf.W|cbpf.IND, 14)
		g.jeq(portDHCPClient<<16|portDHCPServer, g.pass, g.drop)
	}
	a.mark(l4)
	g.ld(cbpf.LD|cbpf.B|cbpf.ABS, 23)
	g.jeq(protoUDP, next, g.pass)
	g.ld(cbpf.LD|cbpf.H|cbpf.ABS, 20)
	g.jset(0x1fff, g.pass, next) // a non-first fragment has no UDP header
	ihl()
	g.needX(totLen, 2)
	g.ld(cbpf.LD|cbpf.H|cbpf.IND, 14)
	g.jeq(portDHCPServer, g.drop, g.pass)
}

// ipv6: see the package documentation.
func (g *gen) ipv6() {
	a := &g.a
	walk, nonFirst, upper := a.label(), a.label(), a.label()
	end := func() { g.ldMem(memEnd) }
	g.ldLen()
	g.jge(54, next, g.drop)
	g.ld(cbpf.LD|cbpf.B|cbpf.ABS, 14)
	g.alu(cbpf.AND, 0xf0)
	g.jeq(0x60, next, g.drop)
	// The payload is in the frame (receivers drop it otherwise:
	// net/ipv6/ip6_input.c, ip6_rcv_core); everything below reads inside
	// it, so below memEnd (>= 54) and below the frame length.
	g.ld(cbpf.LD|cbpf.H|cbpf.ABS, 18)
	g.alu(cbpf.ADD, 54)
	g.st(memEnd)
	g.ld(cbpf.MISC|cbpf.TAX, 0)
	g.ldLen()
	g.jgeX(next, g.drop)
	g.ld(cbpf.LD|cbpf.IMM, 0)
	g.st(memFrag)
	g.st(memUnspec)
	if g.enforce6 {
		g.v6Src(walk)
	}
	a.mark(walk)
	g.ld(cbpf.LD|cbpf.B|cbpf.ABS, 20)
	g.st(memNext)
	g.ld(cbpf.LDX|cbpf.IMM, 54)
	// cBPF cannot loop: unroll the extension header walk. X is the offset
	// of the current header, memNext its type.
	iter := make([]label, MaxExtHeaders+1)
	for i := range iter {
		iter[i] = a.label()
	}
	for i := range MaxExtHeaders {
		opts, ah, frag, first := a.label(), a.label(), a.label(), a.label()
		a.mark(iter[i])
		g.ldMem(memNext)
		g.jeq(protoHopByHop, opts, next)
		g.jeq(protoDestOpts, opts, next)
		g.jeq(protoRouting, opts, next)
		g.jeq(protoFragment, frag, next)
		g.jeq(protoAH, ah, upper)
		for _, h := range []struct {
			l          label
			add, shift uint32
		}{{opts, 1, 3}, {ah, 2, 2}} { // length in 8-byte units - 1; AH: 4-byte units - 2
			a.mark(h.l)
			g.needX(end, 2)
			g.ld(cbpf.LD|cbpf.B|cbpf.IND, 0)
			g.st(memNext)
			g.ld(cbpf.LD|cbpf.B|cbpf.IND, 1)
			g.alu(cbpf.ADD, h.add)
			g.alu(cbpf.LSH, h.shift)
			g.a.stmt(cbpf.ALU|cbpf.ADD|cbpf.X, 0)
			g.ld(cbpf.MISC|cbpf.TAX, 0)
			a.ja(iter[i+1])
		}
		a.mark(frag)
		g.needX(end, 8)
		g.ld(cbpf.LD|cbpf.B|cbpf.IND, 0)
		g.st(memNext)
		g.ld(cbpf.LD|cbpf.IMM, 1)
		g.st(memFrag)
		g.ld(cbpf.LD|cbpf.H|cbpf.IND, 2)
		g.jset(0xfff8, nonFirst, first) // fragment offset
		a.mark(first)
		g.ld(cbpf.MISC|cbpf.TXA, 0)
		g.alu(cbpf.ADD, 8)
		g.ld(cbpf.MISC|cbpf.TAX, 0)
	}
	a.mark(iter[MaxExtHeaders])
	g.ldMem(memNext)
	for _, h := range []uint32{protoHopByHop, protoDestOpts, protoRouting, protoFragment} {
		g.jeq(h, g.drop, next)
	}
	g.jeq(protoAH, g.drop, upper)

	// A non-first fragment carries no upper-layer header: its first
	// fragment holds the whole chain (RFC 7112) and was checked.
	a.mark(nonFirst)
	g.notUnspec(g.pass)

	a.mark(upper)
	icmp, udp := a.label(), a.label()
	g.ldMem(memNext)
	g.jeq(protoICMPv6, icmp, next)
	g.jeq(protoUDP, udp, next)
	g.notUnspec(g.pass)

	a.mark(udp)
	g.notUnspec(next)
	g.needX(end, 2)
	g.ld(cbpf.LD|cbpf.H|cbpf.IND, 0)
	g.jeq(portDHCPv6Server, g.drop, g.pass)

	a.mark(icmp)
	g.icmpv6()
}

// notUnspec jumps to ok unless the source was :: in an enforced family,
// which only router solicitations, DAD and MLD reports may use.
func (g *gen) notUnspec(ok label) {
	if !g.enforce6 {
		if ok != next {
			g.a.ja(ok)
		}
		return
	}
	g.ldMem(memUnspec)
	g.jeq(0, ok, g.drop)
}

// v6Src jumps to ok if the IPv6 source is link-local or bound; for :: it
// sets memUnspec and jumps to ok; otherwise it drops.
func (g *gen) v6Src(ok label) {
	g.v6Addr(cbpf.ABS, 22, ok)
	for i := uint32(0); i < 4; i++ {
		g.ld(cbpf.LD|cbpf.W|cbpf.ABS, 22+4*i)
		g.jeq(0, next, g.drop)
	}
	g.ld(cbpf.LD|cbpf.IMM, 1)
	g.st(memUnspec)
	g.a.ja(ok)
}

// v6Addr jumps to ok if the IPv6 address at off (absolute, or X-relative
// with mode cbpf.IND) is link-local (fe80::/10) or bound, else falls
// through. The caller has checked the length.
func (g *gen) v6Addr(mode uint16, off uint32, ok label) {
	g.ld(cbpf.LD|cbpf.W|mode, off)
	g.alu(cbpf.AND, 0xffc00000)
	g.jeq(0xfe800000, ok, next)
	for _, addr := range g.v6 {
		b := addr.As16()
		miss := g.a.label()
		for w := uint32(0); w < 4; w++ {
			g.ld(cbpf.LD|cbpf.W|mode, off+4*w)
			hit := next
			if w == 3 {
				hit = ok
			}
			g.jeq(binary.BigEndian.Uint32(b[4*w:]), hit, miss)
		}
		g.a.mark(miss)
	}
}

// icmpv6: no router advertisements or redirects; router solicitations,
// neighbour solicitations and advertisements unfragmented (RFC 6980), with
// link-layer address options naming the guest, and, if IPv6 is enforced,
// advertised and DAD targets link-local or bound.
func (g *gen) icmpv6() {
	a := &g.a
	end := func() { g.ldMem(memEnd) }
	rs, ns, na, options := a.label(), a.label(), a.label(), a.label()
	g.needX(end, 4)
	g.ld(cbpf.LD|cbpf.B|cbpf.IND, 0)
	g.jeq(icmpRA, g.drop, next)
	g.jeq(icmpRedirect, g.drop, next)
	g.jeq(icmpRS, rs, next)
	g.jeq(icmpNS, ns, next)
	g.jeq(icmpNA, na, next)
	g.jeq(icmpMLDv2Report, g.pass, next)
	g.jeq(icmpMLDv1Report, g.pass, next)
	g.notUnspec(g.pass)

	// skipTo drops fragmented ND, checks the fixed part of n bytes is in
	// the payload and moves X to the options.
	skipTo := func(n uint32) {
		g.ldMem(memFrag)
		g.jeq(0, next, g.drop)
		g.needX(end, n)
	}
	advance := func(n uint32) {
		g.ld(cbpf.MISC|cbpf.TXA, 0)
		g.alu(cbpf.ADD, n)
		g.ld(cbpf.MISC|cbpf.TAX, 0)
	}
	a.mark(rs)
	skipTo(8)
	advance(8)
	a.ja(options)

	a.mark(ns)
	skipTo(24)
	if g.enforce6 {
		nsOK := a.label()
		g.ldMem(memUnspec)
		g.jeq(0, nsOK, next)
		g.v6Addr(cbpf.IND, 8, nsOK) // DAD probes only for our own addresses
		a.ja(g.drop)
		a.mark(nsOK)
	}
	advance(24)
	a.ja(options)

	a.mark(na)
	skipTo(24)
	if g.enforce6 {
		naOK := a.label()
		g.ldMem(memUnspec)
		g.jeq(0, next, g.drop)
		g.v6Addr(cbpf.IND, 8, naOK)
		a.ja(g.drop)
		a.mark(naOK)
	}
	advance(24)

	// Options up to the end of the payload, unrolled: each at least 8
	// bytes and inside the payload; source/target link-layer address
	// options exactly 8 bytes naming the guest.
	a.mark(options)
	for range MaxNDOptions {
		lla, skip := a.label(), a.label()
		end()
		g.jeqX(g.pass, next)
		g.alu(cbpf.SUB, 8)
		g.jgeX(next, g.drop)
		g.ld(cbpf.LD|cbpf.B|cbpf.IND, 0)
		g.jeq(1, lla, next)
		g.jeq(2, lla, skip)
		a.mark(lla)
		g.ld(cbpf.LD|cbpf.B|cbpf.IND, 1)
		g.jeq(1, next, g.drop)
		g.macAt(cbpf.IND, 2)
		a.mark(skip)
		g.ld(cbpf.LD|cbpf.B|cbpf.IND, 1)
		g.jeq(0, g.drop, next)
		g.alu(cbpf.LSH, 3)
		g.a.stmt(cbpf.ALU|cbpf.ADD|cbpf.X, 0)
		g.ld(cbpf.MISC|cbpf.TAX, 0)
	}
	end()
	g.jeqX(g.pass, g.drop)
}
