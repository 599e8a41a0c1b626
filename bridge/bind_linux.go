package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
)

// Bind binds addrs to NIC nic of VM vmID: from then on its guard lets the
// guest send only from those addresses (and the link-local and
// bootstrapping ones; see package guard). It replaces the NIC's set; an
// empty addrs unbinds every address. Each prefix's address is what is
// enforced, its length is kept as metadata (/32 or /128 when unknown).
//
// The filter is replaced in place, so the NIC is never unfiltered while it
// changes, and the bindings live in the filter on the TAP: a new process,
// and the CLI, read them back. Bind is idempotent, and touches only this
// instance's TAPs. It fails with an error wrapping network.ErrNotFound for
// a VM or NIC without a TAP, ErrGuardOff for a NIC whose guard is off,
// and ErrInvalidArgument (and guard.ErrInvalid) for a bad VM ID or NIC
// index, an address that is not unicast, the gateway, a duplicate, or
// more than guard.MaxAddrs addresses.
func (b *Bridge) Bind(ctx context.Context, vmID string, nic int, addrs []netip.Prefix) error {
	if err := owner.ValidateVMID(vmID); err != nil {
		return fmt.Errorf("bind: %w: %w", ErrInvalidArgument, err)
	}
	if nic < 0 || nic >= owner.MaxNICs {
		return fmt.Errorf("bind vm %s: %w: NIC %d, want 0..%d", vmID, ErrInvalidArgument, nic, owner.MaxNICs-1)
	}
	unlock := b.vms.lock(vmID)
	defer unlock()
	f, err := b.lookupVMs(ctx, []string{vmID}, nic, nic+1)
	if err != nil {
		return fmt.Errorf("bind vm %s nic %d: %w", vmID, nic, err)
	}
	if len(f[vmID]) == 0 {
		return fmt.Errorf("bind vm %s nic %d: %w", vmID, nic, network.ErrNotFound)
	}
	l := &f[vmID][0].link
	return b.rebind(ctx, l, fmt.Sprintf("bind vm %s nic %d", vmID, nic), func(*guard.Policy) []netip.Prefix { return addrs })
}

// Lease applies a DHCP lease event to the NIC whose guest MAC is mac, among
// this instance's TAPs: add binds ip to it (keeping its other addresses),
// !add unbinds ip. It reports whether such a NIC exists: a MAC that is not
// one of the instance's guests is no error (a DHCP server serves other
// clients too), and neither is a NIC whose guard is off. Errors are as
// Bind's.
func (b *Bridge) Lease(ctx context.Context, mac net.HardwareAddr, ip netip.Addr, add bool) (found bool, err error) {
	if len(mac) != 6 || !ip.IsValid() {
		return false, fmt.Errorf("lease %s %s: %w: want a 6-byte MAC and an IP address", mac, ip, ErrInvalidArgument)
	}
	ip = ip.Unmap()
	var hit *rtnl.Link
	var tag owner.Tag
	err = b.conn.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun", Brief: true}, func(l *rtnl.Link) error {
		if hit == nil && b.ours(l, &tag) && tag.MAC == [6]byte(mac) && l.Group != b.group {
			c := *l
			hit = &c
		}
		return nil
	}, func() { hit = nil })
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", mac, err)
	}
	if hit == nil {
		return false, nil
	}
	unlock := b.vms.lock(tag.VMID)
	defer unlock()
	var addIP, delIP netip.Addr
	if add {
		addIP = ip
	} else {
		delIP = ip
	}
	err = b.rebind(ctx, hit, fmt.Sprintf("lease %s %s", mac, ip), func(p *guard.Policy) []netip.Prefix {
		return rebind(p.Addrs, addIP, delIP)
	})
	if errors.Is(err, ErrGuardOff) {
		return true, nil
	}
	return true, err
}

// rebind replaces the bindings of TAP l's filter with what addrs makes of
// the installed policy, in place.
func (b *Bridge) rebind(ctx context.Context, l *rtnl.Link, what string, addrs func(*guard.Policy) []netip.Prefix) error {
	var batch rtnl.Batch
	var prog []rtnl.SockFilter
	batch.GetIngressBPF(l.Index, &prog)
	if res, _ := b.conn.Exec(ctx, &batch); res[0] != nil {
		return fmt.Errorf("%s: read its filter: %w", what, res[0])
	}
	cur := installed(prog)
	if cur == nil || cur.Mode == guard.ModeOff {
		return fmt.Errorf("%s: %w: TAP %s has no guard filter", what, ErrGuardOff, l.Name)
	}
	next := *cur
	next.Addrs = addrs(cur)
	np, err := guard.Program(&next)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", what, ErrInvalidArgument, err)
	}
	batch.Reset()
	batch.SetIngressBPF(l.Index, sockFilters(np))
	if res, _ := b.conn.Exec(ctx, &batch); res[0] != nil {
		return fmt.Errorf("%s: %w", what, res[0])
	}
	return nil
}
