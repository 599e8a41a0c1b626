package cbpf

import (
	"fmt"
	"strings"
)

// Instruction classes, sizes, modes and operations, as in the kernel's
// include/uapi/linux/filter.h and bpf_common.h. An opcode is the sum of a
// class and the fields that class uses.
const (
	LD   = 0x00 // A = load
	LDX  = 0x01 // X = load
	ST   = 0x02 // M[k] = A
	STX  = 0x03 // M[k] = X
	ALU  = 0x04 // A = A op operand
	JMP  = 0x05 // jumps
	RET  = 0x06 // return
	MISC = 0x07 // tax, txa

	W = 0x00 // 32-bit load
	H = 0x08 // 16-bit load
	B = 0x10 // 8-bit load

	IMM = 0x00 // load k
	ABS = 0x20 // load packet[k]
	IND = 0x40 // load packet[x+k]
	MEM = 0x60 // load M[k]
	LEN = 0x80 // load the packet length
	MSH = 0xa0 // ldx 4*(packet[k]&0xf)

	ADD = 0x00
	SUB = 0x10
	MUL = 0x20
	DIV = 0x30
	OR  = 0x40
	AND = 0x50
	LSH = 0x60
	RSH = 0x70
	NEG = 0x80
	MOD = 0x90
	XOR = 0xa0

	JA   = 0x00
	JEQ  = 0x10
	JGT  = 0x20
	JGE  = 0x30
	JSET = 0x40

	K = 0x00 // operand is the instruction's k
	X = 0x08 // operand is X
	A = 0x10 // ret A

	TAX = 0x00 // X = A
	TXA = 0x80 // A = X
)

// Limits and special offsets of the kernel ABI.
const (
	// MaxInsns is BPF_MAXINSNS, the longest program the kernel accepts.
	MaxInsns = 4096

	// MemWords is BPF_MEMWORDS, the number of scratch memory cells.
	MemWords = 16

	// AdOff is SKF_AD_OFF: absolute loads at AdOff+n are ancillary data.
	AdOff = 0xfffff000

	// NetOff and LLOff are SKF_NET_OFF and SKF_LL_OFF (as uint32): loads at
	// NetOff+n and LLOff+n are relative to the network and link-layer
	// headers.
	NetOff = 0xfff00000
	LLOff  = 0xffe00000
)

// Ancillary data offsets (SKF_AD_*), added to AdOff.
const (
	AdProtocol       = 0
	AdPktType        = 4
	AdIfIndex        = 8
	AdNlattr         = 12
	AdNlattrNest     = 16
	AdMark           = 20
	AdQueue          = 24
	AdHatype         = 28
	AdRxhash         = 32
	AdCPU            = 36
	AdAluXorX        = 40
	AdVlanTag        = 44
	AdVlanTagPresent = 48
	AdPayOffset      = 52
	AdRandom         = 56
	AdVlanTPID       = 60
	adMax            = 64
)

// Insn is one classic BPF instruction, laid out as the kernel's struct
// sock_filter (8 bytes: code, jt, jf, k).
type Insn struct {
	Op uint16 // opcode
	Jt uint8  // conditional jumps: offset when true
	Jf uint8  // conditional jumps: offset when false
	K  uint32 // operand
}

// Stmt returns a non-jump instruction.
func Stmt(op uint16, k uint32) Insn { return Insn{Op: op, K: k} }

// Jump returns a conditional jump.
func Jump(op uint16, k uint32, jt, jf uint8) Insn { return Insn{Op: op, Jt: jt, Jf: jf, K: k} }

// String disassembles one instruction in the syntax of bpf_asm(8), with
// jump offsets relative to the next instruction.
func (in Insn) String() string {
	op := in.Op
	switch op & 0x07 {
	case LD, LDX:
		name := "ld"
		if op&0x07 == LDX {
			name = "ldx"
		}
		size := map[uint16]string{W: "", H: "h", B: "b"}[op&0x18]
		switch op & 0xe0 {
		case IMM:
			return fmt.Sprintf("%s #%#x", name, in.K)
		case ABS:
			if op&0x07 == LD && in.K >= AdOff {
				return fmt.Sprintf("ld%s #%s", size, adName(in.K-AdOff))
			}
			return fmt.Sprintf("%s%s [%d]", name, size, in.K)
		case IND:
			return fmt.Sprintf("%s%s [x+%d]", name, size, in.K)
		case MEM:
			return fmt.Sprintf("%s M[%d]", name, in.K)
		case LEN:
			return fmt.Sprintf("%s #len", name)
		case MSH:
			return fmt.Sprintf("ldxb 4*([%d]&0xf)", in.K)
		}
	case ST:
		return fmt.Sprintf("st M[%d]", in.K)
	case STX:
		return fmt.Sprintf("stx M[%d]", in.K)
	case ALU:
		names := map[uint16]string{ADD: "add", SUB: "sub", MUL: "mul", DIV: "div", OR: "or",
			AND: "and", LSH: "lsh", RSH: "rsh", NEG: "neg", MOD: "mod", XOR: "xor"}
		name, ok := names[op&0xf0]
		if !ok {
			break
		}
		if op&0xf0 == NEG {
			return "neg"
		}
		if op&0x08 == X {
			return name + " x"
		}
		return fmt.Sprintf("%s #%#x", name, in.K)
	case JMP:
		if op&0xf0 == JA {
			return fmt.Sprintf("ja +%d", in.K)
		}
		name := map[uint16]string{JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset"}[op&0xf0]
		if name == "" {
			break
		}
		operand := fmt.Sprintf("#%#x", in.K)
		if op&0x08 == X {
			operand = "x"
		}
		return fmt.Sprintf("%s %s, +%d, +%d", name, operand, in.Jt, in.Jf)
	case RET:
		if op&0x18 == A {
			return "ret a"
		}
		return fmt.Sprintf("ret #%#x", in.K)
	case MISC:
		if op&0xf8 == TXA {
			return "txa"
		}
		return "tax"
	}
	return fmt.Sprintf("unknown op %#04x k %#x", op, in.K)
}

// Disasm returns a listing of prog, one numbered instruction per line, with
// absolute jump targets.
func Disasm(prog []Insn) string {
	var b strings.Builder
	for pc, in := range prog {
		fmt.Fprintf(&b, "%4d: %s", pc, in)
		if in.Op&0x07 == JMP {
			if in.Op&0xf0 == JA {
				fmt.Fprintf(&b, "\t; -> %d", pc+1+int(in.K))
			} else {
				fmt.Fprintf(&b, "\t; -> %d, %d", pc+1+int(in.Jt), pc+1+int(in.Jf))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func adName(off uint32) string {
	names := map[uint32]string{
		AdProtocol: "proto", AdPktType: "type", AdIfIndex: "ifidx", AdNlattr: "nla",
		AdNlattrNest: "nlan", AdMark: "mark", AdQueue: "queue", AdHatype: "hatype",
		AdRxhash: "rxhash", AdCPU: "cpu", AdAluXorX: "xor_x", AdVlanTag: "vlan_tci",
		AdVlanTagPresent: "vlan_avail", AdPayOffset: "poff", AdRandom: "rand", AdVlanTPID: "vlan_tpid",
	}
	if n, ok := names[off]; ok {
		return n
	}
	return fmt.Sprintf("ad+%d", off)
}
