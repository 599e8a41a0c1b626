package cbpf

import (
	"errors"
	"fmt"
)

// Meta is the skb state behind a frame that ancillary loads read
// (SKF_AD_*). The zero value is an untagged frame whose network header
// follows a 14-byte Ethernet header.
type Meta struct {
	Protocol    uint16 // skb->protocol, host order (SKF_AD_PROTOCOL)
	PktType     uint8  // skb->pkt_type: 0 host, 1 broadcast, 2 multicast, 3 other host
	IfIndex     uint32 // skb->dev->ifindex
	Mark        uint32 // skb->mark
	Queue       uint16 // skb->queue_mapping
	HAType      uint16 // skb->dev->type (ARPHRD_ETHER is 1)
	RxHash      uint32 // skb->hash
	CPU         uint32 // the CPU the program runs on
	Random      uint32 // what SKF_AD_RANDOM returns
	PayOffset   uint32 // what SKF_AD_PAY_OFFSET returns (the flow dissector's payload offset)
	VLANPresent bool   // skb_vlan_tag_present: a tag was taken out of the frame
	VLANTCI     uint16 // skb->vlan_tci
	VLANTPID    uint16 // skb->vlan_proto, host order

	// NetOffset is where the network header starts in the frame
	// (skb->mac_len at tc ingress); loads at NetOff+n are relative to it.
	// Zero means 14, after an untagged Ethernet header.
	NetOffset int
}

// Run executes prog on frame, which starts at the link-layer header as at
// tc ingress, and returns the program's return value. m supplies the
// ancillary data; nil means the zero Meta.
//
// Run does not call Check: it returns an error wrapping ErrInvalid only if
// execution reaches an instruction the kernel would have refused, or runs
// off the end of the program; for SKF_AD_NLATTR and SKF_AD_NLATTR_NEST it
// returns an error wrapping errors.ErrUnsupported. A load past the end of
// the frame is not an error: it returns 0, as the kernel does.
func Run(prog []Insn, frame []byte, m *Meta) (uint32, error) {
	return run(prog, frame, m, nil)
}

// Trace is Run that also returns the program counters it executed, in
// order, for failure messages.
func Trace(prog []Insn, frame []byte, m *Meta) (uint32, []int, error) {
	var path []int
	ret, err := run(prog, frame, m, &path)
	return ret, path, err
}

func run(prog []Insn, frame []byte, m *Meta, path *[]int) (uint32, error) {
	if m == nil {
		m = &Meta{}
	}
	netOff := m.NetOffset
	if netOff == 0 {
		netOff = 14
	}
	var a, x uint32
	var mem [MemWords]uint32
	// load reads size bytes at off, with the offset conversion of
	// bpf_skb_load_helper_convert_offset; ok is false where the kernel's
	// load helper fails and the program returns 0.
	load := func(off int32, size int) (uint32, bool) {
		const skfNetOff, skfLLOff = -0x100000, -0x200000 // NetOff, LLOff as int32
		o := int64(off)
		switch {
		case off >= 0:
		case o >= skfNetOff:
			o = o - skfNetOff + int64(netOff)
		case o >= skfLLOff:
			o -= skfLLOff
		default:
			return 0, false
		}
		if o < 0 || o+int64(size) > int64(len(frame)) {
			return 0, false
		}
		var v uint32
		for _, c := range frame[o : o+int64(size)] {
			v = v<<8 | uint32(c)
		}
		return v, true
	}
	for pc := 0; ; pc++ {
		if pc >= len(prog) {
			return 0, fmt.Errorf("cbpf: ran off the end of a %d-instruction program: %w", len(prog), ErrInvalid)
		}
		if path != nil {
			*path = append(*path, pc)
		}
		in := prog[pc]
		jump := func(off int) error {
			if pc+1+off >= len(prog) {
				return insnErr(pc, in, "jump out of range")
			}
			pc += off
			return nil
		}
		switch in.Op {
		case LD | W | ABS, LD | H | ABS, LD | B | ABS:
			if in.K >= AdOff {
				v, err := ancillary(in, pc, m, a, x)
				if err != nil {
					return 0, err
				}
				a = v
				continue
			}
			v, ok := load(int32(in.K), loadSize(in.Op))
			if !ok {
				return 0, nil
			}
			a = v
		case LD | W | IND, LD | H | IND, LD | B | IND:
			v, ok := load(int32(x+in.K), loadSize(in.Op))
			if !ok {
				return 0, nil
			}
			a = v
		case LDX | B | MSH:
			v, ok := load(int32(in.K), 1)
			if !ok {
				return 0, nil
			}
			x = 4 * (v & 0xf)
		case LD | W | LEN:
			a = uint32(len(frame))
		case LDX | W | LEN:
			x = uint32(len(frame))
		case LD | IMM:
			a = in.K
		case LDX | IMM:
			x = in.K
		case LD | MEM, LDX | MEM, ST, STX:
			if in.K >= MemWords {
				return 0, insnErr(pc, in, "scratch cell out of range")
			}
			switch in.Op {
			case LD | MEM:
				a = mem[in.K]
			case LDX | MEM:
				x = mem[in.K]
			case ST:
				mem[in.K] = a
			default:
				mem[in.K] = x
			}
		case MISC | TAX:
			x = a
		case MISC | TXA:
			a = x
		case ALU | NEG:
			a = -a
		case RET | K:
			return in.K, nil
		case RET | A:
			return a, nil
		case JMP | JA:
			if in.K >= uint32(len(prog)) {
				return 0, insnErr(pc, in, "jump out of range")
			}
			if err := jump(int(in.K)); err != nil {
				return 0, err
			}
		default:
			switch in.Op & 0x07 {
			case ALU:
				if !allowed[in.Op] {
					return 0, insnErr(pc, in, "opcode not allowed")
				}
				operand := in.K
				if in.Op&0x08 == X {
					operand = x
				}
				var ok bool
				if a, ok = alu(in.Op&0xf0, a, operand, in.Op&0x08 == X); !ok {
					if in.Op&0x08 == K {
						return 0, insnErr(pc, in, "invalid constant operand")
					}
					return 0, nil // division by X == 0
				}
			case JMP:
				if !allowed[in.Op] {
					return 0, insnErr(pc, in, "opcode not allowed")
				}
				operand := in.K
				if in.Op&0x08 == X {
					operand = x
				}
				var taken bool
				switch in.Op & 0xf0 {
				case JEQ:
					taken = a == operand
				case JGT:
					taken = a > operand
				case JGE:
					taken = a >= operand
				case JSET:
					taken = a&operand != 0
				}
				off := int(in.Jf)
				if taken {
					off = int(in.Jt)
				}
				if err := jump(off); err != nil {
					return 0, err
				}
			default:
				return 0, insnErr(pc, in, "opcode not allowed")
			}
		}
	}
}

