package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// requireSupported skips the test where flock is not implemented.
func requireSupported(t *testing.T) {
	t.Helper()
	l := New(filepath.Join(t.TempDir(), "probe"), Exclusive)
	ok, err := l.TryLock(t.Context())
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("TryLock() = %v, %v: flock unsupported on %s", ok, err, runtime.GOOS)
	}
	if !ok || err != nil {
		t.Fatalf("TryLock() = %v, %v, want true, nil", ok, err)
	}
	mustUnlock(t, l)
}

func lockPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "lock")
}

func mustLock(t *testing.T, l *Lock) {
	t.Helper()
	if err := l.Lock(t.Context()); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
}

func mustUnlock(t *testing.T, l *Lock) {
	t.Helper()
	if err := l.Unlock(t.Context()); err != nil {
		t.Fatalf("Unlock() = %v, want nil", err)
	}
}

func checkTryLock(t *testing.T, l *Lock, want bool) {
	t.Helper()
	ok, err := l.TryLock(t.Context())
	if ok != want || err != nil {
		t.Fatalf("TryLock() = %v, %v, want %v, nil", ok, err, want)
	}
}

func TestModeString(t *testing.T) {
	tests := []struct {
		m    Mode
		want string
	}{
		{Exclusive, "exclusive"},
		{Shared, "shared"},
		{Mode(7), "Mode(7)"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(tt.m), got, tt.want)
		}
	}
}

func TestNewInvalidMode(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Errorf("New(path, Mode(7)) did not panic, want panic")
		}
	}()
	New("x", Mode(7))
}

