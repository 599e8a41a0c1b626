package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/rtnl"
)

// reaper is a Bridge's background deletion: the goroutine that deletes the
// TAPs Delete doomed, with one group deletion for all of them (one RCU
// grace period for the batch). The goroutine exists only while deletions
// are pending: the first Delete after an idle spell starts it, and it ends
// after a cycle that found nothing new to delete, so nothing runs (or
// leaks) while nothing is pending.
type reaper struct {
	interval time.Duration // how long doomed TAPs gather (Config.ReapInterval)
	batch    int           // how many pending VMs end the wait early (Config.ReapBatch)

	mu      sync.Mutex
	sync    bool          // guarded by mu: Delete deletes before it returns
	pending int           // guarded by mu: VMs doomed since the last cycle
	done    chan struct{} // guarded by mu: closed when the running goroutine ends; nil when none runs
	full    chan struct{} // wakes the goroutine early when the batch is full (capacity 1)
	stats   ReaperStats   // guarded by mu; Queued is left 0 (pending is the truth)
}

func (r *reaper) init(c *config.Config) {
	r.interval, r.batch, r.sync = c.ReapInterval, c.ReapBatch, c.SyncDelete
	r.full = make(chan struct{}, 1)
}

// synchronous reports whether Delete must delete before it returns.
func (r *reaper) synchronous() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sync
}

// queue counts n more doomed VMs and starts the goroutine if none runs, or
// wakes it when the batch is full.
func (r *reaper) queue(b *Bridge, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending += n
	if r.done == nil {
		r.done = make(chan struct{})
		go r.run(b, r.done)
		return
	}
	if r.pending >= r.batch {
		select {
		case r.full <- struct{}{}:
		default:
		}
	}
}

// run is the goroutine: it lets deletions gather for the interval (or
// until the batch fills), deletes the reserved group, and ends as soon as
// a cycle leaves nothing pending. It holds no socket while it waits.
func (r *reaper) run(b *Bridge, done chan struct{}) {
	t := time.NewTimer(r.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.full:
		}
		r.mu.Lock()
		n := r.pending
		r.pending = 0
		if n == 0 {
			// Flush or Close took them: nothing left to do.
			r.done = nil
			close(done)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		// A socket of its own for the cycle: a group deletion holds its
		// socket for the RCU grace periods it waits
		// (unregister_netdevice_many, netdev_run_todo), and must not hold
		// up Config behind the Bridge's.
		c, err := dialConn(b.nsFD, b.wrap)
		own := err == nil
		if !own {
			c = b.conn // degraded, not broken: share the Bridge's socket
		}
		_ = r.cycle(context.Background(), b, c, n) // recorded in stats
		if own {
			c.Close()
		}
		r.mu.Lock()
		if r.pending == 0 {
			r.done = nil
			close(done)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		t.Reset(r.interval)
	}
}

// cycle deletes every doomed TAP of the instance with one group deletion
// and counts n VMs as reaped or failed. It always sends the deletion, even
// for n = 0: TAPs doomed by another process of the instance go too.
func (r *reaper) cycle(ctx context.Context, b *Bridge, c conn, n int) error {
	b.hook.at(hookReaping)
	var batch rtnl.Batch
	batch.DeleteGroup(b.group)
	res, _ := c.Exec(ctx, &batch)
	err := realErrs(res)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Cycles++
	if err != nil {
		r.stats.Failed += n
		r.stats.LastErr = fmt.Errorf("delete doomed TAPs: %w", err)
		return r.stats.LastErr
	}
	r.stats.Reaped += n
	r.stats.LastErr = nil
	return nil
}

// flush deletes every doomed TAP now, on the caller's goroutine, and
// tells an idle goroutine that it has nothing left to wait for.
func (r *reaper) flush(ctx context.Context, b *Bridge) error {
	r.mu.Lock()
	n := r.pending
	r.pending = 0
	r.mu.Unlock()
	err := r.cycle(ctx, b, b.conn, n)
	select {
	case r.full <- struct{}{}:
	default:
	}
	return err
}

// stop flushes, then waits for the goroutine, if one runs, to see that
// nothing is left and end.
func (r *reaper) stop(ctx context.Context, b *Bridge) error {
	err := r.flush(ctx, b)
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("stop background deletion: %w", ctx.Err())
		}
	}
	return err
}

// Flush deletes every doomed TAP of the instance now, on the caller's
// goroutine, and returns the error of that deletion: every Delete that
// returned before Flush was called is then complete. It also deletes TAPs
// doomed by other processes of the instance.
func (b *Bridge) Flush(ctx context.Context) error {
	return b.reaper.flush(ctx, b)
}

// Stats returns the background deletion's counters.
func (b *Bridge) Stats() ReaperStats {
	r := &b.reaper
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Queued = r.pending
	return s
}

// StartReaper makes Delete asynchronous, as it is by default unless
// Config.SyncDelete is set: Delete dooms the TAPs (they carry no traffic
// and have no FDB entry when it returns) and the background deletion
// deletes them, after Config.ReapInterval or when Config.ReapBatch VMs
// wait. Calling it on an asynchronous Bridge is a no-op.
func (b *Bridge) StartReaper() {
	b.reaper.mu.Lock()
	b.reaper.sync = false
	b.reaper.mu.Unlock()
}

// StopReaper makes Delete synchronous (as Config.SyncDelete does): it
// first deletes what is doomed and waits for the background deletion to
// end, and returns the error of that last deletion. Calling it on a
// synchronous Bridge only flushes.
func (b *Bridge) StopReaper(ctx context.Context) error {
	b.reaper.mu.Lock()
	b.reaper.sync = true
	b.reaper.mu.Unlock()
	return b.reaper.stop(ctx, b)
}
