package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/rtnl"
)

// ops are the kernel operations on an instance's TAPs that need no Bridge:
// Delete, Cleanup, the background deletion and GC share them.
type ops struct {
	conn conn
	ownership
	hook hookFunc // tests only: see hooks_linux.go
}

// nicRef is what deleting a NIC's TAP needs: its ifindex, and its guest
// MAC, whose FDB entry a doomed TAP loses at once.
type nicRef struct {
	index uint32
	mac   [6]byte
}

// lookupVMs finds the TAPs of NICs from..to-1 of each VM by alternative
// name, in one batch, keeping only those whose tag proves them the
// instance's TAP for that VM and NIC. Absent NICs are skipped (gaps in the
// indices are fine), and so is a device that answers to one of the names
// but does not carry the matching tag: it is not ours.
func (o *ops) lookupVMs(ctx context.Context, vmIDs []string, from, to int) (map[string][]found, error) {
	var batch rtnl.Batch
	per := to - from
	links := make([]rtnl.Link, len(vmIDs)*per)
	for i, id := range vmIDs {
		for nic := from; nic < to; nic++ {
			batch.GetLinkByAltName(owner.AltName(o.inst, id, nic), &links[i*per+nic-from])
		}
	}
	res, _ := o.conn.Exec(ctx, &batch) // per-request results below
	out := make(map[string][]found, len(vmIDs))
	var errs []error
	for j, err := range res {
		id, nic := vmIDs[j/per], from+j%per
		if errors.Is(err, unix.ENODEV) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %w", id, err))
			continue
		}
		var tag owner.Tag
		if l := &links[j]; o.oursFor(l, id, nic, &tag) {
			out[id] = append(out[id], found{nic: nic, link: *l, tag: tag})
		}
	}
	return out, errors.Join(errs...)
}

// refsOf returns the deletion references of every TAP in f.
func refsOf(f map[string][]found) []nicRef {
	var refs []nicRef
	for _, nics := range f {
		for _, n := range nics {
			refs = append(refs, nicRef{index: n.link.Index, mac: n.tag.MAC})
		}
	}
	return refs
}

// targets returns the TAPs of every VM of vmIDs: for those in known (TAPs
// this process made, whose ifindexes stay theirs: the kernel does not
// reuse an ifindex before its 31-bit space wraps), the remembered ones;
// the others are looked up by alternative name over all NIC indices,
// trusting only TAPs whose tag proves them this instance's.
func (o *ops) targets(ctx context.Context, vmIDs []string, known map[string][]nicRef) ([]nicRef, error) {
	var refs []nicRef
	var lookup []string
	for _, id := range vmIDs {
		r, ok := known[id]
		if !ok {
			lookup = append(lookup, id)
		}
		refs = append(refs, r...)
	}
	if len(lookup) == 0 {
		return refs, nil
	}
	f, err := o.lookupVMs(ctx, lookup, 0, owner.MaxNICs)
	return append(refs, refsOf(f)...), err
}

// deleteNow deletes the links with these ifindexes: it moves them into the
// instance's reserved group and deletes the group, in one batch and one
// RCU grace period. Links already gone count as deleted. Every doomed TAP
// of the instance waiting in the group goes too.
func (o *ops) deleteNow(ctx context.Context, indexes []uint32) error {
	if len(indexes) == 0 {
		return nil
	}
	var batch rtnl.Batch
	for _, idx := range indexes {
		batch.SetLink(&rtnl.LinkChange{Index: idx, Group: &o.group})
	}
	batch.DeleteGroup(o.group)
	res, _ := o.conn.Exec(ctx, &batch)
	return realErrs(res)
}

// doom makes the TAPs of refs carry no traffic and moves them into the
// instance's reserved group, where the background deletion, a Config of
// their VM or GC deletes them. Per TAP, one message locks the bridge port,
// turns its flooding off (so that without an FDB entry nothing reaches it
// or leaves it) and moves it into the group, and a second removes its
// guest MAC's static FDB entry (so that a control plane reading the FDB,
// FRR's zebra for one, withdraws the MAC at once). Neither waits for an
// RCU grace period. Links already gone count as doomed. A TAP that is no
// longer a bridge port (someone took it off) carries no bridge traffic:
// the kernel refuses the port settings with EOPNOTSUPP and applies
// nothing of that message, so it is only moved into the group, in a
// second batch that the usual case never needs.
func (o *ops) doom(ctx context.Context, refs []nicRef) error {
	if len(refs) == 0 {
		return nil
	}
	var batch rtnl.Batch
	on, off := true, false
	port := rtnl.BridgePort{Locked: &on, UnicastFlood: &off, McastFlood: &off, BcastFlood: &off}
	for _, r := range refs {
		batch.SetLink(&rtnl.LinkChange{Index: r.index, Group: &o.group, Port: &port})
		batch.DelFDB(r.index, net.HardwareAddr(r.mac[:]))
	}
	res, _ := o.conn.Exec(ctx, &batch)
	var errs []error
	var loose rtnl.Batch // TAPs off the bridge: the group move alone
	for i, r := range refs {
		mark, fdb := res[2*i], res[2*i+1]
		switch {
		case errors.Is(mark, unix.ENODEV):
		case errors.Is(mark, unix.EOPNOTSUPP):
			loose.SetLink(&rtnl.LinkChange{Index: r.index, Group: &o.group})
		case mark != nil:
			errs = append(errs, mark)
		case fdb != nil && !errors.Is(fdb, unix.ENODEV):
			errs = append(errs, fdb)
		}
	}
	if loose.Len() > 0 {
		res, _ := o.conn.Exec(ctx, &loose)
		errs = append(errs, realErrs(res))
	}
	return errors.Join(errs...)
}

// realErrs joins the errors of res other than ENODEV: a link that is gone
// is as good as deleted.
func realErrs(res []error) error {
	var errs []error
	for _, err := range res {
		if err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
