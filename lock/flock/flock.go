package flock

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/tapbridge/tapbridge/lock"
)

// Mode selects how a Lock is held.
type Mode int

const (
	// Exclusive admits a single holder: one goroutine of one Lock value,
	// and no other Lock value or process on the same file. It is the
	// zero Mode.
	Exclusive Mode = iota

	// Shared admits any number of concurrent holders. Within one Lock all
	// goroutines share a single LOCK_SH hold on the file; across Lock
	// values and processes it coexists with other Shared holders and
	// excludes Exclusive ones. flock(2) does not queue waiters, so a
	// steady stream of Shared holders can starve an Exclusive waiter.
	Shared
)

// String returns "exclusive" or "shared".
func (m Mode) String() string {
	switch m {
	case Exclusive:
		return "exclusive"
	case Shared:
		return "shared"
	default:
		return fmt.Sprintf("Mode(%d)", int(m))
	}
}

// Backoff bounds for polling a busy lock file.
const (
	minDelay = time.Millisecond
	maxDelay = 50 * time.Millisecond
)

var _ lock.Locker = (*Lock)(nil)

// A Lock is a flock(2)-based lock on a file. Create one with New.
//
// A Lock is safe for concurrent use by multiple goroutines. It owns the
// file descriptor it opens: the descriptor is opened (with O_CLOEXEC, so
// child processes do not inherit it) when the Lock goes from unheld to
// held and closed when it goes back to unheld. An unheld Lock holds no
// resources and need not be closed.
//
// Holds are not tied to goroutines: any goroutine may Unlock a hold taken
// by another, as with sync.Mutex.
type Lock struct {
	path string
	mode Mode

	// sem is a one-slot semaphore that may be acquired while selecting
	// on ctx.Done. Its holder is the only goroutine that may take the
	// file lock. In Exclusive mode it is also kept for the duration of
	// the hold; in Shared mode it is released once the hold is in place.
	sem chan struct{}

	mu sync.Mutex // guards fd and n
	fd int        // open lock file; valid while n > 0
	n  int        // number of holders
}

// New returns a Lock on the file at path held in the given mode. It does
// no I/O: the file and its parent directories are created on first
// acquisition (with permissions 0600 and 0700 respectively) if they do not
// exist.
//
// New panics if mode is neither Exclusive nor Shared.
func New(path string, mode Mode) *Lock {
	if mode != Exclusive && mode != Shared {
		panic("flock: invalid mode " + mode.String())
	}
	return &Lock{path: path, mode: mode, sem: make(chan struct{}, 1), fd: -1}
}

// Lock blocks until l is held in its mode or ctx is done.
//
// In Exclusive mode, goroutines calling Lock queue behind the current
// holder. In Shared mode, Lock on an already-held Lock only increments a
// counter and makes no system call.
//
// Waiting on another Lock value or process is done by polling with
// LOCK_NB and a short backoff, because a blocking flock cannot be
// cancelled. If ctx is done first, Lock returns an *fs.PathError wrapping
// ctx.Err() and holds nothing; if ctx is already done on entry, Lock
// fails without acquiring. Other errors are *fs.PathError values with
// Op "open" or "flock" (or the error of creating the parent directory).
func (l *Lock) Lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return l.ctxError(err)
	}
	if l.addShared() {
		return nil
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return l.ctxError(ctx.Err())
	}
	_, err := l.acquire(ctx, true)
	return err
}

// TryLock acquires l without waiting. It returns (true, nil) if l is now
// held, (false, nil) if acquiring it would have to wait (the file is
// locked in a conflicting way by another Lock value or process, another
// goroutine holds l in Exclusive mode, or another goroutine is in the
// middle of acquiring l), and (false, err) with err as described for Lock
// on any other failure.
//
// ctx is not used; it is accepted to satisfy lock.Locker.
func (l *Lock) TryLock(ctx context.Context) (bool, error) {
	if l.addShared() {
		return true, nil
	}
	select {
	case l.sem <- struct{}{}:
	default:
		return false, nil
	}
	return l.acquire(ctx, false)
}

// Unlock releases one hold on l. When the last holder releases it, the
// file lock is released and the file descriptor closed. The hold is
// released even if an error is returned; errors are *fs.PathError
// values with Op "flock" or "close".
//
// Unlock on a Lock that is not held does nothing and returns nil, so a
// redundant Unlock is harmless. It never blocks waiting for other
// holders. ctx is not used; it is accepted to satisfy lock.Locker.
func (l *Lock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	if l.n == 0 {
		l.mu.Unlock()
		return nil
	}
	l.n--
	if l.n > 0 {
		l.mu.Unlock()
		return nil
	}
	fd := l.fd
	l.fd = -1
	err := unlockFile(fd, l.path)
	l.mu.Unlock()

	if l.mode == Exclusive {
		<-l.sem
	}
	return err
}

// addShared takes another hold on l if it is in Shared mode and already
// held, and reports whether it did.
func (l *Lock) addShared() bool {
	if l.mode != Shared {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return false
	}
	l.n++
	return true
}

// acquire takes the file lock. The caller must hold l.sem; acquire
// releases it unless l is now held in Exclusive mode. If wait is true,
// acquire polls until the lock is taken or ctx is done.
func (l *Lock) acquire(ctx context.Context, wait bool) (bool, error) {
	ok, err := l.acquireFile(ctx, wait)
	if !ok || l.mode == Shared {
		<-l.sem
	}
	return ok, err
}

func (l *Lock) acquireFile(ctx context.Context, wait bool) (bool, error) {
	// A Shared hold may have been set up while we waited for sem.
	if l.addShared() {
		return true, nil
	}
	fd, err := openFile(l.path)
	if err != nil {
		return false, err
	}
	delay := minDelay
	for {
		ok, err := tryLock(fd, l.path, l.mode)
		if ok {
			l.mu.Lock()
			l.fd, l.n = fd, 1
			l.mu.Unlock()
			return true, nil
		}
		if err != nil || !wait {
			closeFile(fd)
			return false, err
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			closeFile(fd)
			return false, l.ctxError(ctx.Err())
		}
		delay = min(2*delay, maxDelay)
	}
}

func (l *Lock) ctxError(err error) error {
	return &fs.PathError{Op: "flock", Path: l.path, Err: err}
}