func loadSize(op uint16) int {
	switch op & 0x18 {
	case H:
		return 2
	case B:
		return 1
	}
	return 4
}

// alu applies a 32-bit ALU operation; ok is false for a division or modulo
// by zero and for a constant shift of 32 or more.
func alu(op uint16, a, v uint32, byX bool) (uint32, bool) {
	switch op {
	case ADD:
		return a + v, true
	case SUB:
		return a - v, true
	case MUL:
		return a * v, true
	case DIV:
		if v == 0 {
			return 0, false
		}
		return a / v, true
	case MOD:
		if v == 0 {
			return 0, false
		}
		return a % v, true
	case OR:
		return a | v, true
	case AND:
		return a & v, true
	case XOR:
		return a ^ v, true
	case LSH, RSH:
		if !byX && v >= 32 {
			return 0, false
		}
		v &= 31 // 32-bit eBPF shifts by register use the low 5 bits
		if op == LSH {
			return a << v, true
		}
		return a >> v, true
	}
	return 0, true // NEG and unknown operations are handled by the caller
}

// ancillary is convert_bpf_extensions (net/core/filter.c).
func ancillary(in Insn, pc int, m *Meta, a, x uint32) (uint32, error) {
	if !isAncillary(in.K) {
		return 0, insnErr(pc, in, "unknown ancillary load")
	}
	switch in.K - AdOff {
	case AdProtocol:
		return uint32(m.Protocol), nil
	case AdPktType:
		return uint32(m.PktType & 7), nil
	case AdIfIndex:
		return m.IfIndex, nil
	case AdMark:
		return m.Mark, nil
	case AdQueue:
		return uint32(m.Queue), nil
	case AdHatype:
		return uint32(m.HAType), nil
	case AdRxhash:
		return m.RxHash, nil
	case AdCPU:
		return m.CPU, nil
	case AdAluXorX:
		return a ^ x, nil
	case AdVlanTag:
		return uint32(m.VLANTCI), nil
	case AdVlanTagPresent:
		if m.VLANPresent {
			return 1, nil
		}
		return 0, nil
	case AdPayOffset:
		return m.PayOffset, nil
	case AdRandom:
		return m.Random, nil
	case AdVlanTPID:
		return uint32(m.VLANTPID), nil
	}
	return 0, fmt.Errorf("cbpf: insn %d (%v): netlink attribute loads: %w", pc, in, errors.ErrUnsupported)
}
