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
	nic  int
	link rtnl.Link
	tag  owner.Tag
}

// lookupNICs finds the TAPs of NICs from..to-1 of vmID by alternative name,
// keeping only those whose tag proves they are the instance's TAP for that
// VM and NIC. Absent NICs are skipped: gaps in the indices are fine.
func (o *ops) lookupNICs(ctx context.Context, vmID string, from, to int) ([]uint32, error) {
	f, err := o.lookupVMs(ctx, []string{vmID}, from, to)
	return indexesOf(f), err
}

// indexesOf returns the ifindexes of every TAP in f.
func indexesOf(f map[string][]found) []uint32 {
	var indexes []uint32
	for _, nics := range f {
		for _, n := range nics {
			indexes = append(indexes, n.link.Index)
		}
	}
	return indexes
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
			out[id] = append(out[id], found{nic: nic, link: *l, tag: tag})
		}
	}
	return out, errors.Join(errs...)
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
	o.mark(&batch, indexes)
	var errs []error
	if o.hook != nil {
		// A test stops the process between marking and deleting: send the
		// marks on their own. (Without a hook the state is reachable too:
		// Exec splits a batch of more than rtnl's window, 128 requests,
		// into several sendmsg calls, and a crash or a done context can
		// fall between them. GC reclaims doomed TAPs.)
		res, _ := o.conn.Exec(ctx, &batch)
		errs = append(errs, realErrs(res))
		o.at(hookDeleteMarked)
		batch.Reset()
	}
	batch.DeleteGroup(o.group)
	res, _ := o.conn.Exec(ctx, &batch)
	errs = append(errs, realErrs(res))
	return errors.Join(errs...)
}

// markIndexes moves the links into the instance's reserved group, which
// dooms them: the reaper, a Config of their VM, or GC deletes them with the
// group. Links already gone count as marked.
func (o *ops) markIndexes(ctx context.Context, indexes []uint32) error {
	if len(indexes) == 0 {
		return nil
	}
	var batch rtnl.Batch
	o.mark(&batch, indexes)
	res, _ := o.conn.Exec(ctx, &batch)
	return realErrs(res)
}

