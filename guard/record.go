package guard

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/tapbridge/tapbridge/internal/cbpf"
)

// The record is a trailer of unreachable instructions after the code: every
// path through the code ends in a return before it, and the kernel accepts
// unreachable instructions (net/core/filter.c, bpf_check_classic checks
// opcodes and jump ranges only, and check_load_and_stores has no effect on
// immediate loads). cls_bpf keeps the classic instructions as given and
// dumps them back verbatim in TCA_BPF_OPS (net/sched/cls_bpf.c,
// cls_bpf_dump_bpf_info), so the installed filter is the record of the
// NIC's policy. Layout, each a BPF_LD|BPF_IMM with the data in k and jt, jf
// zero:
//
//	magic "tbgd"
//	format<<24 | code version<<16 | mode<<8 | flags (bit 0: gateway)
//	MAC bytes 0-3
//	MAC bytes 4-5 << 16
//	address count
//	per address: its length in bytes (4 or 16)<<8 | prefix length, then 1 or 4 words
//	gateway, if flagged
//	length of the record in instructions, this one and the return included
//	ret #Drop (the kernel wants a return last)
const (
	recordMagic  = 0x74626764 // "tbgd"
	recordFormat = 1

	// codeVersion changes whenever generate emits different code for the
	// same Policy, so that Decode can tell a program this build would not
	// have made.
	codeVersion = 1

	modeL2Code     = 1
	modeStrictCode = 2
	flagGateway    = 1
)

func recordLen(p *Policy) int {
	n := 5 + 2
	for _, pfx := range p.Addrs {
		n += 1 + pfx.Addr().BitLen()/32
	}
	if p.Gateway.IsValid() {
		n++
	}
	return n
}

// record returns the trailer for a canonical, valid policy.
func record(p *Policy) []cbpf.Insn {
	mode := uint32(modeL2Code)
	if p.Mode == ModeStrict {
		mode = modeStrictCode
	}
	var flags uint32
	if p.Gateway.IsValid() {
		flags |= flagGateway
	}
	words := []uint32{
		recordMagic,
		recordFormat<<24 | codeVersion<<16 | mode<<8 | flags,
		binary.BigEndian.Uint32(p.MAC[:4]),
		uint32(binary.BigEndian.Uint16(p.MAC[4:])) << 16,
		uint32(len(p.Addrs)),
	}
	for _, pfx := range p.Addrs {
		b := pfx.Addr().AsSlice()
		words = append(words, uint32(len(b))<<8|uint32(pfx.Bits()))
		for i := 0; i < len(b); i += 4 {
			words = append(words, binary.BigEndian.Uint32(b[i:]))
		}
	}
	if p.Gateway.IsValid() {
		b := p.Gateway.As4()
		words = append(words, binary.BigEndian.Uint32(b[:]))
	}
	words = append(words, uint32(len(words)+2))
	out := make([]cbpf.Insn, 0, len(words)+1)
	for _, w := range words {
		out = append(out, cbpf.Stmt(cbpf.LD|cbpf.IMM, w))
	}
	return append(out, cbpf.Stmt(cbpf.RET|cbpf.K, Drop))
}

// Decode reads back the Policy a program made by Program enforces, from the
// record at its end: how a process learns a NIC's mode and bindings from
// the filter installed on its TAP. An empty program (no filter) decodes as
// ModeOff with no addresses, since Program installs nothing for ModeOff.
//
// Decode checks the whole program, not just the record: it returns an error
// wrapping ErrNotGuard if prog carries no valid record, and one wrapping
// ErrMismatch, together with the recorded Policy, if the code is not what
// this package generates for it (another version made it, or it was
// modified). Decode never panics, whatever prog holds.
func Decode(prog []Instruction) (*Policy, error) {
	if len(prog) == 0 {
		return &Policy{Mode: ModeOff}, nil
	}
	p, version, err := decodeRecord(prog)
	if err != nil {
		return nil, err
	}
	if version != codeVersion {
		return p, fmt.Errorf("guard: program made by code version %d, this is version %d: %w", version, codeVersion, ErrMismatch)
	}
	want, err := generate(p)
	if err != nil {
		return nil, fmt.Errorf("guard: record: %w: %w", err, ErrNotGuard)
	}
	if !slices.Equal(want, insns(prog)) {
		return p, fmt.Errorf("guard: program code differs from what its record gives: %w", ErrMismatch)
	}
	return p, nil
}

