package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a long-running process the test started (dnsmasq, QEMU). It is
// killed by its pid when the test ends, and by the kernel if the test
// binary dies first.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer   // standard output and error, interleaved
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid once done is closed
}

// startProc starts argv with its output captured. t.Cleanup kills it (by
// its own pid, through cmd.Process) and reaps it, even when the test fails.
func startProc(t testing.TB, name string, argv ...string) (*proc, error) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// If the test binary dies (a -timeout panic, say), cleanups do not
	// run: the kernel kills the child instead.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		// PR_SET_PDEATHSIG fires when the *thread* that forked the child
		// exits, not the process (prctl(2)). The Go runtime destroys a
		// thread when a goroutine exits while locked to it, as
		// testutil.NetNS's goroutine does; keeping this thread locked until
		// the child is reaped means no such goroutine can ever get it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	t.Cleanup(p.kill)
	return p, nil
}

// kill kills the process if it still runs and waits until it is reaped.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	// An error here means it exited on its own meanwhile: done follows.
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait waits up to timeout for the process to exit by itself and reports
// whether it did.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitOutput waits up to timeout until the process's output contains s. It
// fails early if the process exits.
func (p *proc) waitOutput(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.out.String(), s) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before printing %q", p.name, p.err, s)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not print %q within %v", p.name, s, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer that the exec copier goroutines write to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
