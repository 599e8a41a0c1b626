package guard_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/tapbridge/tapbridge/guard"
)

// benchPolicy returns a policy with n bound addresses, alternating IPv4 and
// IPv6.
func benchPolicy(n int) *guard.Policy {
	p := &guard.Policy{MAC: guestMAC, Gateway: gateway4}
	for i := range n {
		if i%2 == 0 {
			p.Addrs = append(p.Addrs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 24))
		} else {
			p.Addrs = append(p.Addrs, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}), 64))
		}
	}
	return p
}

func BenchmarkProgram(b *testing.B) {
	for _, n := range []int{0, 1, 8, guard.MaxAddrs} {
		b.Run(fmt.Sprintf("addrs=%d", n), func(b *testing.B) {
			p := benchPolicy(n)
			b.ReportAllocs()
			var size int
			for b.Loop() {
				prog, err := guard.Program(p)
				if err != nil {
					b.Fatal(err)
				}
				size = len(prog)
			}
			b.ReportMetric(float64(size), "insns")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, n := range []int{0, guard.MaxAddrs} {
		b.Run(fmt.Sprintf("addrs=%d", n), func(b *testing.B) {
			prog, err := guard.Program(benchPolicy(n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := guard.Decode(prog); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
