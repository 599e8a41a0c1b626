package flock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of the helper process.
const (
	envHelper = "FLOCK_TEST_HELPER" // "hold" or "try"
	envPath   = "FLOCK_TEST_PATH"
	envMode   = "FLOCK_TEST_MODE" // "exclusive" or "shared"
)

// TestHelperProcess is not a real test: it is run in a child process by
// helperCommand.
//
// In "hold" mode it takes the lock, prints "locked" and waits for stdin to
// be closed (or to be killed). In "try" mode it prints the result of
// TryLock.
func TestHelperProcess(t *testing.T) {
	action := os.Getenv(envHelper)
	if action == "" {
		return
	}
	mode := Exclusive
	if os.Getenv(envMode) == Shared.String() {
		mode = Shared
	}
	l := New(os.Getenv(envPath), mode)
	ctx := context.Background()
	switch action {
	case "hold":
		if err := l.Lock(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
	case "try":
		ok, err := l.TryLock(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ok)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", envHelper, action)
		os.Exit(2)
	}
	os.Exit(0)
}

func helperCommand(t *testing.T, action, path string, mode Mode) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(),
		envHelper+"="+action,
		envPath+"="+path,
		envMode+"="+mode.String(),
		// Skip the race detector's default 1s sleep at exit.
		"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0",
	)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestOtherProcessHolds(t *testing.T) {
	tests := []struct {
		child, parent Mode
		want          bool
	}{
		{Exclusive, Exclusive, false},
		{Exclusive, Shared, false},
		{Shared, Exclusive, false},
		{Shared, Shared, true},
	}
	for _, tt := range tests {
		t.Run(tt.child.String()+"/"+tt.parent.String(), func(t *testing.T) {
			path := lockPath(t)
			cmd := helperCommand(t, "hold", path, tt.child)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatalf("Start() = %v, want nil", err)
			}
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Kill()
					cmd.Wait()
				}
			})
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if line != "locked\n" || err != nil {
				t.Fatalf("helper ReadString() = %q, %v, want %q, nil", line, err, "locked\n")
			}

			l := New(path, tt.parent)
			checkTryLock(t, l, tt.want)
			if tt.want {
				mustUnlock(t, l)
			} else {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
				defer cancel()
				if err := l.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Lock() = %v, want %v", err, context.DeadlineExceeded)
				}
			}

			// Wait in Lock while the child is killed.
			done := make(chan error, 1)
			go func() { done <- New(path, Exclusive).Lock(t.Context()) }()
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("Kill() = %v, want nil", err)
			}
			cmd.Wait()
			if err := <-done; err != nil {
				t.Fatalf("Lock() after child exit = %v, want nil", err)
			}
		})
	}
}

func TestOtherProcessTries(t *testing.T) {
	tests := []struct {
		parent, child Mode
		want          bool
	}{
		{Exclusive, Exclusive, false},
		{Exclusive, Shared, false},
		{Shared, Exclusive, false},
		{Shared, Shared, true},
	}
	for _, tt := range tests {
		t.Run(tt.parent.String()+"/"+tt.child.String(), func(t *testing.T) {
			path := lockPath(t)
			l := New(path, tt.parent)
			mustLock(t, l)
			out, err := helperCommand(t, "try", path, tt.child).Output()
			want := fmt.Sprintln(tt.want)
			if string(out) != want || err != nil {
				t.Fatalf("helper TryLock output = %q, %v, want %q, nil", out, err, want)
			}
			mustUnlock(t, l)

			out, err = helperCommand(t, "try", path, tt.child).Output()
			if string(out) != "true\n" || err != nil {
				t.Fatalf("helper TryLock output after Unlock = %q, %v, want %q, nil", out, err, "true\n")
			}
		})
	}
}

func TestOpenError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(file, "lock")
	l := New(path, Exclusive)

	err := l.Lock(t.Context())
	var pe *fs.PathError
	if !errors.Is(err, unix.ENOTDIR) || !errors.As(err, &pe) || pe.Op != "open" || pe.Path != path {
		t.Fatalf("Lock() = %v, want *fs.PathError{Op: open, Path: %q, Err: ENOTDIR}", err, path)
	}
	if ok, err := l.TryLock(t.Context()); ok || !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("TryLock() = %v, %v, want false, ENOTDIR", ok, err)
	}
	mustUnlock(t, l)
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestNoFDLeak(t *testing.T) {
	path := lockPath(t)
	countFDs(t) // let the runtime set up anything it opens lazily
	before := countFDs(t)

	for _, mode := range []Mode{Exclusive, Shared} {
		for range 10 {
			l := New(path, mode)
			mustLock(t, l)
			if mode == Shared {
				mustLock(t, l)
				mustUnlock(t, l)
			}
			mustUnlock(t, l)

			// Busy TryLock and cancelled Lock against another instance.
			holder := New(path, Exclusive)
			mustLock(t, holder)
			checkTryLock(t, l, false)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
			if err := l.Lock(ctx); err == nil {
				t.Fatalf("Lock() = nil, want error")
			}
			cancel()
			mustUnlock(t, holder)
		}
	}
	// Failed opens.
	bad := New(filepath.Join(path, "sub", "lock"), Exclusive)
	if err := bad.Lock(t.Context()); err == nil {
		t.Fatalf("Lock() = nil, want error")
	}

	if after := countFDs(t); after != before {
		t.Errorf("open fds = %d, want %d", after, before)
	}
}