func (o *ops) mark(batch *rtnl.Batch, indexes []uint32) {
	for _, idx := range indexes {
		batch.SetLink(&rtnl.LinkChange{Index: idx, Group: &o.group})
	}
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

// resolve returns the ifindexes of every TAP of the VMs: for those in
// known (TAPs this process made, whose ifindexes stay theirs: the kernel
// does not reuse an ifindex before its 31-bit space wraps), the remembered
// ones; the others are looked up by alternative name over all NIC
// indices, trusting only TAPs whose tag proves them this instance's.
func (o *ops) resolve(ctx context.Context, vmIDs []string, known map[string][]uint32) ([]uint32, error) {
	var indexes []uint32
	var lookup []string
	for _, id := range vmIDs {
		idx, ok := known[id]
		if !ok {
			lookup = append(lookup, id)
		}
		indexes = append(indexes, idx...)
	}
	if len(lookup) == 0 {
		return indexes, nil
	}
	f, err := o.lookupVMs(ctx, lookup, 0, owner.MaxNICs)
	return append(indexes, indexesOf(f)...), err
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
// the reaper running, doomed), in the order given, without duplicates.
// Invalid IDs are left out and reported in the error, wrapping
// ErrInvalidArgument.
//
// TAPs this Bridge made are found by the ifindex it remembers; others by
// alternative name, trusting only their owner tag. Without the reaper,
// Delete returns when the TAPs are gone. With it, Delete dooms them (moves
// them into the reserved group, which takes one message per TAP and no RCU
// wait) and returns; the reaper deletes them, and Flush waits for that.
func (b *Bridge) Delete(ctx context.Context, vmIDs []string) ([]string, error) {
	ids, verr := validIDs(vmIDs)
	if len(ids) == 0 {
		return nil, verr
	}
	// Lock the VMs in a fixed order: two Deletes of overlapping sets must
	// not deadlock.
	sorted := ids
	if len(ids) > 1 {
		sorted = slices.Sorted(slices.Values(ids))
	}
	unlocks := make([]func(), 0, len(ids))
	for _, id := range sorted {
		unlocks = append(unlocks, b.vms.lock(id))
	}
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	indexes, err := b.resolve(ctx, ids, b.forget(ids))
	if err != nil {
		return nil, errors.Join(verr, fmt.Errorf("delete: %w", err))
	}
	if r := b.runningReaper(); r != nil {
		// Doom the TAPs now, delete them with the next group deletion.
		if err := b.markIndexes(ctx, indexes); err != nil {
			return nil, errors.Join(verr, fmt.Errorf("delete: %w", err))
		}
		b.queue(r, len(ids))
		b.at(hookDeleteQueued)
		return ids, verr
	}
	if err := b.deleteIndexes(ctx, indexes); err != nil {
		return nil, errors.Join(verr, fmt.Errorf("delete: %w", err))
	}
	return ids, verr
}

// forget removes the VMs from the known map and returns their ifindexes.
func (b *Bridge) forget(ids []string) map[string][]uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	known := make(map[string][]uint32)
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

// reaper deletes the instance's doomed TAPs, which Delete moved into the
// reserved group, with one group deletion per cycle, on its own goroutine.
type reaper struct {
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	// conn is the reaper's own socket: a group deletion holds its socket
	// for the RCU grace periods it waits (unregister_netdevice_many,
	// netdev_run_todo), and must not hold up Config behind the Bridge's.
	conn *rtnl.Conn

	// Guarded by Bridge.mu.
	pending int // VMs Delete doomed since the last cycle
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

// StartReaper makes Delete asynchronous: from now on it only dooms the
// VMs' TAPs (moves them into the instance's reserved device group, one
// cheap message per TAP) and returns, and a goroutine deletes every doomed
// TAP with one group deletion, after Config.ReapInterval or as soon as
// Config.ReapBatch VMs wait. A Config of a doomed VM deletes its doomed TAPs
// first, so the VM ID can be reused at once; GC reclaims doomed TAPs left
// by a process that died. The goroutine runs until StopReaper or Close.
// Starting a running reaper is a no-op.
func (b *Bridge) StartReaper() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reaper != nil {
		return
	}
	r := &reaper{
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		conn: b.conn,
	}
	if conn, err := rtnl.Dial(&rtnl.Config{NetNS: b.nsFD}); err == nil {
		r.conn = conn
	} else {
		// Degraded, not broken: share the Bridge's socket, and say why.
		r.stats.LastErr = fmt.Errorf("reaper socket: %w", err)
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
		if r.conn != b.conn {
			r.conn.Close()
		}
	}
	return r.stats.LastErr
}

// Flush deletes every doomed TAP of the instance now, on the caller's
// goroutine, and returns the error of that deletion. Deletions requested
// before Flush are done when it returns (a cycle the reaper goroutine is
// running is ordered before Flush's on the socket). It is a no-op without a
// reaper.
func (b *Bridge) Flush(ctx context.Context) error {
	b.mu.Lock()
	r := b.reaper
	b.mu.Unlock()
	if r == nil {
		return nil
	}
	return b.reapOnce(ctx, r)
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
	s.Queued = b.reaper.pending
	return s
}

// runningReaper returns the reaper Delete should hand its VMs to, or nil
// when deletion is synchronous.
func (b *Bridge) runningReaper() *reaper {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reaper == nil || b.reaper.stopping {
		return nil
	}
	return b.reaper
}

// queue counts n more doomed VMs and wakes the reaper when it has to act:
// on the first VM (to start its interval) and when the batch is full.
func (b *Bridge) queue(r *reaper, n int) {
	b.mu.Lock()
	wake := r.pending == 0 || r.pending+n >= b.conf.ReapBatch
	r.pending += n
	b.mu.Unlock()
	if wake {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
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
	return r.pending
}

// reapOnce deletes every doomed TAP of the instance with one group
// deletion. It always sends it, even with nothing counted as pending: TAPs
// doomed by another process or a stopped reaper of this instance go too,
// and a Flush is ordered after a cycle the goroutine may be running.
func (b *Bridge) reapOnce(ctx context.Context, r *reaper) error {
	b.mu.Lock()
	n := r.pending
	r.pending = 0
	b.mu.Unlock()

	b.at(hookReaping)
	var batch rtnl.Batch
	batch.DeleteGroup(b.group)
	res, _ := r.conn.Exec(ctx, &batch)
	err := realErrs(res)

	b.mu.Lock()
	defer b.mu.Unlock()
	r.stats.Cycles++
	if err != nil {
		r.stats.Failed += n
		r.stats.LastErr = err
	} else {
		r.stats.Reaped += n
		r.stats.LastErr = nil
	}
	return err
}
