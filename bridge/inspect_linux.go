package bridge

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// Verify checks that VM vmID's TAPs are intact: every NIC its tags record
// exists, carries this instance's tag, is up, is a port of this bridge with
// learning off, has the bridge's MTU and its derived host-side MAC, and has
// the flags the hypervisor profile opens it with (TAP, no PI, vnet_hdr,
// multi-queue iff the profile says so for its queue count).
//
// It returns nil when all hold; an error wrapping network.ErrNotFound when
// the VM has no TAP; otherwise an error wrapping ErrMismatch that lists
// every difference, one per line.
func (b *Bridge) Verify(ctx context.Context, vmID string) error {
	if err := owner.ValidateVMID(vmID); err != nil {
		return fmt.Errorf("verify: %w: %w", ErrInvalidArgument, err)
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
	var diffs []string
	want := 0
	have := make(map[int]bool, len(nics))
	for i := range nics {
		want = max(want, nics[i].tag.NICs)
		have[nics[i].nic] = true
		diffs = append(diffs, b.check(&nics[i], br)...)
	}
	for nic := range want {
		if !have[nic] {
			diffs = append(diffs, fmt.Sprintf("nic %d: TAP missing (the VM has %d NICs)", nic, want))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("verify vm %s: %w:\n%s", vmID, ErrMismatch, strings.Join(diffs, "\n"))
}

// check lists how one TAP differs from what Config makes.
func (b *Bridge) check(n *found, br *rtnl.Link) []string {
	l, t := &n.link, &n.tag
	var d []string
	add := func(format string, args ...any) {
		d = append(d, fmt.Sprintf("nic %d (%s): ", n.nic, l.Name)+fmt.Sprintf(format, args...))
	}
	if l.Group == b.group {
		add("being deleted")
		return d
	}
	if l.Master != br.Index {
		master := "none"
		if l.Master != 0 {
			master = fmt.Sprintf("ifindex %d", l.Master)
		}
		add("not a port of %s (master: %s)", b.bridgeDev, master)
	} else if l.Port != nil && l.Port.Learning {
		add("learning is on")
	}
	if !l.Up() {
		add("down")
	}
	if l.MTU != br.MTU {
		add("MTU %d, bridge has %d", l.MTU, br.MTU)
	}
	if want := hostMAC(t.MAC); !bytes.Equal(l.Address, want) {
		add("MAC %s, want %s", l.Address, want)
	}
	tun := l.Tun
	if tun.PI || !tun.VnetHdr {
		add("flags pi=%v vnet_hdr=%v, want pi=false vnet_hdr=true", tun.PI, tun.VnetHdr)
	}
	pairs := max(t.Queues/2, 1)
	if want := config.MultiQueue(b.conf.Hypervisor, pairs); tun.MultiQueue != want {
		add("multi-queue %v, but %s opens a TAP with %d queue pairs multi-queue=%v", tun.MultiQueue, b.conf.Hypervisor, pairs, want)
	}
	return d
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
	masters := b.masterNames(ctx)
	n := &types.Network{VMID: vmID, BridgeDev: b.bridgeDev}
	for i := range f[vmID] {
		b.addNIC(n, &f[vmID][i].link, &f[vmID][i].tag, masters)
	}
	return n, nil
}

// List returns the network of every VM that has TAPs of this instance in
// the namespace, on this bridge or not, sorted by VM ID. It reads one
// kernel-filtered dump of TUN/TAP devices.
func (b *Bridge) List(ctx context.Context) ([]*types.Network, error) {
	masters := b.masterNames(ctx)
	byVM := make(map[string]*types.Network)
	var tag owner.Tag
	err := b.conn.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun"}, func(l *rtnl.Link) error {
		if !b.ours(l, &tag) {
			return nil
		}
		n := byVM[tag.VMID]
		if n == nil {
			// tag.VMID points into l's alias, which the walk reuses.
			n = &types.Network{VMID: strings.Clone(tag.VMID), BridgeDev: b.bridgeDev}
			byVM[n.VMID] = n
		}
		b.addNIC(n, l, &tag, masters)
		return nil
	}, func() { clear(byVM) })
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	out := make([]*types.Network, 0, len(byVM))
	for _, n := range byVM {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *types.Network) int { return strings.Compare(a.VMID, b.VMID) })
	return out, nil
}

// masterNames maps the bridge's ifindex to its name; other masters are
// shown by ifindex.
func (b *Bridge) masterNames(ctx context.Context) map[uint32]string {
	m := map[uint32]string{}
	if br, err := b.conn.LinkByName(ctx, b.bridgeDev); err == nil {
		m[br.Index] = br.Name
	}
	return m
}

// addNIC adds one TAP to n, keeping NICs in NIC order.
func (b *Bridge) addNIC(n *types.Network, l *rtnl.Link, t *owner.Tag, masters map[uint32]string) {
	master := masters[l.Master]
	if master == "" && l.Master != 0 {
		master = fmt.Sprintf("ifindex %d", l.Master)
	}
	rec := &types.NetworkConfig{
		Tap:       l.Name,
		Mac:       net.HardwareAddr(t.MAC[:]).String(),
		NumQueues: t.Queues,
		QueueSize: t.QueueSize,
		Backend:   Backend,
		BridgeDev: b.bridgeDev,
	}
	st := &types.LinkState{
		NIC:            t.NIC,
		NICs:           t.NICs,
		Index:          int(l.Index),
		Master:         master,
		Up:             l.Up(),
		MultiQueue:     l.Tun.MultiQueue,
		Hypervisor:     strings.Clone(t.Hypervisor),
		AttachedQueues: l.AttachedQueues(),
		Deleting:       l.Group == b.group,
		Created:        time.UnixMilli(t.Created).UTC(),
	}
	i, _ := slices.BinarySearchFunc(n.Links, st.NIC, func(s *types.LinkState, nic int) int { return s.NIC - nic })
	n.Links = slices.Insert(n.Links, i, st)
	n.NICs = slices.Insert(n.NICs, i, rec)
}