func TestExclusiveGoroutines(t *testing.T) {
	requireSupported(t)
	l := New(lockPath(t), Exclusive)

	const goroutines, iterations = 8, 50
	var inside atomic.Int32
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range iterations {
				if err := l.Lock(t.Context()); err != nil {
					t.Errorf("Lock() = %v, want nil", err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("holders after Lock() = %d, want 1", n)
				}
				runtime.Gosched()
				inside.Add(-1)
				if err := l.Unlock(t.Context()); err != nil {
					t.Errorf("Unlock() = %v, want nil", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestTryLockSameLock(t *testing.T) {
	requireSupported(t)
	tests := []struct {
		mode Mode
		want bool
	}{
		{Exclusive, false},
		{Shared, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			l := New(lockPath(t), tt.mode)
			mustLock(t, l)
			checkTryLock(t, l, tt.want)
			if tt.want {
				mustUnlock(t, l)
			}
			mustUnlock(t, l)
			checkTryLock(t, l, true)
			mustUnlock(t, l)
		})
	}
}

func TestInstances(t *testing.T) {
	requireSupported(t)
	tests := []struct {
		first, second Mode
		want          bool
	}{
		{Exclusive, Exclusive, false},
		{Exclusive, Shared, false},
		{Shared, Exclusive, false},
		{Shared, Shared, true},
	}
	for _, tt := range tests {
		t.Run(tt.first.String()+"/"+tt.second.String(), func(t *testing.T) {
			path := lockPath(t)
			a, b := New(path, tt.first), New(path, tt.second)
			mustLock(t, a)
			checkTryLock(t, b, tt.want)
			if tt.want {
				mustUnlock(t, b)
			}
			mustUnlock(t, a)
			checkTryLock(t, b, true)
			mustUnlock(t, b)
		})
	}
}

func TestSharedHolders(t *testing.T) {
	requireSupported(t)
	path := lockPath(t)
	shared := New(path, Shared)
	excl := New(path, Exclusive)

	const holders = 10
	var locked sync.WaitGroup
	locked.Add(holders)
	release := make(chan struct{})
	var unlocked sync.WaitGroup
	for range holders {
		unlocked.Go(func() {
			if err := shared.Lock(t.Context()); err != nil {
				t.Errorf("Lock() = %v, want nil", err)
				locked.Done()
				return
			}
			locked.Done()
			<-release
			if err := shared.Unlock(t.Context()); err != nil {
				t.Errorf("Unlock() = %v, want nil", err)
			}
		})
	}
	// All holders hold the lock at the same time here.
	locked.Wait()
	checkTryLock(t, excl, false)

	// One extra holder, released after all the others.
	mustLock(t, shared)
	close(release)
	unlocked.Wait()
	checkTryLock(t, excl, false)

	mustUnlock(t, shared)
	checkTryLock(t, excl, true)
	checkTryLock(t, shared, false)
	mustUnlock(t, excl)
}

func TestLockWaits(t *testing.T) {
	requireSupported(t)
	tests := []struct {
		name   string
		waiter Mode
		same   bool // waiter and holder are the same *Lock
	}{
		{"same lock", Exclusive, true},
		{"other exclusive", Exclusive, false},
		{"other shared", Shared, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := lockPath(t)
			holder := New(path, Exclusive)
			waiter := holder
			if !tt.same {
				waiter = New(path, tt.waiter)
			}
			mustLock(t, holder)
			done := make(chan error, 1)
			go func() { done <- waiter.Lock(t.Context()) }()

			select {
			case err := <-done:
				t.Fatalf("Lock() = %v while held, want it to block", err)
			case <-time.After(20 * time.Millisecond):
			}
			mustUnlock(t, holder)
			if err := <-done; err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			mustUnlock(t, waiter)
		})
	}
}

func TestLockContextDone(t *testing.T) {
	requireSupported(t)
	tests := []struct {
		name   string
		waiter Mode
		same   bool // waiter and holder are the same *Lock
		cancel bool // cancel instead of letting a deadline pass
		want   error
	}{
		{"same lock/deadline", Exclusive, true, false, context.DeadlineExceeded},
		{"same lock/cancel", Exclusive, true, true, context.Canceled},
		{"other exclusive/deadline", Exclusive, false, false, context.DeadlineExceeded},
		{"other exclusive/cancel", Exclusive, false, true, context.Canceled},
		{"other shared/deadline", Shared, false, false, context.DeadlineExceeded},
		{"other shared/cancel", Shared, false, true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := lockPath(t)
			holder := New(path, Exclusive)
			waiter := holder
			if !tt.same {
				waiter = New(path, tt.waiter)
			}
			mustLock(t, holder)

			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
			defer cancel()
			if tt.cancel {
				time.AfterFunc(10*time.Millisecond, cancel)
			}
			err := waiter.Lock(ctx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Lock() = %v, want %v", err, tt.want)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != path {
				t.Errorf("Lock() = %#v, want *fs.PathError with Path %q", err, path)
			}

			// The failed Lock holds nothing, in the process or on the file.
			mustUnlock(t, holder)
			checkTryLock(t, waiter, true)
			mustUnlock(t, waiter)
			other := New(path, Exclusive)
			checkTryLock(t, other, true)
			mustUnlock(t, other)
		})
	}
}

func TestLockContextAlreadyDone(t *testing.T) {
	requireSupported(t)
	for _, mode := range []Mode{Exclusive, Shared} {
		t.Run(mode.String(), func(t *testing.T) {
			path := lockPath(t)
			l := New(path, mode)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := l.Lock(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Lock(cancelled) = %v, want %v", err, context.Canceled)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(%q) = %v, want %v", path, err, fs.ErrNotExist)
			}
			other := New(path, Exclusive)
			checkTryLock(t, other, true)
			mustUnlock(t, other)
		})
	}
}

func TestCreatesFileAndDirs(t *testing.T) {
	requireSupported(t)
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "c", "lock")
	l := New(path, Exclusive)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(%q) after New = %v, want %v", path, err, fs.ErrNotExist)
	}
	mustLock(t, l)
	mustUnlock(t, l)

	for _, dir := range []string{"a", "a/b", "a/b/c"} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Fatalf("Stat(%q) = %v, want nil", dir, err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("Stat(%q).Mode() = %v, want %v", dir, fi.Mode(), fs.ModeDir|0o700)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("Stat(%q) = %v, want nil", path, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("Stat(%q).Mode() = %v, want %v", path, fi.Mode(), fs.FileMode(0o600))
	}

	// An existing file is reused.
	mustLock(t, l)
	mustUnlock(t, l)
}

func TestUnlockWithoutLock(t *testing.T) {
	requireSupported(t)
	for _, mode := range []Mode{Exclusive, Shared} {
		t.Run(mode.String(), func(t *testing.T) {
			path := lockPath(t)
			l := New(path, mode)
			mustUnlock(t, l) // never locked

			mustLock(t, l)
			mustUnlock(t, l)
			mustUnlock(t, l) // double unlock

			// The lock is still usable and not held.
			other := New(path, Exclusive)
			checkTryLock(t, other, true)
			mustUnlock(t, other)
			checkTryLock(t, l, true)
			mustUnlock(t, l)
		})
	}
}
