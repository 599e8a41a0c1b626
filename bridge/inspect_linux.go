package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
	"golang.org/x/sys/unix"
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
	progs, err := b.readPrograms(ctx, nics)
	if err != nil {
		return fmt.Errorf("verify vm %s: %w", vmID, err)
	}
	diffs = append(diffs, guardDiffs(nics, progs, br.Index, b.group)...)
	fdbDiffs, err := b.verifyFDB(ctx, nics, br)
	if err != nil {
		return fmt.Errorf("verify vm %s: %w", vmID, err)
	}
	diffs = append(diffs, fdbDiffs...)
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
	links := make([]*rtnl.Link, len(f[vmID]))
	for i := range f[vmID] {
		links[i] = &f[vmID][i].link
	}
	if err := b.readGuards(ctx, inv, links, false); err != nil {
		return nil, fmt.Errorf("inspect vm %s: %w", vmID, err)
	}
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
	var ours []found
	err := b.conn.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun"}, func(l *rtnl.Link) error {
		var tag owner.Tag
		if b.ours(l, &tag) {
			ours = append(ours, found{nic: tag.NIC, link: *l, tag: tag})
		}
		return nil
	}, func() { ours = ours[:0] })
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	links := make([]*rtnl.Link, len(ours))
	for i := range ours {
		links[i] = &ours[i].link
	}
	if err := b.readGuards(ctx, inv, links, true); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	byVM := make(map[string]*types.Network)
	for i := range ours {
		o := &ours[i]
		n := byVM[o.tag.VMID]
		if n == nil {
			n = &types.Network{VMID: o.tag.VMID, BridgeDev: b.bridgeDev}
			byVM[n.VMID] = n
		}
		inv.addNIC(n, &o.link, &o.tag)
	}
	out := slices.Collect(maps.Values(byVM))
	sortNetworks(out)
	return out, nil
}

// readPrograms reads the ingress program of each TAP (one batch); a TAP
// gone since the lookup has none.
func (b *Bridge) readPrograms(ctx context.Context, nics []found) ([][]rtnl.SockFilter, error) {
	var batch rtnl.Batch
	progs := make([][]rtnl.SockFilter, len(nics))
	for i := range nics {
		batch.GetIngressBPF(nics[i].link.Index, &progs[i])
	}
	res, _ := b.conn.Exec(ctx, &batch) // per-request results below
	for _, err := range res {
		if err != nil && !errors.Is(err, unix.ENODEV) {
			return nil, err
		}
	}
	return progs, nil
}

// readGuards reads the guard's filter of each link (one batch) and the
// drop counters of their clsact qdiscs: one request per link, or, with
// dump, one qdisc dump of the namespace (cheaper for many links).
func (b *Bridge) readGuards(ctx context.Context, inv *inventory, links []*rtnl.Link, dump bool) error {
	var batch rtnl.Batch
	progs := make([][]rtnl.SockFilter, len(links))
	qds := make([]rtnl.Qdisc, len(links))
	for i, l := range links {
		batch.GetIngressBPF(l.Index, &progs[i])
		if !dump {
			batch.GetClsact(l.Index, &qds[i])
		}
	}
	// Each port's entry for its guest MAC; -1 for a TAP off any bridge.
	fdbs := make([]rtnl.FDBEntry, len(links))
	fdbAt := make([]int, len(links))
	for i, l := range links {
		var tag owner.Tag
		fdbAt[i] = -1
		if l.Master != 0 && owner.ParseTag(l.Alias, &tag) {
			fdbAt[i] = batch.Len()
			batch.GetFDBEntry(l.Index, net.HardwareAddr(tag.MAC[:]), &fdbs[i])
		}
	}
	res, _ := b.conn.Exec(ctx, &batch) // per-request results below
	for i, l := range links {
		inv.fdb[l.Index] = fdbAt[i] >= 0 && res[fdbAt[i]] == nil && fdbs[i].Port == l.Index
	}
	per := 1
	if !dump {
		per = 2
	}
	for i, l := range links {
		switch err := res[per*i]; {
		case errors.Is(err, unix.ENODEV):
			// Gone since the lookup: shown with the guard off.
		case err != nil:
			return err
		default:
			inv.guards[l.Index] = installed(progs[i])
		}
		if !dump {
			switch err := res[per*i+1]; {
			case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV):
			case err != nil:
				return err
			default:
				inv.drops[l.Index] = uint64(qds[i].Stats.Drops)
			}
		}
	}
	if !dump {
		return nil
	}
	return b.conn.WalkQdiscs(ctx, &rtnl.QdiscFilter{Kind: "clsact"}, func(q *rtnl.Qdisc) error {
		inv.drops[q.Index] = uint64(q.Stats.Drops)
		return nil
	}, func() { clear(inv.drops) })
}

// inventory returns what turns links into records: the bridge's ifindex
// maps to its name (other masters are shown by ifindex).
func (b *Bridge) inventory(ctx context.Context) *inventory {
	inv := &inventory{ownership: b.ownership, bridgeDev: b.bridgeDev, netnsPath: b.conf.NetnsPath,
		masters: map[uint32]string{}, guards: map[uint32]*guard.Policy{}, drops: map[uint32]uint64{},
		fdb: map[uint32]bool{}}
	if br, err := getLink(ctx, b.conn, b.bridgeDev); err == nil {
		inv.masters[br.Index] = br.Name
	}
	return inv
}

// verifyFDB reads, in one batch, the bridge's entry for each NIC's guest
// MAC (NICs that are ports of br and not being deleted) and lists the
// differences fdbDiff finds.
func (b *Bridge) verifyFDB(ctx context.Context, nics []found, br *rtnl.Link) ([]string, error) {
	var batch rtnl.Batch
	es := make([]rtnl.FDBEntry, len(nics))
	at := make([]int, len(nics))
	for i := range nics {
		at[i] = -1
		if l := &nics[i].link; l.Master == br.Index && l.Group != b.group {
			at[i] = batch.Len()
			batch.GetFDBEntry(l.Index, net.HardwareAddr(nics[i].tag.MAC[:]), &es[i])
		}
	}
	if batch.Len() == 0 {
		return nil, nil
	}
	res, _ := b.conn.Exec(ctx, &batch) // per-request results below
	var diffs []string
	for i := range nics {
		if at[i] < 0 {
			continue
		}
		var e *rtnl.FDBEntry
		switch err := res[at[i]]; {
		case err == nil:
			e = &es[i]
		case errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.ENODEV):
			continue // gone since the lookup
		default:
			return nil, err
		}
		if d := fdbDiff(e, &nics[i].link, nics[i].nic, nics[i].tag.Staged); d != "" {
			diffs = append(diffs, d)
		}
	}
	return diffs, nil
}
