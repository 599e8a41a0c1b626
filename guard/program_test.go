package guard_test

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/cbpf"
)

// maxPolicy returns a strict policy with MaxAddrs addresses, n4 of them
// IPv4, and a gateway.
func maxPolicy(n4 int) *guard.Policy {
	p := &guard.Policy{Mode: guard.ModeStrict, MAC: guestMAC, Gateway: gateway4}
	for i := range guard.MaxAddrs {
		if i < n4 {
			p.Addrs = append(p.Addrs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 24))
		} else {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i + 1)})
			p.Addrs = append(p.Addrs, netip.PrefixFrom(a, 64))
		}
	}
	return p
}

func TestProgramSize(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    *guard.Policy
	}{
		{"l2, no addresses", &guard.Policy{MAC: guestMAC}},
		{"strict, no addresses", &guard.Policy{Mode: guard.ModeStrict, MAC: guestMAC}},
		{"MaxAddrs IPv4", maxPolicy(guard.MaxAddrs)},
		{"MaxAddrs IPv6", maxPolicy(0)},
		{"MaxAddrs half and half", maxPolicy(guard.MaxAddrs / 2)},
	} {
		prog := mustProgram(t, tt.p)
		if len(prog) > cbpf.MaxInsns {
			t.Errorf("%s: Program() is %d instructions, want at most %d", tt.name, len(prog), cbpf.MaxInsns)
		}
		t.Logf("%s: %d instructions", tt.name, len(prog))
	}
}

