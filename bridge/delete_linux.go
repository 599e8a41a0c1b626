package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/rtnl"
)

// ops are the kernel operations on an instance's TAPs that need no Bridge:
// Delete, CleanupTAPs and GC share them.
type ops struct {
	conn  *rtnl.Conn
	inst  owner.Instance
	group uint32
	hook  hookFunc // tests only: see hooks_linux.go
}

// ours reports whether l is a TAP carrying inst's tag, and parses the tag
// into t.
func (o *ops) ours(l *rtnl.Link, t *owner.Tag) bool {
	return l.Kind == "tun" && l.Tun != nil && l.Tun.TAP && owner.ParseTag(l.Alias, t) && t.Instance == o.inst
}

// found is a TAP that a lookup proved to be the instance's TAP for a VM
// and NIC.
type found struct {
	ref  nicRef
	link rtnl.Link
	tag  owner.Tag
}

// lookupNICs finds the TAPs of NICs from..to-1 of vmID by alternative name,
// keeping only those whose tag proves they are the instance's TAP for that
// VM and NIC. Absent NICs are skipped: gaps in the indices are fine.
func (o *ops) lookupNICs(ctx context.Context, vmID string, from, to int) ([]nicRef, error) {
	f, err := o.lookupVMs(ctx, []string{vmID}, from, to)
	refs := make([]nicRef, len(f[vmID]))
	for i := range f[vmID] {
		refs[i] = f[vmID][i].ref
	}
	return refs, err
}

// lookupVMs is lookupNICs for many VMs in one batch, with the links and
// tags found. A device that answers to one of the alternative names but
// does not carry the matching tag is ignored: it is not ours.
func (o *ops) lookupVMs(ctx context.Context, vmIDs []string, from, to int) (map[string][]found, error) {
	var batch rtnl.Batch
	per := to - from
	links := make([]rtnl.Link, len(vmIDs)*per)
	for i, id := range vmIDs {
		for nic := from; nic < to; nic++ {
			batch.GetLinkByAltName(owner.AltName(o.inst, id, nic), &links[i*per+nic-from])
		}
	}
	res, _ := o.conn.Exec(ctx, &batch)
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
		if l := &links[j]; o.ours(l, &tag) && tag.VMID == id && tag.NIC == nic {
			out[id] = append(out[id], found{
				ref:  nicRef{nic: nic, index: l.Index, name: l.Name, created: tag.Created},
				link: *l,
				tag:  tag,
			})
		}
	}
	return out, errors.Join(errs...)
}

// verify re-reads known refs by ifindex and returns those that still are the
// same TAP (same tag creation time), and the VMs with a ref that is not:
// those need a lookup.
func (o *ops) verify(ctx context.Context, known map[string][]nicRef) (ok map[string][]nicRef, stale []string, err error) {
	var batch rtnl.Batch
	type item struct {
		vm  string
		ref nicRef
	}
	var items []item
	for vm, refs := range known {
		for _, r := range refs {
			items = append(items, item{vm, r})
		}
	}
	links := make([]rtnl.Link, len(items))
	for i := range items {
		batch.GetLinkByIndex(items[i].ref.index, &links[i])
	}
	res, _ := o.conn.Exec(ctx, &batch)
	ok = make(map[string][]nicRef, len(known))
	bad := make(map[string]bool)
	var errs []error
	for i, it := range items {
		var tag owner.Tag
		switch err := res[i]; {
		case errors.Is(err, unix.ENODEV):
			bad[it.vm] = true
		case err != nil:
			errs = append(errs, fmt.Errorf("vm %s: %w", it.vm, err))
		case o.ours(&links[i], &tag) && tag.VMID == it.vm && tag.Created == it.ref.created:
			ok[it.vm] = append(ok[it.vm], it.ref)
		default:
			bad[it.vm] = true
		}
	}
	for vm := range bad {
		delete(ok, vm)
		stale = append(stale, vm)
	}
	return ok, stale, errors.Join(errs...)
}

// deleteIndexes deletes the links with these ifindexes: it moves them into
// the instance's reserved group and deletes the group, in one batch and one
// RCU grace period. Links already gone count as deleted. Every doomed TAP
// of the instance waiting in the group goes too.
func (o *ops) deleteIndexes(ctx context.Context, indexes []uint32) error {
	if len(indexes) == 0 {
		return nil
	}
	var batch rtnl.Batch
	for _, idx := range indexes {
		batch.SetLink(&rtnl.LinkChange{Index: idx, Group: &o.group})
	}
	var errs []error
	collect := func(res []error) {
		for _, err := range res {
			if err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, err)
			}
		}
	}
	if o.hook != nil {
		// A test stops the process between marking and deleting: send the
		// marks on their own. (Without a hook the state is reachable too:
		// Exec splits a batch of more than rtnl's window, 128 requests,
		// into several sendmsg calls, and a crash or a done context can
		// fall between them. GC reclaims doomed TAPs.)
		res, _ := o.conn.Exec(ctx, &batch)
		collect(res)
		o.at(hookDeleteMarked)
		batch.Reset()
	}
	batch.DeleteGroup(o.group)
	res, _ := o.conn.Exec(ctx, &batch)
	collect(res)
	return errors.Join(errs...)
}

