package guard_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/cbpf"
	f "github.com/tapbridge/tapbridge/internal/frames"
)

// fuzzPolicy builds a Policy from fuzz input: mode 0 l2, 1 strict, 2 off,
// 3 "" and anything else an invalid name; addrs is a list of (flags byte:
// bit 7 IPv6, low 7 bits the prefix length; then 4 or 16 bytes); gw a
// gateway (0 for none).
func fuzzPolicy(mode uint8, mac []byte, addrs []byte, gw uint32) *guard.Policy {
	p := &guard.Policy{}
	switch mode % 8 {
	case 0:
		p.Mode = guard.ModeL2
	case 1:
		p.Mode = guard.ModeStrict
	case 2:
		p.Mode = guard.ModeOff
	case 3:
		p.Mode = ""
	default:
		p.Mode = "bogus"
	}
	copy(p.MAC[:], mac)
	for len(addrs) > 0 {
		flags := addrs[0]
		addrs = addrs[1:]
		n := 4
		if flags&0x80 != 0 {
			n = 16
		}
		if len(addrs) < n {
			break
		}
		a, _ := netip.AddrFromSlice(addrs[:n])
		addrs = addrs[n:]
		p.Addrs = append(p.Addrs, netip.PrefixFrom(a, int(flags&0x7f)))
	}
	if gw != 0 {
		p.Gateway = netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, gw)))
	}
	return p
}

