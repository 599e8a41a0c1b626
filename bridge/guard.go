package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// ErrGuardOff is wrapped by Bind's error for a NIC whose guard mode is off:
// it has no filter to bind addresses in.
var ErrGuardOff = errors.New("the NIC's guard is off")

// portFor is the bridge-port setting Config gives a NIC in mode m: learning
// off always (the FDB entry is static); under a guard the port is locked
// to the pinned guest MAC and floods no unknown unicast to the guest (every
// guest MAC has its static entry, so known unicast is unaffected); with
// the guard off it is as before the guard existed (locked only if the
// instance asks). Broadcast and multicast flooding are on: a doomed or
// staged NIC is the one that has them off.
func portFor(m guard.Mode, isolated, locked bool) rtnl.BridgePort {
	on, off := true, false
	guarded := m != guard.ModeOff
	lock := locked || guarded
	flood := !guarded
	return rtnl.BridgePort{
		Learning: &off, Isolated: &isolated, Locked: &lock,
		UnicastFlood: &flood, McastFlood: &on, BcastFlood: &on,
	}
}

// policy is what NIC n's filter enforces in mode m.
func (n *nicPlan) policy(m guard.Mode) *guard.Policy {
	return &guard.Policy{Mode: m, MAC: n.mac, Addrs: n.bound, Gateway: n.gateway}
}

// sockFilters converts a guard program to rtnl's encoding (the same
// struct sock_filter layout).
func sockFilters(prog []guard.Instruction) []rtnl.SockFilter {
	out := make([]rtnl.SockFilter, len(prog))
	for i, in := range prog {
		out[i] = rtnl.SockFilter{Op: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return out
}

// instructions converts an installed program back to guard's type.
func instructions(prog []rtnl.SockFilter) []guard.Instruction {
	out := make([]guard.Instruction, len(prog))
	for i, in := range prog {
		out[i] = guard.Instruction{Op: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return out
}

// installed reads an installed program: the policy it records, or nil
// when the TAP has no filter (the guard is off) or one that is not the
// guard's. A program another version of the guard made still gives its
// recorded policy.
func installed(prog []rtnl.SockFilter) *guard.Policy {
	if len(prog) == 0 {
		return nil
	}
	p, err := guard.Decode(instructions(prog))
	if err != nil && !errors.Is(err, guard.ErrMismatch) {
		return nil
	}
	return p
}

// recordBindings turns a record's guest IP configuration (cocoon's
// network field) into bindings: the address with its prefix length (the
// full length when the record has none), and the gateway. A nil or empty
// configuration binds nothing.
func recordBindings(nw *types.Network) ([]netip.Prefix, netip.Addr, error) {
	var gw netip.Addr
	if nw == nil || nw.IP == "" && nw.Gateway == "" {
		return nil, gw, nil
	}
	ip, err := netip.ParseAddr(nw.IP)
	if err != nil {
		return nil, gw, fmt.Errorf("network ip %q: %w", nw.IP, err)
	}
	bits := nw.Prefix
	if bits == 0 {
		bits = ip.BitLen()
	}
	if bits < 1 || bits > ip.BitLen() {
		return nil, gw, fmt.Errorf("network prefix %d for %s: want 1..%d", nw.Prefix, ip, ip.BitLen())
	}
	if nw.Gateway != "" {
		if gw, err = netip.ParseAddr(nw.Gateway); err != nil {
			return nil, gw, fmt.Errorf("network gateway %q: %w", nw.Gateway, err)
		}
	}
	return []netip.Prefix{netip.PrefixFrom(ip, bits)}, gw, nil
}

// networkOf is a NIC's guest IP configuration for its record: its first
// bound IPv4 address (else its first address) with the prefix length and
// the gateway, or nil when nothing is bound.
func networkOf(p *guard.Policy) *types.Network {
	if p == nil || len(p.Addrs) == 0 {
		return nil
	}
	a := p.Addrs[0] // Decode sorts IPv4 first
	nw := &types.Network{IP: a.Addr().String()}
	if a.Bits() != a.Addr().BitLen() {
		nw.Prefix = a.Bits()
	}
	if p.Gateway.IsValid() {
		nw.Gateway = p.Gateway.String()
	}
	return nw
}

// boundStrings lists a policy's bound addresses for LinkState.Bound.
func boundStrings(p *guard.Policy) []string {
	if p == nil {
		return []string{}
	}
	out := make([]string, len(p.Addrs))
	for i, a := range p.Addrs {
		out[i] = a.String()
	}
	return out
}

// rebind returns the addresses of cur with add bound and del unbound, in
// cur's order, add last: what a lease event makes of a NIC's bindings.
func rebind(cur []netip.Prefix, add, del netip.Addr) []netip.Prefix {
	out := slices.DeleteFunc(slices.Clone(cur), func(p netip.Prefix) bool {
		return p.Addr() == del || p.Addr() == add
	})
	if add.IsValid() {
		out = append(out, netip.PrefixFrom(add, add.BitLen()))
		// Keep a length the NIC knew for this address.
		for _, p := range cur {
			if p.Addr() == add {
				out[len(out)-1] = p
			}
		}
	}
	return out
}
