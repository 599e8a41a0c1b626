package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Mode is how much a NIC's filter enforces.
type Mode string

// Modes. The zero Mode means ModeL2.
const (
	// ModeL2 enforces the link layer on every frame (source MAC, ethertypes,
	// ARP, no DHCP servers, no router advertisements or redirects, ND
	// link-layer options) and, for each address family in which the NIC
	// has bound addresses, the source addresses.
	ModeL2 Mode = "l2"

	// ModeStrict is ModeL2 with every address family enforced: in a family
	// without bound addresses the NIC may only bootstrap (DHCPv4 client
	// messages from 0.0.0.0 and ARP probes; IPv6 from link-local sources,
	// and router solicitations, DAD and MLD reports from ::).
	ModeStrict Mode = "strict"

	// ModeOff installs no filter.
	ModeOff Mode = "off"
)

// MaxAddrs is the most bound addresses a Policy may hold, IPv4 and IPv6
// together. At MaxAddrs IPv6 addresses the program stays far below the
// kernel's BPF_MAXINSNS (see the package documentation for the sizes).
const MaxAddrs = 32

var (
	// ErrInvalid is wrapped by the errors of ParseMode, Policy.Validate
	// and Program for arguments that cannot make a filter.
	ErrInvalid = errors.New("invalid guard policy")

	// ErrNotGuard is wrapped by Decode's error when a program carries no
	// guard record, or a corrupt one.
	ErrNotGuard = errors.New("not a guard program")

	// ErrMismatch is wrapped by Decode's error when a program's record
	// decodes but its code is not what this package generates for that
	// record: it was made by another version, or modified. Decode then
	// also returns the recorded Policy, so the caller can reinstall it.
	ErrMismatch = errors.New("guard program does not match its record")
)

// Policy is what a NIC's filter enforces. The zero value (ModeL2, no MAC) is
// not valid: MAC is required.
type Policy struct {
	// Mode is the enforcement mode; empty means ModeL2.
	Mode Mode

	// MAC is the guest's MAC: a unicast, non-zero address. Frames from any
	// other source MAC are dropped.
	MAC [6]byte

	// Addrs are the addresses bound to the NIC. The address of each
	// prefix is what the filter enforces; its length is kept as metadata
	// (use /32 or /128 when it is unknown). Order does not matter: the
	// program holds them sorted, IPv4 first, and Decode returns them so.
	// At most MaxAddrs; each unicast (not unspecified, loopback,
	// multicast, the limited broadcast or its prefix's directed
	// broadcast; a Prefix holds no zone), and not an IPv4-mapped IPv6 address
	// (bind the IPv4 address itself). No address may appear twice.
	Addrs []netip.Prefix

	// Gateway is the NIC's IPv4 gateway, if known: recorded in the program
	// for readers, not enforced. It must not be one of Addrs, since binding
	// the gateway's address would let the guest impersonate it. The zero
	// Addr means none.
	Gateway netip.Addr
}

// ParseMode parses a mode name: "l2", "strict" or "off"; "" means ModeL2.
// The error wraps ErrInvalid.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeL2, nil
	case ModeL2, ModeStrict, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("guard: mode %q: want l2, strict or off: %w", s, ErrInvalid)
}

// Validate reports whether p can make a filter; the error wraps ErrInvalid
// and names the offending field.
func (p *Policy) Validate() error {
	if _, err := ParseMode(string(p.Mode)); err != nil {
		return err
	}
	if p.MAC == [6]byte{} {
		return fmt.Errorf("guard: guest MAC is zero: %w", ErrInvalid)
	}
	if p.MAC[0]&1 != 0 {
		return fmt.Errorf("guard: guest MAC %s is multicast: %w", macString(p.MAC), ErrInvalid)
	}
	if len(p.Addrs) > MaxAddrs {
		return fmt.Errorf("guard: %d bound addresses, at most %d: %w", len(p.Addrs), MaxAddrs, ErrInvalid)
	}
	seen := make(map[netip.Addr]bool, len(p.Addrs))
	for _, pfx := range p.Addrs {
		if err := checkAddr(pfx); err != nil {
			return err
		}
		if seen[pfx.Addr()] {
			return fmt.Errorf("guard: address %v bound twice: %w", pfx.Addr(), ErrInvalid)
		}
		seen[pfx.Addr()] = true
	}
	if g := p.Gateway; g.IsValid() {
		if !g.Is4() || g.IsUnspecified() || g.IsLoopback() || g.IsMulticast() || g == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return fmt.Errorf("guard: gateway %v: want a unicast IPv4 address: %w", g, ErrInvalid)
		}
		if seen[g] {
			return fmt.Errorf("guard: gateway %v is also bound to the NIC: %w", g, ErrInvalid)
		}
	}
	return nil
}

func checkAddr(pfx netip.Prefix) error {
	a := pfx.Addr()
	reason := ""
	switch {
	case !pfx.IsValid():
		reason = "not a valid prefix"
	case a.Is4In6():
		reason = "IPv4-mapped IPv6 address; bind the IPv4 address"
	case a.IsUnspecified():
		reason = "unspecified"
	case a.IsLoopback():
		reason = "loopback"
	case a.IsMulticast():
		reason = "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		reason = "the limited broadcast address"
	case a.Is4() && pfx.Bits() <= 30 && a == lastAddr(pfx):
		reason = "the broadcast address of its prefix"
	}
	if reason != "" {
		return fmt.Errorf("guard: address %v: %s: %w", pfx, reason, ErrInvalid)
	}
	return nil
}

// lastAddr returns the highest address of an IPv4 prefix.
func lastAddr(pfx netip.Prefix) netip.Addr {
	b := pfx.Addr().As4()
	host := uint32(1)<<(32-pfx.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// canonical returns a copy of p with the mode spelled out and the addresses
// sorted, IPv4 first (nil when there are none): what Decode returns.
func (p *Policy) canonical() *Policy {
	c := *p
	if c.Mode == "" {
		c.Mode = ModeL2
	}
	c.Addrs = nil
	if len(p.Addrs) > 0 {
		c.Addrs = slices.Clone(p.Addrs)
	}
	slices.SortFunc(c.Addrs, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	return &c
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