func FuzzProgram(ff *testing.F) {
	ff.Add(uint8(0), guestMAC[:], []byte{}, uint32(0))
	ff.Add(uint8(1), guestMAC[:], append([]byte{24}, guest4.AsSlice()...), binary.BigEndian.Uint32(gateway4.AsSlice()))
	ff.Add(uint8(0), guestMAC[:], append(append([]byte{0x80 | 64}, guest6.AsSlice()...), append([]byte{32}, guest4.AsSlice()...)...), uint32(0))
	ff.Add(uint8(2), guestMAC[:], []byte{}, uint32(0))
	ff.Add(uint8(3), []byte{1, 2, 3, 4, 5, 6}, []byte{32, 10, 0, 0, 255}, uint32(1))
	ff.Fuzz(func(t *testing.T, mode uint8, mac []byte, addrs []byte, gw uint32) {
		p := fuzzPolicy(mode, mac, addrs, gw)
		prog, err := guard.Program(p)
		if verr := p.Validate(); verr != nil {
			if !errors.Is(err, guard.ErrInvalid) || prog != nil {
				t.Fatalf("Program(%+v) = %d instructions, %v; Validate() = %v", p, len(prog), err, verr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Program(%+v) error: %v", p, err)
		}
		if p.Mode == guard.ModeOff {
			if prog != nil {
				t.Fatalf("Program(off) = %d instructions", len(prog))
			}
			return
		}
		if err := cbpf.Check(toCBPF(prog)); err != nil || len(prog) > cbpf.MaxInsns {
			t.Fatalf("Check(Program(%+v)) = %v, %d instructions", p, err, len(prog))
		}
		if got, err := guard.Decode(prog); err != nil || !reflect.DeepEqual(got, canonical(*p)) {
			t.Fatalf("Decode(Program(%+v)) = %+v, %v", p, got, err)
		}
		if again, _ := guard.Program(p); !slices.Equal(again, prog) {
			t.Fatalf("Program(%+v) is not deterministic", p)
		}
		// The guest's own legitimate frames pass; the same frames from
		// another source MAC are dropped.
		m := p.MAC
		ll := f.LinkLocal(m)
		legit := [][]byte{
			f.ARPProbe(m, guest4),
			f.DHCPv4Client(m, f.DHCPDiscover, 1),
			icmp6As(m, ll, routerLL),
			f.MLDv2ReportFrame(m, unspec6, f.SolicitedNode(ll)),
			f.DHCPv6Client(m, ll, f.DHCPv6Solicit, 1),
		}
		for _, pfx := range p.Addrs {
			if a := pfx.Addr(); a.Is4() {
				legit = append(legit, f.ARPRequestFrame(m, a, gateway4), f.IPv4Frame(gwMAC, m, ping4(a, gateway4, nil)))
			} else {
				legit = append(legit, icmp6As(m, a, other6),
					f.ICMPv6Frame(f.IPv6MulticastMAC(f.AllNodes), m, f.IPv6{HopLimit: 255, Src: a, Dst: f.AllNodes}, nil, f.ICMPv6NA, 0, f.NA(f.NAOverride, a, f.TLLA(m))))
			}
		}
		for _, frame := range legit {
			if v := run(t, prog, frame, false); v != pass {
				t.Fatalf("Program(%+v) drops the guest's own %x", p, frame)
			}
			foreign := m
			foreign[5] ^= 1
			if v := run(t, prog, withSrcMAC(frame, foreign), false); v != drop {
				t.Fatalf("Program(%+v) passes %x from a foreign MAC", p, frame)
			}
		}
	})
}

func icmp6As(mac [6]byte, from, to netip.Addr) []byte {
	return f.ICMPv6Frame(gwMAC, mac, f.IPv6{Src: from, Dst: to}, nil, f.ICMPv6EchoRequest, 0, f.Echo(1, 1, nil))
}

// fuzzPrograms are the fixed programs FuzzRun runs frames through.
func fuzzPrograms(t testing.TB) [][]guard.Instruction {
	var out [][]guard.Instruction
	for _, pc := range policies() {
		if pc.name == "l2 unbound" || pc.name == "strict both" || pc.name == "strict unbound" {
			out = append(out, mustProgram(t, &pc.p))
		}
	}
	return out
}

func FuzzRun(ff *testing.F) {
	for _, c := range cases() {
		ff.Add(c.frame, false)
	}
	ff.Add(f.ARPProbe(guestMAC, guest4), true)
	progs := fuzzPrograms(ff)
	ff.Fuzz(func(t *testing.T, frame []byte, vlan bool) {
		for _, prog := range progs {
			p := toCBPF(prog)
			ret, err := cbpf.Run(p, frame, &cbpf.Meta{VLANPresent: vlan})
			if err != nil || ret != guard.Pass && ret != guard.Drop {
				t.Fatalf("Run(%x) = %#x, %v, want Pass or Drop", frame, ret, err)
			}
			if ret == guard.Pass && (vlan || len(frame) < 12 || [6]byte(frame[6:12]) != guestMAC) {
				t.Fatalf("Run(%x, vlan %v) = Pass for a frame that is tagged or not from the guest", frame, vlan)
			}
			// And through the kernel's view of a written frame.
			if data, meta, ok := cbpf.Ingress(frame, tapMAC); ok {
				ret, err := cbpf.Run(p, data, &meta)
				if err != nil || ret != guard.Pass && ret != guard.Drop || ret == guard.Pass && meta.VLANPresent {
					t.Fatalf("Run(Ingress(%x)) = %#x, %v", frame, ret, err)
				}
			}
		}
	})
}

func encodeProgram(prog []guard.Instruction) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		b = binary.LittleEndian.AppendUint16(b, in.Op)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b
}

func decodeProgram(b []byte) []guard.Instruction {
	var prog []guard.Instruction
	for ; len(b) >= 8; b = b[8:] {
		prog = append(prog, guard.Instruction{Op: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])})
	}
	return prog
}

func FuzzDecode(ff *testing.F) {
	for _, pc := range policies() {
		prog := mustProgram(ff, &pc.p)
		ff.Add(encodeProgram(prog))
		ff.Add(encodeProgram(prog[len(prog)-int(prog[len(prog)-2].K):])) // the record alone
	}
	ff.Add([]byte{})
	ff.Fuzz(func(t *testing.T, b []byte) {
		prog := decodeProgram(b)
		p, err := guard.Decode(prog)
		switch {
		case err == nil && len(prog) > 0:
			// Decode accepts exactly what Program makes.
			if again, perr := guard.Program(p); perr != nil || !slices.Equal(again, prog) {
				t.Fatalf("Decode accepted a program Program(%+v) does not make (%v)", p, perr)
			}
		case errors.Is(err, guard.ErrMismatch):
			if p != nil {
				if verr := p.Validate(); verr != nil {
					t.Fatalf("Decode() returned an invalid policy %+v: %v", p, verr)
				}
			}
		case err != nil:
			if p != nil || !errors.Is(err, guard.ErrNotGuard) {
				t.Fatalf("Decode() = %+v, %v, want nil and ErrNotGuard", p, err)
			}
		}
	})
}
