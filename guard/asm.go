package guard

import (
	"fmt"

	"github.com/tapbridge/tapbridge/internal/cbpf"
)

// label names a position in a program being assembled. Classic BPF jumps
// only forward, so a label must be marked after every jump to it.
type label int

// next is the instruction after a jump (after its stubs, if any).
const next label = -1

type itemKind uint8

const (
	kindInsn itemKind = iota // a plain instruction
	kindCond                 // a conditional jump to labels t and f
	kindJA                   // an unconditional jump to label t
	kindMark                 // the position of label t
)

type item struct {
	kind         itemKind
	insn         cbpf.Insn
	t, f         label
	stubT, stubF bool // the branch goes through a stub after the jump
}

// asm assembles classic BPF with symbolic forward jumps. A conditional
// jump reaches at most 255 instructions (jt and jf are 8 bits); a branch
// that must reach further goes through a stub placed right after the jump:
// a copy of the target if it is a return, else an unconditional jump (32-bit
// offset). Stubs lengthen the program, which can push other jumps out of
// reach, so assembly repeats until no new stub is needed.
// notRet fills the positions of jumps in a layout.
var notRet = cbpf.Stmt(cbpf.JMP|cbpf.JA, 0)

type asm struct {
	items  []item
	labels int
}

func (a *asm) label() label {
	a.labels++
	return label(a.labels - 1)
}

func (a *asm) mark(l label) { a.items = append(a.items, item{kind: kindMark, t: l}) }

func (a *asm) stmt(op uint16, k uint32) {
	a.items = append(a.items, item{kind: kindInsn, insn: cbpf.Stmt(op, k)})
}

func (a *asm) ret(k uint32) { a.stmt(cbpf.RET|cbpf.K, k) }

// jmp adds a conditional jump (op is cbpf.JMP|JEQ|K and the like).
func (a *asm) jmp(op uint16, k uint32, t, f label) {
	a.items = append(a.items, item{kind: kindCond, insn: cbpf.Jump(op, k, 0, 0), t: t, f: f})
}

func (a *asm) ja(l label) { a.items = append(a.items, item{kind: kindJA, t: l}) }

// assemble resolves the labels and returns the program.
func (a *asm) assemble() ([]cbpf.Insn, error) {
	for {
		pos, at, labelPos, err := a.layout()
		if err != nil {
			return nil, err
		}
		grew := false
		for i := range a.items {
			it := a.items[i] // as laid out: stubs added below apply from the next round
			if it.kind != kindCond {
				continue
			}
			far := func(l label) (bool, error) {
				target, err := a.target(l, pos[i], it, labelPos)
				return target-pos[i]-1 > 255, err
			}
			farT, err := far(it.t)
			if err != nil {
				return nil, err
			}
			farF, err := far(it.f)
			if err != nil {
				return nil, err
			}
			if farT && !it.stubT || farF && !it.stubF {
				a.items[i].stubT = it.stubT || farT
				a.items[i].stubF = it.stubF || farF
				grew = true
			}
		}
		if !grew {
			return a.emit(pos, at, labelPos)
		}
	}
}

// layout places every item: pos[i] is the position of item i, at[p] the
// instruction at position p (notRet for jumps and stubs), labelPos[l] the position a
// label marks.
func (a *asm) layout() (pos []int, at []cbpf.Insn, labelPos []int, err error) {
	pos = make([]int, len(a.items))
	at = make([]cbpf.Insn, 0, len(a.items)+len(a.items)/2)
	labelPos = make([]int, a.labels)
	for i := range labelPos {
		labelPos[i] = -1
	}
	p := 0
	for i, it := range a.items {
		pos[i] = p
		switch it.kind {
		case kindMark:
			if labelPos[it.t] >= 0 {
				return nil, nil, nil, fmt.Errorf("guard: assemble: label %d marked twice", it.t)
			}
			labelPos[it.t] = p
		case kindInsn:
			at = append(at, it.insn)
			p++
		case kindJA, kindCond:
			for range 1 + stubs(it) {
				at = append(at, notRet)
			}
			p += 1 + stubs(it)
		}
	}
	return pos, at, labelPos, nil
}

func stubs(it item) int {
	n := 0
	if it.stubT {
		n++
	}
	if it.stubF {
		n++
	}
	return n
}

// target returns the position a jump at p to l lands on.
func (a *asm) target(l label, p int, it item, labelPos []int) (int, error) {
	after := p + 1 + stubs(it)
	if l == next {
		return after, nil
	}
	t := labelPos[l]
	switch {
	case t < 0:
		return 0, fmt.Errorf("guard: assemble: label %d never marked", l)
	case t < after:
		return 0, fmt.Errorf("guard: assemble: jump back to label %d", l)
	}
	return t, nil
}

func (a *asm) emit(pos []int, at []cbpf.Insn, labelPos []int) ([]cbpf.Insn, error) {
	prog := make([]cbpf.Insn, 0, len(at))
	// jumpTo returns a jump from the current end of prog to position t, or
	// a copy of the return instruction found there.
	jumpTo := func(t int) cbpf.Insn {
		if in := at[t]; in.Op&0x07 == cbpf.RET {
			return in
		}
		return cbpf.Stmt(cbpf.JMP|cbpf.JA, uint32(t-len(prog)-1))
	}
	for i, it := range a.items {
		switch it.kind {
		case kindInsn:
			prog = append(prog, it.insn)
		case kindJA:
			t, err := a.target(it.t, pos[i], it, labelPos)
			if err != nil {
				return nil, err
			}
			prog = append(prog, jumpTo(t))
		case kindCond:
			in := it.insn
			var offs [2]uint8
			var stubTargets []int
			for j, br := range []struct {
				l    label
				stub bool
			}{{it.t, it.stubT}, {it.f, it.stubF}} {
				t, err := a.target(br.l, pos[i], it, labelPos)
				if err != nil {
					return nil, err
				}
				if br.stub {
					offs[j] = uint8(len(stubTargets))
					stubTargets = append(stubTargets, t)
				} else {
					offs[j] = uint8(t - pos[i] - 1)
				}
			}
			in.Jt, in.Jf = offs[0], offs[1]
			prog = append(prog, in)
			for _, t := range stubTargets {
				prog = append(prog, jumpTo(t))
			}
		}
	}
	return prog, nil
}
