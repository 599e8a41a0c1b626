package bridge

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// inventory turns TAPs read from the kernel into the records Inspect and
// List return.
type inventory struct {
	ownership
	bridgeDev string
	netnsPath string
	masters   map[uint32]string // ifindex -> name, for the masters named by name

	// What the guard's filters say, by ifindex: the policy (nil: no
	// filter, the guard is off) and the drop counter of the TAP's clsact.
	guards map[uint32]*guard.Policy
	drops  map[uint32]uint64
	// fdb holds, by ifindex, whether the bridge's entry for the TAP's
	// guest MAC points to it.
	fdb map[uint32]bool
}

// addNIC adds TAP l with tag t to n, keeping NICs in NIC order. l and t
// may be reused by the caller afterwards: nothing of them is kept by
// reference.
func (inv *inventory) addNIC(n *types.Network, l *rtnl.Link, t *owner.Tag) {
	master := inv.masters[l.Master]
	if master == "" && l.Master != 0 {
		master = fmt.Sprintf("ifindex %d", l.Master)
	}
	rec := &types.NetworkConfig{
		Tap:       l.Name,
		Mac:       net.HardwareAddr(t.MAC[:]).String(),
		NumQueues: t.Queues,
		QueueSize: t.QueueSize,
		Backend:   Backend,
		BridgeDev: inv.bridgeDev,
		NetnsPath: inv.netnsPath,
	}
	gp := inv.guards[l.Index]
	rec.Network = networkOf(gp)
	st := &types.LinkState{
		NIC:            t.NIC,
		NICs:           t.NICs,
		Index:          int(l.Index),
		Master:         master,
		Up:             l.Up(),
		MultiQueue:     l.Tun.MultiQueue,
		Hypervisor:     strings.Clone(t.Hypervisor),
		AttachedQueues: l.AttachedQueues(),
		Deleting:       l.Group == inv.group,
		Created:        time.UnixMilli(t.Created).UTC(),
		Guard:          string(guard.ModeOff),
		Bound:          boundStrings(gp),
		GuardDrops:     inv.drops[l.Index],
		FDB:            inv.fdb[l.Index],
		Staged:         t.Staged,
	}
	if gp != nil {
		st.Guard = string(gp.Mode)
	}
	i, _ := slices.BinarySearchFunc(n.Links, st.NIC, func(s *types.LinkState, nic int) int { return s.NIC - nic })
	n.Links = slices.Insert(n.Links, i, st)
	n.NICs = slices.Insert(n.NICs, i, rec)
	// The VM's IP configuration, as cocoon's Inspect gives it: its first
	// NIC's.
	n.IP, n.Gateway, n.Prefix = "", "", 0
	if nw := n.NICs[0].Network; nw != nil {
		n.IP, n.Gateway, n.Prefix = nw.IP, nw.Gateway, nw.Prefix
	}
}

// sortNetworks orders List's result by VM ID.
func sortNetworks(nets []*types.Network) {
	slices.SortFunc(nets, func(a, b *types.Network) int { return strings.Compare(a.VMID, b.VMID) })
}
