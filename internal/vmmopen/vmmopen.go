package vmmopen

import (
	"errors"
	"os"
	"strings"
	"syscall"
)

// The versions reproduced.
const (
	CloudHypervisorVersion = "v53.0"
	FirecrackerVersion     = "v1.16.0"
)

// Sentinels for the checks the VMMs make themselves (not the kernel's).
var (
	// ErrMultiQueueNoTapSupport: Cloud Hypervisor wants a multi-queue TAP
	// (queue pairs > 1) and tun_flags says the TAP is not one.
	ErrMultiQueueNoTapSupport = errors.New("Error related to the multiqueue support (no support TAP side)")
	// ErrMultiQueueNoDeviceSupport: the TAP is multi-queue and Cloud
	// Hypervisor wants a single queue pair.
	ErrMultiQueueNoDeviceSupport = errors.New("Error related to the multiqueue support (no support device side)")
	// ErrConfig: the VMM refused its configuration before touching the
	// TAP (a --net syntax or validation error, a bad JSON body).
	ErrConfig = errors.New("configuration refused")
)

// Error is a failed open as the VMM reports it.
type Error struct {
	VMM   string   // "cloud-hypervisor" or "firecracker"
	Step  string   // the syscall or check that failed, "TUNSETIFF" say
	Chain []string // the VMM's error messages, outermost first
	Err   error    // a syscall.Errno from the kernel, or a sentinel above
}

// Error formats the VMM's message chain, ending in the cause as Rust
// prints an io::Error ("Invalid argument (os error 22)").
func (e *Error) Error() string {
	parts := append([]string{e.VMM}, e.Chain...)
	return strings.Join(append(parts, rustError(e.Err)), ": ")
}

func (e *Error) Unwrap() error { return e.Err }

// rustError formats err as Rust's std::io::Error Display does for an OS
// error: strerror, then " (os error N)".
func rustError(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		if s != "" {
			s = strings.ToUpper(s[:1]) + s[1:]
		}
		return s + " (os error " + itoa(int(errno)) + ")"
	}
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Tap is a TAP as a VMM holds it open: one file per queue pair.
type Tap struct {
	Name  string
	Files []*os.File
	// Steps lists, in order, the syscalls and checks made, as
	// "TUNSETIFF flags=0x5002": what the VMM required of the TAP.
	Steps []string
}

// Close closes every queue file.
func (t *Tap) Close() error {
	var errs []error
	for _, f := range t.Files {
		errs = append(errs, f.Close())
	}
	t.Files = nil
	return errors.Join(errs...)
}
