package bridge

import (
	"context"
	"errors"
	"fmt"
)

// Delete removes every TAP of each VM in vmIDs, whatever its NIC indices,
// and only TAPs whose tag names this instance and that VM. A VM without
// TAPs counts as deleted. It returns the IDs whose TAPs are gone (or
// doomed, see below), in the order given, without duplicates. Invalid IDs
// are left out and reported in the error, wrapping ErrInvalidArgument.
//
// By default Delete dooms the TAPs and returns without waiting for the
// kernel's deletion (an RCU grace period per call): when it returns, each
// TAP's bridge port is locked with flooding off and the guest MAC's static
// FDB entry is gone, so the TAP carries no traffic in either direction and
// a control plane that reads the FDB (FRR's zebra) withdraws the MAC; the
// TAP itself is in the instance's reserved group, where the background
// deletion deletes it with every other doomed TAP, after
// Config.ReapInterval or once Config.ReapBatch VMs wait. Flush waits for
// that, and Close does. With Config.SyncDelete (or after StopReaper),
// Delete returns when the TAPs are gone.
//
// TAPs this Bridge made are found by the ifindex it remembers; others by
// alternative name, trusting only their owner tag.
func (b *Bridge) Delete(ctx context.Context, vmIDs []string) ([]string, error) {
	ids, verr := validIDs("delete", vmIDs)
	if len(ids) == 0 {
		return nil, verr
	}
	unlock := b.vms.lockAll(ids)
	defer unlock()
	refs, err := b.targets(ctx, ids, b.forget(ids))
	if err != nil {
		return nil, errors.Join(verr, fmt.Errorf("delete: %w", err))
	}
	if b.reaper.synchronous() {
		indexes := make([]uint32, len(refs))
		for i, r := range refs {
			indexes[i] = r.index
		}
		if err := b.deleteNow(ctx, indexes); err != nil {
			return nil, errors.Join(verr, fmt.Errorf("delete: %w", err))
		}
		return ids, verr
	}
	if err := b.doom(ctx, refs); err != nil {
		return nil, errors.Join(verr, fmt.Errorf("delete: %w", err))
	}
	b.reaper.queue(b, len(ids))
	b.hook.at(hookDeleteQueued)
	return ids, verr
}

// forget removes the VMs from the known map and returns their TAPs.
func (b *Bridge) forget(ids []string) map[string][]nicRef {
	b.vmMu.Lock()
	defer b.vmMu.Unlock()
	known := make(map[string][]nicRef)
	for _, id := range ids {
		if refs, ok := b.known[id]; ok {
			known[id] = refs
			delete(b.known, id)
		}
	}
	return known
}
