package cbpf

import (
	"errors"
	"strings"
	"testing"
)

var (
	retA = Stmt(RET|A, 0)
	ret0 = Stmt(RET|K, 0)
)

func TestCheck(t *testing.T) {
	long := make([]Insn, MaxInsns+1)
	for i := range long {
		long[i] = ret0
	}
	tests := []struct {
		name string
		prog []Insn
		ok   bool
	}{
		{"empty", nil, false},
		{"one ret", []Insn{ret0}, true},
		{"ret a", []Insn{retA}, true},
		{"max length", long[:MaxInsns], true},
		{"too long", long, false},
		{"last not ret", []Insn{ret0, Stmt(LD|IMM, 1)}, false},
		{"unknown opcode", []Insn{Stmt(0xffff, 0), ret0}, false},
		{"alu arsh not allowed", []Insn{Stmt(ALU|0xc0|K, 1), ret0}, false},
		{"ldx abs (seccomp only)", []Insn{Stmt(LDX|W|ABS, 0), ret0}, false},
		{"div k 0", []Insn{Stmt(ALU|DIV|K, 0), ret0}, false},
		{"mod k 0", []Insn{Stmt(ALU|MOD|K, 0), ret0}, false},
		{"div x (checked at run time)", []Insn{Stmt(ALU|DIV|X, 0), ret0}, true},
		{"lsh 31", []Insn{Stmt(ALU|LSH|K, 31), ret0}, true},
		{"lsh 32", []Insn{Stmt(ALU|LSH|K, 32), ret0}, false},
		{"rsh 32", []Insn{Stmt(ALU|RSH|K, 32), ret0}, false},
		{"st 15", []Insn{Stmt(ST, 15), ret0}, true},
		{"st 16", []Insn{Stmt(ST, 16), ret0}, false},
		{"ld mem 16", []Insn{Stmt(LD|MEM, 16), ret0}, false},
		{"ja in range", []Insn{Stmt(JMP|JA, 1), ret0, ret0}, true},
		{"ja to end", []Insn{Stmt(JMP|JA, 1), ret0}, false},
		{"jeq jt out", []Insn{Jump(JMP|JEQ|K, 0, 1, 0), ret0}, false},
		{"jeq jf out", []Insn{Jump(JMP|JEQ|K, 0, 0, 1), ret0}, false},
		{"jset x in range", []Insn{Jump(JMP|JSET|X, 0, 1, 0), ret0, ret0}, true},
		{"ancillary vlan present", []Insn{Stmt(LD|W|ABS, AdOff+AdVlanTagPresent), retA}, true},
		{"ancillary byte load", []Insn{Stmt(LD|B|ABS, AdOff+AdProtocol), retA}, true},
		{"ancillary unknown", []Insn{Stmt(LD|W|ABS, AdOff+adMax), retA}, false},
		{"ancillary unaligned", []Insn{Stmt(LD|W|ABS, AdOff+1), retA}, false},
		{"ind above ad_off is fine", []Insn{Stmt(LD|W|IND, AdOff+adMax), retA}, true},
		{"net offset", []Insn{Stmt(LD|B|ABS, NetOff), retA}, true},
		{"mem read before write", []Insn{Stmt(LD|MEM, 0), retA}, false},
		{"mem write then read", []Insn{Stmt(ST, 3), Stmt(LDX|MEM, 3), retA}, true},
		{"mem written on one path only", []Insn{
			Jump(JMP|JEQ|K, 0, 0, 1),
			Stmt(ST, 0),
			Stmt(LD|MEM, 0),
			retA,
		}, false},
		{"mem written on both paths", []Insn{
			Jump(JMP|JEQ|K, 0, 0, 2),
			Stmt(ST, 0),
			Stmt(JMP|JA, 1),
			Stmt(ST, 0),
			Stmt(LD|MEM, 0),
			retA,
		}, true},
		{"unreachable trailer", []Insn{ret0, Stmt(LD|IMM, 0x12345678), Stmt(LD|IMM, 1), ret0}, true},
	}
	for _, tt := range tests {
		err := Check(tt.prog)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Check() = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Check() = %v, want an error wrapping ErrInvalid", tt.name, err)
		}
	}
}

