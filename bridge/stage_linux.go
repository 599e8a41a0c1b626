package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// Stage is Config for the destination of a live migration: it makes (or
// checks and repairs) VM vmID's TAPs exactly as Config does, guard filter
// and bindings included, except that no NIC forwards anything until
// Activate: the guest MAC gets no FDB entry (so EVPN still places the
// guest on the source host, whose entry the bridge holds as extern_learn
// on its vxlan port), and the port is locked with unicast, multicast and
// broadcast flooding off. The owner tags record the NICs as staged
// (Inspect and List show it), which also survives a restart of the
// caller. It takes Config's arguments and returns its records.
//
// Stage is idempotent; Stage on an active VM stages it again (its FDB
// entries go, and with them its EVPN routes), and Config on a staged VM
// makes it active without Activate's take-over of a remote entry. A guest
// MAC that the bridge has as a local (not extern_learn) entry on another
// port fails with an error wrapping ErrInvalidArgument. Other errors,
// rollback and concurrency are as Config's.
func (b *Bridge) Stage(ctx context.Context, vmID string, numNICs int, vmCfg *types.VMConfig, existing ...*types.NetworkConfig) ([]*types.NetworkConfig, error) {
	p, err := b.configure(ctx, vmID, numNICs, vmCfg, existing, false, true)
	if err != nil {
		return nil, err
	}
	return p.records(&b.target), nil
}

// Activate makes the staged NICs of VM vmID (this instance's TAPs only)
// forward, at a live migration's switchover (QEMU: the destination's
// RESUME event). Per NIC, it takes the guest MAC over from wherever the
// bridge has it (NTF_USE: the bridge learns it on the TAP, which clears a
// control plane's extern_learn mark; EVPN then moves the MAC here with a
// higher sequence number), checks that the entry is on the TAP, pins it
// static (NUD_NOARP, as Config), deletes every vxlan port's own entry for
// the MAC (the route to the old VTEP, which zebra leaves behind), restores
// the port settings of the NIC's guard mode and clears the staged mark.
//
// The take-over needs the TAP open by the VMM (carrier up): a staged NIC
// without carrier fails with an error wrapping ErrNoCarrier and is left
// staged. A remote sticky entry cannot be taken over: the source must
// Delete its NIC first. Activate is idempotent: an active NIC is repaired
// (entry, port settings) and otherwise left as it is. It fails with an
// error wrapping network.ErrNotFound for a VM without TAPs and
// ErrInvalidArgument for a bad VM ID. It is serialized with the Config,
// Stage and Delete calls for the same VM.
//
// The take-over and its check are one batch (the kernel acknowledges an
// ignored NTF_USE, so the answer must be read before pinning the entry,
// or a static entry would keep the remote's extern_learn mark), the rest
// a second: two round trips for all the VM's NICs.
func (b *Bridge) Activate(ctx context.Context, vmID string) error {
	if err := owner.ValidateVMID(vmID); err != nil {
		return fmt.Errorf("activate: %w: %w", ErrInvalidArgument, err)
	}
	unlock := b.vms.lock(vmID)
	defer unlock()
	f, err := b.lookupVMs(ctx, []string{vmID}, 0, owner.MaxNICs)
	if err != nil {
		return fmt.Errorf("activate vm %s: %w", vmID, err)
	}
	nics := f[vmID]
	if len(nics) == 0 {
		return fmt.Errorf("activate vm %s: %w", vmID, network.ErrNotFound)
	}
	br, err := b.bridgeLink(ctx)
	if err != nil {
		return fmt.Errorf("activate vm %s: %w", vmID, err)
	}
	var vxlans []uint32
	err = b.conn.WalkLinks(ctx, &rtnl.LinkFilter{Master: br.Index, Kind: "vxlan", Brief: true}, func(l *rtnl.Link) error {
		vxlans = append(vxlans, l.Index)
		return nil
	}, func() { vxlans = vxlans[:0] })
	if err != nil {
		return fmt.Errorf("activate vm %s: list vxlan ports: %w", vmID, err)
	}

	// Decide, then take over.
	var take rtnl.Batch
	got := make([]rtnl.FDBEntry, len(nics))
	uses := make([]bool, len(nics))
	for i := range nics {
		n := &nics[i]
		if n.link.Group == b.group {
			return fmt.Errorf("activate vm %s nic %d: TAP %s is being deleted", vmID, n.nic, n.link.Name)
		}
		if n.link.Master != br.Index {
			return fmt.Errorf("activate vm %s nic %d: TAP %s is not a port of %s", vmID, n.nic, n.link.Name, b.bridgeDev)
		}
		use, err := activationReady(&n.link, n.tag.Staged)
		if err != nil {
			return fmt.Errorf("activate vm %s nic %d: %w", vmID, n.nic, err)
		}
		if uses[i] = use; use {
			mac := net.HardwareAddr(n.tag.MAC[:])
			take.AddFDBWith(n.link.Index, mac, &rtnl.FDBOptions{Use: true})
			take.GetFDBEntry(n.link.Index, mac, &got[i])
		}
	}
	if take.Len() > 0 {
		res, err := b.conn.Exec(ctx, &take)
		if err != nil {
			return fmt.Errorf("activate vm %s: take over: %w", vmID, firstErr(res, err))
		}
		for i := range nics {
			if !uses[i] {
				continue
			}
			if err := checkTakeover(&got[i], nics[i].link.Index, net.HardwareAddr(nics[i].tag.MAC[:])); err != nil && nics[i].tag.Staged {
				return fmt.Errorf("activate vm %s nic %d: %w", vmID, nics[i].nic, err)
			}
		}
	}

	// Pin, clean the vxlan ports, open the port, clear the mark.
	var batch rtnl.Batch
	var selfDel []int
	for i := range nics {
		n := &nics[i]
		mac := net.HardwareAddr(n.tag.MAC[:])
		batch.AddFDBWith(n.link.Index, mac, &rtnl.FDBOptions{Sticky: b.conf.Sticky})
		for _, vx := range vxlans {
			selfDel = append(selfDel, batch.Len())
			batch.DelFDBSelf(vx, mac)
		}
		port, err := activePort(n.tag.Guard, b.conf.Isolated, b.conf.Locked)
		if err != nil {
			return fmt.Errorf("activate vm %s nic %d: tag: %w", vmID, n.nic, err)
		}
		batch.SetBridgePort(n.link.Index, &port)
		if n.tag.Staged {
			t := n.tag
			t.Staged = false
			alias := t.String()
			batch.SetLink(&rtnl.LinkChange{Index: n.link.Index, Alias: &alias})
		}
	}
	res, err := b.conn.Exec(ctx, &batch)
	if err == nil {
		return nil
	}
	var errs []error
	for i, e := range res {
		if e == nil || errors.Is(e, unix.ENOENT) && containsInt(selfDel, i) {
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("activate vm %s: %w", vmID, errors.Join(errs...))
}

// firstErr returns the first per-request error of a batch, else err.
func firstErr(res []error, err error) error {
	for _, e := range res {
		if e != nil {
			return e
		}
	}
	return err
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
