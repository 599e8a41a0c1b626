package guard_test

import (
	"fmt"
	"net/netip"

	"github.com/tapbridge/tapbridge/guard"
)

// Build the filter for a NIC with one bound IPv4 address, and read its
// policy back from the instructions, as a process that dumped the filter
// from the kernel would.
func Example() {
	p := &guard.Policy{
		MAC:     [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x05},
		Addrs:   []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")},
		Gateway: netip.MustParseAddr("10.0.0.1"),
	}
	prog, err := guard.Program(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	back, err := guard.Decode(prog)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back.Mode, back.Addrs, back.Gateway, len(prog) <= 4096)
	// Output: l2 [10.0.0.5/24] 10.0.0.1 true
}