func TestRun(t *testing.T) {
	frame := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x45, 0xff}
	tests := []struct {
		name string
		prog []Insn
		meta *Meta
		want uint32
	}{
		{"ret k", []Insn{Stmt(RET|K, 7)}, nil, 7},
		{"ld w", []Insn{Stmt(LD|W|ABS, 0), retA}, nil, 0x01020304},
		{"ld h", []Insn{Stmt(LD|H|ABS, 2), retA}, nil, 0x0304},
		{"ld b", []Insn{Stmt(LD|B|ABS, 15), retA}, nil, 0xff},
		{"ld w at the end", []Insn{Stmt(LD|W|ABS, 12), retA}, nil, 0x0d0e45ff},
		{"ld w past the end returns 0", []Insn{Stmt(LD|W|ABS, 13), Stmt(RET|K, 9)}, nil, 0},
		{"ld b past the end returns 0", []Insn{Stmt(LD|B|ABS, 16), Stmt(RET|K, 9)}, nil, 0},
		{"ld huge offset returns 0", []Insn{Stmt(LD|B|ABS, 0x7fffffff), Stmt(RET|K, 9)}, nil, 0},
		{"ld ind", []Insn{Stmt(LDX|IMM, 4), Stmt(LD|H|IND, 2), retA}, nil, 0x0708},
		{"ld ind past the end returns 0", []Insn{Stmt(LDX|IMM, 15), Stmt(LD|H|IND, 0), Stmt(RET|K, 9)}, nil, 0},
		{"ld ind wraps to negative returns 0", []Insn{Stmt(LDX|IMM, 0xffffffff), Stmt(LD|B|IND, 0), Stmt(RET|K, 9)}, nil, 0},
		{"ld ind wraps around to a small offset", []Insn{Stmt(LDX|IMM, 0xffffffff), Stmt(LD|B|IND, 2), retA}, nil, 0x02},
		{"msh", []Insn{Stmt(LDX|B|MSH, 14), Stmt(MISC|TXA, 0), retA}, nil, 20},
		{"msh keeps A", []Insn{Stmt(LD|IMM, 3), Stmt(LDX|B|MSH, 14), retA}, nil, 3},
		{"msh past the end returns 0", []Insn{Stmt(LDX|B|MSH, 16), Stmt(RET|K, 9)}, nil, 0},
		{"len", []Insn{Stmt(LD|W|LEN, 0), retA}, nil, 16},
		{"ldx len", []Insn{Stmt(LDX|W|LEN, 0), Stmt(MISC|TXA, 0), retA}, nil, 16},
		{"ll offset", []Insn{Stmt(LD|B|ABS, LLOff+1), retA}, nil, 0x02},
		{"net offset", []Insn{Stmt(LD|B|ABS, NetOff), retA}, nil, 0x45},
		{"net offset with tag room", []Insn{Stmt(LD|B|ABS, NetOff), retA}, &Meta{NetOffset: 2}, 0x03},
		{"below ll offset returns 0", []Insn{Stmt(LD|B|ABS, LLOff-1), Stmt(RET|K, 9)}, nil, 0},
		{"add", []Insn{Stmt(LD|IMM, 0xffffffff), Stmt(ALU|ADD|K, 2), retA}, nil, 1},
		{"sub", []Insn{Stmt(LD|IMM, 1), Stmt(ALU|SUB|K, 2), retA}, nil, 0xffffffff},
		{"mul", []Insn{Stmt(LD|IMM, 0x10000), Stmt(ALU|MUL|K, 0x10001), retA}, nil, 0x10000},
		{"div", []Insn{Stmt(LD|IMM, 7), Stmt(ALU|DIV|K, 2), retA}, nil, 3},
		{"mod", []Insn{Stmt(LD|IMM, 7), Stmt(ALU|MOD|K, 4), retA}, nil, 3},
		{"div x zero returns 0", []Insn{Stmt(LD|IMM, 7), Stmt(ALU|DIV|X, 0), Stmt(RET|K, 9)}, nil, 0},
		{"mod x zero returns 0", []Insn{Stmt(LD|IMM, 7), Stmt(ALU|MOD|X, 0), Stmt(RET|K, 9)}, nil, 0},
		{"div x", []Insn{Stmt(LD|IMM, 9), Stmt(LDX|IMM, 3), Stmt(ALU|DIV|X, 0), retA}, nil, 3},
		{"and or xor", []Insn{Stmt(LD|IMM, 0xf0), Stmt(ALU|AND|K, 0x3c), Stmt(ALU|OR|K, 1), Stmt(ALU|XOR|K, 0xff), retA}, nil, 0xce},
		{"lsh rsh", []Insn{Stmt(LD|IMM, 0x81), Stmt(ALU|LSH|K, 31), Stmt(ALU|RSH|K, 30), retA}, nil, 2},
		{"lsh x masks to 5 bits", []Insn{Stmt(LD|IMM, 1), Stmt(LDX|IMM, 33), Stmt(ALU|LSH|X, 0), retA}, nil, 2},
		{"neg", []Insn{Stmt(LD|IMM, 1), Stmt(ALU|NEG, 0), retA}, nil, 0xffffffff},
		{"tax txa", []Insn{Stmt(LD|IMM, 5), Stmt(MISC|TAX, 0), Stmt(LD|IMM, 0), Stmt(MISC|TXA, 0), retA}, nil, 5},
		{"st ld", []Insn{Stmt(LD|IMM, 5), Stmt(ST, 2), Stmt(LDX|IMM, 6), Stmt(STX, 3), Stmt(LD|MEM, 3), Stmt(LDX|MEM, 2), Stmt(ALU|ADD|X, 0), retA}, nil, 11},
		{"ja", []Insn{Stmt(JMP|JA, 1), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 2},
		{"jeq true", []Insn{Stmt(LD|IMM, 5), Jump(JMP|JEQ|K, 5, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 2},
		{"jeq false", []Insn{Stmt(LD|IMM, 4), Jump(JMP|JEQ|K, 5, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 1},
		{"jgt unsigned", []Insn{Stmt(LD|IMM, 0x80000000), Jump(JMP|JGT|K, 1, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 2},
		{"jge equal", []Insn{Stmt(LD|IMM, 3), Jump(JMP|JGE|K, 3, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 2},
		{"jset", []Insn{Stmt(LD|IMM, 6), Jump(JMP|JSET|K, 1, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 1},
		{"jgt x", []Insn{Stmt(LD|IMM, 3), Stmt(LDX|IMM, 2), Jump(JMP|JGT|X, 0, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 2},
		{"jeq negative constant", []Insn{Stmt(LD|IMM, 0xffffffff), Jump(JMP|JEQ|K, 0xffffffff, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}, nil, 2},
		{"vlan present", []Insn{Stmt(LD|W|ABS, AdOff+AdVlanTagPresent), retA}, &Meta{VLANPresent: true}, 1},
		{"vlan absent", []Insn{Stmt(LD|B|ABS, AdOff+AdVlanTagPresent), retA}, nil, 0},
		{"vlan tci", []Insn{Stmt(LD|H|ABS, AdOff+AdVlanTag), retA}, &Meta{VLANTCI: 0xf123}, 0xf123},
		{"protocol", []Insn{Stmt(LD|W|ABS, AdOff+AdProtocol), retA}, &Meta{Protocol: 0x86dd}, 0x86dd},
		{"pkttype", []Insn{Stmt(LD|W|ABS, AdOff+AdPktType), retA}, &Meta{PktType: 3}, 3},
		{"xor x", []Insn{Stmt(LD|IMM, 6), Stmt(LDX|IMM, 3), Stmt(LD|W|ABS, AdOff+AdAluXorX), retA}, nil, 5},
	}
	for _, tt := range tests {
		got, err := Run(tt.prog, frame, tt.meta)
		if err != nil || got != tt.want {
			t.Errorf("%s: Run() = %#x, %v, want %#x\n%s", tt.name, got, err, tt.want, Disasm(tt.prog))
		}
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		prog []Insn
		want error
	}{
		{"off the end", []Insn{Stmt(LD|IMM, 1)}, ErrInvalid},
		{"bad opcode", []Insn{Stmt(0x1234, 0), ret0}, ErrInvalid},
		{"bad jump", []Insn{Jump(JMP|JEQ|K, 0, 5, 5), ret0}, ErrInvalid},
		{"bad ja", []Insn{Stmt(JMP|JA, 0xffffffff), ret0}, ErrInvalid},
		{"div k 0", []Insn{Stmt(ALU|DIV|K, 0), ret0}, ErrInvalid},
		{"unknown ancillary", []Insn{Stmt(LD|W|ABS, AdOff+3), ret0}, ErrInvalid},
		{"nlattr", []Insn{Stmt(LD|W|ABS, AdOff+AdNlattr), ret0}, errors.ErrUnsupported},
		{"mem out of range", []Insn{Stmt(ST, 99), ret0}, ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := Run(tt.prog, make([]byte, 64), nil); !errors.Is(err, tt.want) {
			t.Errorf("%s: Run() error = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestTrace(t *testing.T) {
	prog := []Insn{Stmt(LD|IMM, 5), Jump(JMP|JEQ|K, 5, 1, 0), Stmt(RET|K, 1), Stmt(RET|K, 2)}
	ret, path, err := Trace(prog, nil, nil)
	if err != nil || ret != 2 || len(path) != 3 || path[2] != 3 {
		t.Errorf("Trace() = %d, %v, %v, want 2, [0 1 3], nil", ret, path, err)
	}
}

func TestDisasm(t *testing.T) {
	prog := []Insn{
		Stmt(LD|H|ABS, 12), Jump(JMP|JEQ|K, 0x800, 0, 1), Stmt(LD|W|ABS, AdOff+AdVlanTagPresent),
		Stmt(LDX|B|MSH, 14), Stmt(LD|B|IND, 14), Stmt(ST, 1), Stmt(ALU|ADD|X, 0), Stmt(JMP|JA, 0), Stmt(RET|K, 2),
	}
	got := Disasm(prog)
	for _, want := range []string{"ldh [12]", "jeq #0x800, +0, +1\t; -> 2, 3", "ld #vlan_avail", "ldxb 4*([14]&0xf)", "ldb [x+14]", "st M[1]", "add x", "ja +0", "ret #0x2"} {
		if !strings.Contains(got, want) {
			t.Errorf("Disasm() = %q, want it to contain %q", got, want)
		}
	}
}

func TestIngress(t *testing.T) {
	dev := [6]byte{0xfe, 0, 0, 0, 0, 1}
	guest := []byte{2, 0, 0, 0, 0, 9}
	eth := func(dst []byte, rest ...byte) []byte {
		return append(append(append([]byte(nil), dst...), guest...), rest...)
	}
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	tests := []struct {
		name  string
		frame []byte
		ok    bool
		data  []byte
		meta  Meta
	}{
		{"short", make([]byte, 13), false, nil, Meta{}},
		{"ipv4 to host", eth(dev[:], 0x08, 0x00, 0x45), true, eth(dev[:], 0x08, 0x00, 0x45),
			Meta{Protocol: 0x0800, PktType: 0, HAType: 1, NetOffset: 14}},
		{"arp broadcast", eth(bcast, 0x08, 0x06), true, eth(bcast, 0x08, 0x06),
			Meta{Protocol: 0x0806, PktType: 1, HAType: 1, NetOffset: 14}},
		{"llc multicast", eth([]byte{1, 0x80, 0xc2, 0, 0, 0}, 0x00, 0x26, 0x42, 0x42, 0x03), true,
			eth([]byte{1, 0x80, 0xc2, 0, 0, 0}, 0x00, 0x26, 0x42, 0x42, 0x03),
			Meta{Protocol: 0x0004, PktType: 2, HAType: 1, NetOffset: 14}},
		{"raw 802.3", eth(dev[:], 0x00, 0x26, 0xff, 0xff), true, eth(dev[:], 0x00, 0x26, 0xff, 0xff),
			Meta{Protocol: 0x0001, HAType: 1, NetOffset: 14}},
		{"other host", eth([]byte{2, 0, 0, 0, 0, 8}, 0x86, 0xdd), true, eth([]byte{2, 0, 0, 0, 0, 8}, 0x86, 0xdd),
			Meta{Protocol: 0x86dd, PktType: 3, HAType: 1, NetOffset: 14}},
		{"802.1q untagged", eth(dev[:], 0x81, 0x00, 0x20, 0x05, 0x08, 0x06, 0xaa, 0xbb), true, eth(dev[:], 0x08, 0x06, 0xaa, 0xbb),
			Meta{Protocol: 0x0806, HAType: 1, NetOffset: 14, VLANPresent: true, VLANTCI: 0x2005, VLANTPID: 0x8100}},
		{"qinq keeps the inner tag", eth(dev[:], 0x88, 0xa8, 0, 7, 0x81, 0x00, 0, 5, 0x08, 0x00), true,
			eth(dev[:], 0x81, 0x00, 0, 5, 0x08, 0x00),
			Meta{Protocol: 0x8100, HAType: 1, NetOffset: 14, VLANPresent: true, VLANTCI: 7, VLANTPID: 0x88a8}},
		{"tag too short", eth(dev[:], 0x81, 0x00, 0, 5, 0x08), false, nil, Meta{}},
	}
	for _, tt := range tests {
		data, meta, ok := Ingress(tt.frame, dev)
		if ok != tt.ok || string(data) != string(tt.data) || meta != tt.meta {
			t.Errorf("%s: Ingress() = %x, %+v, %v, want %x, %+v, %v", tt.name, data, meta, ok, tt.data, tt.meta, tt.ok)
		}
	}
}