// deleteVMs deletes every TAP of the VMs: those in known are checked by
// ifindex, the others (and known ones that went stale) are looked up by
// alternative name over all NIC indices.
func (o *ops) deleteVMs(ctx context.Context, vmIDs []string, known map[string][]nicRef) error {
	var lookup []string
	ok := map[string][]nicRef{}
	var errs []error
	if len(known) > 0 {
		var stale []string
		var err error
		ok, stale, err = o.verify(ctx, known)
		errs = append(errs, err)
		lookup = append(lookup, stale...)
	}
	for _, id := range vmIDs {
		if _, k := known[id]; !k {
			lookup = append(lookup, id)
		}
	}
	if len(lookup) > 0 {
		f, err := o.lookupVMs(ctx, lookup, 0, owner.MaxNICs)
		errs = append(errs, err)
		for id, nics := range f {
			for _, n := range nics {
				ok[id] = append(ok[id], n.ref)
			}
		}
	}
	var indexes []uint32
	for _, refs := range ok {
		for _, r := range refs {
			indexes = append(indexes, r.index)
		}
	}
	errs = append(errs, o.deleteIndexes(ctx, indexes))
	return errors.Join(errs...)
}

// validIDs returns the valid IDs of vmIDs without duplicates, in order, and
// an error for each invalid one.
func validIDs(vmIDs []string) ([]string, error) {
	out := make([]string, 0, len(vmIDs))
	var errs []error
	for _, id := range vmIDs {
		if err := owner.ValidateVMID(id); err != nil {
			errs = append(errs, fmt.Errorf("delete: %w: %w", ErrInvalidArgument, err))
			continue
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, errors.Join(errs...)
}

// Delete removes every TAP of each VM in vmIDs, whatever its NIC indices,
// and only TAPs whose tag names this instance and that VM. A VM without
// TAPs counts as deleted. It returns the IDs whose TAPs are gone (or, with
// the reaper running, queued for deletion), in the order given, without
// duplicates. Invalid IDs are left out and reported in the error, wrapping
// ErrInvalidArgument.
//
// Without the reaper, Delete returns when the TAPs are gone. With it, Delete
// only queues the VMs and returns; Flush waits for the queue to drain.
func (b *Bridge) Delete(ctx context.Context, vmIDs []string) ([]string, error) {
	ids, verr := validIDs(vmIDs)
	if len(ids) == 0 {
		return nil, verr
	}
	if b.enqueue(ids) {
		b.at(hookDeleteQueued)
		return ids, verr
	}
	unlocks := make([]func(), 0, len(ids))
	for _, id := range slices.Sorted(slices.Values(ids)) {
		unlocks = append(unlocks, b.vms.lock(id))
	}
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	known := b.forget(ids)
	if err := b.deleteVMs(ctx, ids, known); err != nil {
		return nil, errors.Join(verr, fmt.Errorf("delete: %w", err))
	}
	return ids, verr
}

// forget removes the VMs from the known map and returns their refs.
func (b *Bridge) forget(ids []string) map[string][]nicRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	known := make(map[string][]nicRef)
	for _, id := range ids {
		if refs, ok := b.known[id]; ok {
			known[id] = refs
			delete(b.known, id)
		}
	}
	return known
}

// CleanupTAPs deletes the TAPs of vmIDs that belong to the default
// instance (config.DefaultRootDir) in the caller's network namespace,
// without a Bridge. VMs without TAPs are a no-op. It returns the IDs that
// have no TAP left afterwards; IDs that are invalid, or whose TAPs could
// not be deleted, are not returned. Use Bridge.Delete for other instances
// and namespaces.
func CleanupTAPs(vmIDs []string) []string {
	done, _ := Cleanup(context.Background(), &config.Config{}, vmIDs)
	return done
}

// reaper deletes queued VMs' TAPs in batches, on its own goroutine.
type reaper struct {
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	// Guarded by Bridge.mu.
	queue   map[string][]nicRef      // VMs waiting; nil refs: look them up
	running map[string]chan struct{} // VMs in the current cycle
	stats   ReaperStats

	// stopping is set when StopReaper closes stop: Delete no longer
	// queues, so nothing waits behind the last cycle.
	stopping bool
}

// ReaperStats counts what the reaper did.
type ReaperStats struct {
	Queued  int   // VMs waiting now
	Cycles  int   // group deletions done
	Reaped  int   // VMs whose TAPs it deleted
	Failed  int   // VMs whose deletion failed (they stay for GC)
	LastErr error // the last cycle's error, if it failed
}

// StartReaper makes Delete asynchronous: from now on it queues VMs and
// returns, and a goroutine deletes the queued TAPs together, after
// Config.ReapInterval or as soon as Config.ReapBatch VMs wait. The
// goroutine runs until StopReaper or Close. Starting a running reaper is a
// no-op.
func (b *Bridge) StartReaper() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reaper != nil {
		return
	}
	r := &reaper{
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		queue:   make(map[string][]nicRef),
		running: make(map[string]chan struct{}),
	}
	b.reaper = r
	go b.reap(r)
}

