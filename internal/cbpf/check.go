package cbpf

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by the errors of Check, and of Run when it reaches
// an instruction the kernel would have refused.
var ErrInvalid = errors.New("invalid classic BPF program")

// allowed is chk_code_allowed (net/core/filter.c): the opcodes a classic
// program may use.
var allowed = func() map[uint16]bool {
	m := make(map[uint16]bool)
	for _, op := range []uint16{ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH} {
		m[ALU|op|K] = true
		m[ALU|op|X] = true
	}
	for _, op := range []uint16{
		ALU | NEG,
		LD | W | ABS, LD | H | ABS, LD | B | ABS, LD | W | LEN,
		LD | W | IND, LD | H | IND, LD | B | IND, LD | IMM, LD | MEM,
		LDX | W | LEN, LDX | B | MSH, LDX | IMM, LDX | MEM,
		ST, STX, MISC | TAX, MISC | TXA, RET | K, RET | A, JMP | JA,
	} {
		m[op] = true
	}
	for _, op := range []uint16{JEQ, JGE, JGT, JSET} {
		m[JMP|op|K] = true
		m[JMP|op|X] = true
	}
	return m
}()

// Check reports whether the kernel would accept prog as a classic BPF
// program, with the checks of bpf_check_classic and check_load_and_stores
// (net/core/filter.c): 1 to MaxInsns instructions, allowed opcodes only, no
// division or modulo by a constant zero, constant shifts below 32, scratch
// cells below MemWords and written before they are read on every path, jump
// targets inside the program, ancillary offsets the kernel knows, and a
// return as the last instruction. Unreachable instructions are allowed, as
// in the kernel. The error wraps ErrInvalid and names the instruction.
func Check(prog []Insn) error {
	n := len(prog)
	if n == 0 || n > MaxInsns {
		return fmt.Errorf("cbpf: program length %d, want 1..%d: %w", n, MaxInsns, ErrInvalid)
	}
	for pc, in := range prog {
		if !allowed[in.Op] {
			return insnErr(pc, in, "opcode not allowed")
		}
		switch in.Op {
		case ALU | DIV | K, ALU | MOD | K:
			if in.K == 0 {
				return insnErr(pc, in, "division by zero")
			}
		case ALU | LSH | K, ALU | RSH | K:
			if in.K >= 32 {
				return insnErr(pc, in, "shift of 32 or more")
			}
		case LD | MEM, LDX | MEM, ST, STX:
			if in.K >= MemWords {
				return insnErr(pc, in, "scratch cell out of range")
			}
		case JMP | JA:
			if in.K >= uint32(n-pc-1) {
				return insnErr(pc, in, "jump out of range")
			}
		case JMP | JEQ | K, JMP | JEQ | X, JMP | JGE | K, JMP | JGE | X,
			JMP | JGT | K, JMP | JGT | X, JMP | JSET | K, JMP | JSET | X:
			if pc+int(in.Jt)+1 >= n || pc+int(in.Jf)+1 >= n {
				return insnErr(pc, in, "jump out of range")
			}
		case LD | W | ABS, LD | H | ABS, LD | B | ABS:
			if in.K >= AdOff && !isAncillary(in.K) {
				return insnErr(pc, in, "unknown ancillary load")
			}
		}
	}
	switch prog[n-1].Op {
	case RET | K, RET | A:
	default:
		return insnErr(n-1, prog[n-1], "last instruction is not a return")
	}
	return checkLoadAndStores(prog)
}

// checkLoadAndStores is the kernel's check_load_and_stores, line for line:
// one bit per scratch cell, masks carried forward along jumps.
func checkLoadAndStores(prog []Insn) error {
	masks := make([]uint16, len(prog))
	for i := range masks {
		masks[i] = 0xffff
	}
	var valid uint16
	for pc, in := range prog {
		valid &= masks[pc]
		switch in.Op {
		case ST, STX:
			valid |= 1 << in.K
		case LD | MEM, LDX | MEM:
			if valid&(1<<in.K) == 0 {
				return insnErr(pc, in, "scratch cell read before it is written")
			}
		case JMP | JA:
			masks[pc+1+int(in.K)] &= valid
			valid = 0xffff
		case JMP | JEQ | K, JMP | JEQ | X, JMP | JGE | K, JMP | JGE | X,
			JMP | JGT | K, JMP | JGT | X, JMP | JSET | K, JMP | JSET | X:
			masks[pc+1+int(in.Jt)] &= valid
			masks[pc+1+int(in.Jf)] &= valid
			valid = 0xffff
		}
	}
	return nil
}

// isAncillary is bpf_anc_helper's list (include/linux/filter.h).
func isAncillary(k uint32) bool {
	off := k - AdOff
	return off < adMax && off%4 == 0
}

func insnErr(pc int, in Insn, reason string) error {
	return fmt.Errorf("cbpf: insn %d (%v): %s: %w", pc, in, reason, ErrInvalid)
}
