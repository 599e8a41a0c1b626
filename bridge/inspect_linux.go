package bridge

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// Verify checks that VM vmID's TAPs are intact: every NIC its tags record
// exists, carries this instance's tag, is up, is a port of this bridge with
// learning off, has the bridge's MTU and its derived host-side MAC, and has
// the flags the Bridge's hypervisor profile opens it with (TAP, no PI,
// vnet_hdr, multi-queue iff the profile says so for its queue count).
//
// It returns nil when all hold; an error wrapping network.ErrNotFound when
// the VM has no TAP; otherwise an error wrapping ErrMismatch that lists
// every difference, one per line, a flag mismatch (what makes a VMM's open
// fail) first for each TAP.
func (b *Bridge) Verify(ctx context.Context, vmID string) error {
	return b.VerifyProfile(ctx, vmID, b.conf.Hypervisor)
}

// VerifyProfile is Verify against the VMM profile hypervisor instead of the
// Bridge's (config.CloudHypervisor, Firecracker or QEMU), or, when it is
// empty, against the profile each TAP's tag records (the Bridge's for
// tags that record none): what a tool that did not make the TAPs checks.
// An unknown profile fails with an error wrapping ErrInvalidArgument.
func (b *Bridge) VerifyProfile(ctx context.Context, vmID, hypervisor string) error {
	if err := owner.ValidateVMID(vmID); err != nil {
		return fmt.Errorf("verify: %w: %w", ErrInvalidArgument, err)
	}
	if hypervisor != "" {
		if err := (&config.Config{Hypervisor: hypervisor}).Validate(); err != nil {
			return fmt.Errorf("verify vm %s: %w: %w", vmID, ErrInvalidArgument, err)
		}
	}
	br, err := b.bridgeLink(ctx)
	if err != nil {
		return fmt.Errorf("verify vm %s: %w", vmID, err)
	}
	f, err := b.lookupVMs(ctx, []string{vmID}, 0, owner.MaxNICs)
	if err != nil {
		return fmt.Errorf("verify vm %s: %w", vmID, err)
	}
	nics := f[vmID]
	if len(nics) == 0 {
		return fmt.Errorf("verify vm %s: %w", vmID, network.ErrNotFound)
	}
	diffs := verifyDiffs(nics, br, b.bridgeDev, hypervisor, b.conf.Hypervisor, b.group)
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("verify vm %s: %w:\n%s", vmID, ErrMismatch, strings.Join(diffs, "\n"))
}

// Inspect returns VM vmID's network as the kernel records it: its NICs
// (from the owner tags) and their TAPs' state, in NIC order. It fails with
// an error wrapping network.ErrNotFound when the VM has no TAP of this
// instance.
func (b *Bridge) Inspect(ctx context.Context, vmID string) (*types.Network, error) {
	if err := owner.ValidateVMID(vmID); err != nil {
		return nil, fmt.Errorf("inspect: %w: %w", ErrInvalidArgument, err)
	}
	f, err := b.lookupVMs(ctx, []string{vmID}, 0, owner.MaxNICs)
	if err != nil {
		return nil, fmt.Errorf("inspect vm %s: %w", vmID, err)
	}
	if len(f[vmID]) == 0 {
		return nil, fmt.Errorf("inspect vm %s: %w", vmID, network.ErrNotFound)
	}
	inv := b.inventory(ctx)
	n := &types.Network{VMID: vmID, BridgeDev: b.bridgeDev}
	for i := range f[vmID] {
		inv.addNIC(n, &f[vmID][i].link, &f[vmID][i].tag)
	}
	return n, nil
}

// List returns the network of every VM that has TAPs of this instance in
// the namespace, on this bridge or not, sorted by VM ID. It reads one
// kernel-filtered dump of TUN/TAP devices.
func (b *Bridge) List(ctx context.Context) ([]*types.Network, error) {
	inv := b.inventory(ctx)
	byVM := make(map[string]*types.Network)
	var tag owner.Tag
	err := b.conn.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun"}, func(l *rtnl.Link) error {
		if !b.ours(l, &tag) {
			return nil
		}
		n := byVM[tag.VMID]
		if n == nil {
			n = &types.Network{VMID: tag.VMID, BridgeDev: b.bridgeDev}
			byVM[n.VMID] = n
		}
		inv.addNIC(n, l, &tag)
		return nil
	}, func() { clear(byVM) })
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	out := slices.Collect(maps.Values(byVM))
	sortNetworks(out)
	return out, nil
}

// inventory returns what turns links into records: the bridge's ifindex
// maps to its name (other masters are shown by ifindex).
func (b *Bridge) inventory(ctx context.Context) *inventory {
	inv := &inventory{ownership: b.ownership, bridgeDev: b.bridgeDev, netnsPath: b.conf.NetnsPath, masters: map[uint32]string{}}
	if br, err := getLink(ctx, b.conn, b.bridgeDev); err == nil {
		inv.masters[br.Index] = br.Name
	}
	return inv
}