// StopReaper deletes what is queued, stops the reaper goroutine and makes
// Delete synchronous again. It returns the error of that last deletion. It
// is a no-op when no reaper runs.
func (b *Bridge) StopReaper(ctx context.Context) error {
	b.mu.Lock()
	r := b.reaper
	if r == nil {
		b.mu.Unlock()
		return nil
	}
	if !r.stopping {
		// From now on Delete is synchronous again: nothing new is queued
		// behind the reaper's last cycle.
		r.stopping = true
		close(r.stop)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("stop reaper: %w", ctx.Err())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reaper == r {
		b.reaper = nil
		b.last = r.stats
	}
	return r.stats.LastErr
}

// Flush deletes every queued VM's TAPs now, on the caller's goroutine, and
// returns the error of that deletion. It is a no-op without a reaper.
func (b *Bridge) Flush(ctx context.Context) error {
	b.mu.Lock()
	r := b.reaper
	if r == nil {
		b.mu.Unlock()
		return nil
	}
	// A cycle the reaper goroutine already started is waited for too.
	running := make(map[chan struct{}]bool)
	for _, done := range r.running {
		running[done] = true
	}
	b.mu.Unlock()
	err := b.reapOnce(ctx, r)
	for done := range running {
		select {
		case <-done:
		case <-ctx.Done():
			return errors.Join(err, fmt.Errorf("flush: %w", ctx.Err()))
		}
	}
	return err
}

// Stats returns the reaper's counters; after StopReaper, those of the
// reaper that stopped last.
func (b *Bridge) Stats() ReaperStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reaper == nil {
		return b.last
	}
	s := b.reaper.stats
	s.Queued = len(b.reaper.queue)
	return s
}

// enqueue queues the VMs if the reaper runs, and reports whether it did.
func (b *Bridge) enqueue(ids []string) bool {
	b.mu.Lock()
	r := b.reaper
	if r == nil || r.stopping {
		b.mu.Unlock()
		return false
	}
	for _, id := range ids {
		refs := b.known[id]
		delete(b.known, id)
		if old, ok := r.queue[id]; ok && refs == nil {
			refs = old
		}
		r.queue[id] = refs
	}
	full := len(r.queue) >= b.conf.ReapBatch
	b.mu.Unlock()
	if full || len(ids) > 0 {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	return true
}

func (b *Bridge) reap(r *reaper) {
	defer close(r.done)
	ctx := context.Background()
	for {
		select {
		case <-r.stop:
			_ = b.reapOnce(ctx, r) // recorded in stats
			return
		case <-r.wake:
		}
		// Let deletions gather for the interval, unless the batch fills.
		t := time.NewTimer(b.conf.ReapInterval)
	gather:
		for b.queued(r) < b.conf.ReapBatch {
			select {
			case <-t.C:
				break gather
			case <-r.wake:
			case <-r.stop:
				t.Stop()
				_ = b.reapOnce(ctx, r)
				return
			}
		}
		t.Stop()
		_ = b.reapOnce(ctx, r)
	}
}

func (b *Bridge) queued(r *reaper) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(r.queue)
}

// reapOnce deletes everything queued now, in one group deletion.
func (b *Bridge) reapOnce(ctx context.Context, r *reaper) error {
	b.mu.Lock()
	if len(r.queue) == 0 {
		b.mu.Unlock()
		return nil
	}
	queue := r.queue
	r.queue = make(map[string][]nicRef)
	done := make(chan struct{})
	ids := make([]string, 0, len(queue))
	known := make(map[string][]nicRef, len(queue))
	for id, refs := range queue {
		r.running[id] = done
		ids = append(ids, id)
		if refs != nil {
			known[id] = refs
		}
	}
	b.mu.Unlock()

	err := b.deleteVMs(ctx, ids, known)

	b.mu.Lock()
	for _, id := range ids {
		delete(r.running, id)
	}
	r.stats.Cycles++
	if err != nil {
		r.stats.Failed += len(ids)
		r.stats.LastErr = err
	} else {
		r.stats.Reaped += len(ids)
		r.stats.LastErr = nil
	}
	b.mu.Unlock()
	close(done)
	return err
}

// finishQueuedDelete makes sure no queued or running deletion of vmID is
// left before Config recreates it: a queued one is done now, a running one
// is waited for.
func (b *Bridge) finishQueuedDelete(ctx context.Context, vmID string) error {
	b.mu.Lock()
	r := b.reaper
	if r == nil {
		b.mu.Unlock()
		return nil
	}
	if done, ok := r.running[vmID]; ok {
		b.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	refs, queued := r.queue[vmID]
	delete(r.queue, vmID)
	b.mu.Unlock()
	if !queued {
		return nil
	}
	var known map[string][]nicRef
	if refs != nil {
		known = map[string][]nicRef{vmID: refs}
	}
	return b.deleteVMs(ctx, []string{vmID}, known)
}