func insns(prog []Instruction) []cbpf.Insn {
	out := make([]cbpf.Insn, len(prog))
	for i, in := range prog {
		out[i] = cbpf.Insn(in)
	}
	return out
}

// decodeRecord parses the trailer; the Policy it returns is canonical and
// valid.
func decodeRecord(prog []Instruction) (*Policy, int, error) {
	bad := func(why string) (*Policy, int, error) {
		return nil, 0, fmt.Errorf("guard: %s: %w", why, ErrNotGuard)
	}
	n := len(prog)
	if n < 7 {
		return bad("too short for a record")
	}
	if last := prog[n-1]; last != (Instruction{Op: cbpf.RET | cbpf.K, K: Drop}) {
		return bad("no record: last instruction is not ret #2")
	}
	size := prog[n-2].K
	if size < 7 || size > uint32(n) {
		return bad("no record: bad record length")
	}
	words := make([]uint32, 0, size-1)
	for _, in := range prog[n-int(size) : n-1] {
		if in.Op != cbpf.LD|cbpf.IMM || in.Jt != 0 || in.Jf != 0 {
			return bad("no record: not an immediate load")
		}
		words = append(words, in.K)
	}
	if words[0] != recordMagic {
		return bad("no record: bad magic")
	}
	head := words[1]
	if head>>24 != recordFormat {
		return bad(fmt.Sprintf("unknown record format %d", head>>24))
	}
	p := &Policy{}
	switch head >> 8 & 0xff {
	case modeL2Code:
		p.Mode = ModeL2
	case modeStrictCode:
		p.Mode = ModeStrict
	default:
		return bad("record has an unknown mode")
	}
	if head&0xff&^flagGateway != 0 {
		return bad("record has unknown flags")
	}
	binary.BigEndian.PutUint32(p.MAC[:4], words[2])
	if words[3]&0xffff != 0 {
		return bad("record has a bad MAC word")
	}
	binary.BigEndian.PutUint16(p.MAC[4:], uint16(words[3]>>16))
	count := words[4]
	if count > MaxAddrs {
		return bad("record holds too many addresses")
	}
	rest := words[5 : len(words)-1] // without the length word
	for range count {
		if len(rest) == 0 {
			return bad("record is truncated")
		}
		fam, bits := rest[0]>>8, int(rest[0]&0xff)
		var addr netip.Addr
		switch {
		case fam == 4 && len(rest) >= 2 && rest[0]>>16 == 0:
			addr = netip.AddrFrom4(be4(rest[1]))
			rest = rest[2:]
		case fam == 16 && len(rest) >= 5 && rest[0]>>16 == 0:
			var b [16]byte
			for i := range 4 {
				binary.BigEndian.PutUint32(b[4*i:], rest[1+i])
			}
			addr = netip.AddrFrom16(b)
			rest = rest[5:]
		default:
			return bad("record has a bad address")
		}
		pfx := netip.PrefixFrom(addr, bits)
		if !pfx.IsValid() {
			return bad("record has a bad prefix length")
		}
		p.Addrs = append(p.Addrs, pfx)
	}
	if head&flagGateway != 0 {
		if len(rest) == 0 {
			return bad("record is truncated")
		}
		p.Gateway = netip.AddrFrom4(be4(rest[0]))
		rest = rest[1:]
	}
	if len(rest) != 0 {
		return bad("record has trailing words")
	}
	if err := p.Validate(); err != nil {
		return nil, 0, fmt.Errorf("guard: record: %w: %w", err, ErrNotGuard)
	}
	c := p.canonical()
	if !slices.Equal(c.Addrs, p.Addrs) {
		return bad("record addresses are not in order")
	}
	return c, int(head >> 16 & 0xff), nil
}

func be4(w uint32) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], w)
	return b
}