func TestProgramOff(t *testing.T) {
	prog, err := guard.Program(&guard.Policy{Mode: guard.ModeOff, MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.5/24")}})
	if prog != nil || err != nil {
		t.Errorf("Program(off) = %d instructions, %v, want none, nil", len(prog), err)
	}
	p, err := guard.Decode(nil)
	if err != nil || !reflect.DeepEqual(p, &guard.Policy{Mode: guard.ModeOff}) {
		t.Errorf("Decode(nil) = %+v, %v, want ModeOff, nil", p, err)
	}
}

// canonical is what Decode returns for p: the mode spelled out, addresses
// sorted (IPv4 first), nil when there are none.
func canonical(p guard.Policy) *guard.Policy {
	if p.Mode == "" {
		p.Mode = guard.ModeL2
	}
	p.Addrs = slices.Clone(p.Addrs)
	if len(p.Addrs) == 0 {
		p.Addrs = nil
	}
	slices.SortFunc(p.Addrs, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	return &p
}

func TestDeterministicAndRoundTrip(t *testing.T) {
	ps := []*guard.Policy{maxPolicy(0), maxPolicy(7), {MAC: guestMAC, Addrs: []netip.Prefix{}}}
	for _, pc := range policies() {
		ps = append(ps, &pc.p)
	}
	for _, p := range ps {
		prog := mustProgram(t, p)
		// The same policy with its addresses in another order.
		q := *p
		q.Addrs = slices.Clone(p.Addrs)
		slices.Reverse(q.Addrs)
		if again := mustProgram(t, &q); !slices.Equal(prog, again) {
			t.Errorf("Program(%+v) differs when the addresses are reversed", p)
		}
		got, err := guard.Decode(prog)
		if want := canonical(*p); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(Program(%+v)) = %+v, %v, want %+v, nil", p, got, err, want)
		}
	}
	// Program does not change its argument.
	p := maxPolicy(3)
	before := slices.Clone(p.Addrs)
	mustProgram(t, p)
	if !slices.Equal(p.Addrs, before) {
		t.Errorf("Program() reordered the caller's addresses")
	}
}

func TestDecodeErrors(t *testing.T) {
	p := &guard.Policy{Mode: guard.ModeStrict, MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.5/24"), pfx("2001:db8::5/64")}, Gateway: gateway4}
	prog := mustProgram(t, p)
	n := len(prog)
	mod := func(f func(q []guard.Instruction) []guard.Instruction) []guard.Instruction {
		return f(slices.Clone(prog))
	}
	// Find the record's start: the magic word.
	start := n - int(prog[n-2].K)
	tests := []struct {
		name   string
		prog   []guard.Instruction
		want   error
		policy bool // the recorded Policy comes back too
	}{
		{"one instruction", []guard.Instruction{{Op: cbpf.RET | cbpf.K, K: guard.Pass}}, guard.ErrNotGuard, false},
		{"foreign program", make([]guard.Instruction, 64), guard.ErrNotGuard, false},
		{"last not ret #2", mod(func(q []guard.Instruction) []guard.Instruction { q[n-1].K = guard.Pass; return q }), guard.ErrNotGuard, false},
		{"record length too big", mod(func(q []guard.Instruction) []guard.Instruction { q[n-2].K = uint32(n + 1); return q }), guard.ErrNotGuard, false},
		{"record length too small", mod(func(q []guard.Instruction) []guard.Instruction { q[n-2].K = 3; return q }), guard.ErrNotGuard, false},
		{"record length off by one", mod(func(q []guard.Instruction) []guard.Instruction { q[n-2].K++; return q }), guard.ErrNotGuard, false},
		{"bad magic", mod(func(q []guard.Instruction) []guard.Instruction { q[start].K ^= 1; return q }), guard.ErrNotGuard, false},
		{"jt set in the record", mod(func(q []guard.Instruction) []guard.Instruction { q[start+2].Jt = 1; return q }), guard.ErrNotGuard, false},
		{"unknown format", mod(func(q []guard.Instruction) []guard.Instruction { q[start+1].K += 1 << 24; return q }), guard.ErrNotGuard, false},
		{"unknown mode", mod(func(q []guard.Instruction) []guard.Instruction { q[start+1].K |= 9 << 8; return q }), guard.ErrNotGuard, false},
		{"unknown flag", mod(func(q []guard.Instruction) []guard.Instruction { q[start+1].K |= 2; return q }), guard.ErrNotGuard, false},
		{"multicast MAC", mod(func(q []guard.Instruction) []guard.Instruction { q[start+2].K |= 1 << 24; return q }), guard.ErrNotGuard, false},
		{"too many addresses", mod(func(q []guard.Instruction) []guard.Instruction { q[start+4].K = 99; return q }), guard.ErrNotGuard, false},
		{"count too high", mod(func(q []guard.Instruction) []guard.Instruction { q[start+4].K = 3; return q }), guard.ErrNotGuard, false},
		{"count too low", mod(func(q []guard.Instruction) []guard.Instruction { q[start+4].K = 1; return q }), guard.ErrNotGuard, false},
		{"bad prefix length", mod(func(q []guard.Instruction) []guard.Instruction { q[start+5].K = 4<<8 | 33; return q }), guard.ErrNotGuard, false},
		{"bad address length", mod(func(q []guard.Instruction) []guard.Instruction { q[start+5].K = 8<<8 | 24; return q }), guard.ErrNotGuard, false},
		{"bound multicast", mod(func(q []guard.Instruction) []guard.Instruction { q[start+6].K = 0xe0000001; return q }), guard.ErrNotGuard, false},
		{"addresses out of order", func() []guard.Instruction {
			q := mustProgram(t, &guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.5/32"), pfx("10.0.0.7/32")}})
			s := len(q) - int(q[len(q)-2].K)
			q[s+6], q[s+8] = q[s+8], q[s+6]
			return q
		}(), guard.ErrNotGuard, false},
		{"code modified", mod(func(q []guard.Instruction) []guard.Instruction { q[3].K++; return q }), guard.ErrMismatch, true},
		{"code cut", mod(func(q []guard.Instruction) []guard.Instruction { return append(q[:10], q[start:]...) }), guard.ErrMismatch, true},
		{"other code version", mod(func(q []guard.Instruction) []guard.Instruction { q[start+1].K += 1 << 16; return q }), guard.ErrMismatch, true},
	}
	for _, tt := range tests {
		got, err := guard.Decode(tt.prog)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Decode() error = %v, want one wrapping %v", tt.name, err, tt.want)
		}
		if tt.policy && !reflect.DeepEqual(got, canonical(*p)) {
			t.Errorf("%s: Decode() = %+v, want the recorded %+v", tt.name, got, canonical(*p))
		}
		if !tt.policy && got != nil {
			t.Errorf("%s: Decode() = %+v, want nil", tt.name, got)
		}
	}
}

// TestRecordUnreachable runs every generated program on a spread of frames
// and checks no path reaches the record: a frame's path must end at a
// return before it. It logs the longest path, the cost per frame.
func TestRecordUnreachable(t *testing.T) {
	for _, pc := range policies() {
		prog := toCBPF(mustProgram(t, &pc.p))
		recordStart := len(prog) - int(prog[len(prog)-2].K)
		longest := 0
		for _, c := range cases() {
			data, meta, ok := cbpf.Ingress(c.frame, tapMAC)
			if !ok {
				continue
			}
			_, path, err := cbpf.Trace(prog, data, &meta)
			if err != nil || path[len(path)-1] >= recordStart {
				t.Errorf("%s: %s: path ends at %d, record starts at %d (%v)", pc.name, c.name, path[len(path)-1], recordStart, err)
			}
			longest = max(longest, len(path))
		}
		t.Logf("%s: %d instructions, the longest path of the table runs %d", pc.name, len(prog), longest)
	}
}
