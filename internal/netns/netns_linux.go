package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on a fresh goroutine whose OS thread has entered the network
// namespace referred to by fd, then switches the thread back and returns fn's
// error. A negative or zero fd runs fn on the calling goroutine in the
// caller's namespace. Do borrows fd and does not close it.
//
// Errors from entering the namespace wrap the setns errno (EBADF, EINVAL for
// an fd that is not a network namespace, EPERM without CAP_SYS_ADMIN). If the
// thread cannot be switched back, that error is joined with fn's and the
// thread is discarded rather than returned to the scheduler.
func Do(fd int, fn func() error) error {
	if fd <= 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		errc <- doLocked(fd, fn)
	}()
	return <-errc
}

// doLocked must run on its own goroutine: it may return with the thread still
// locked, which makes the runtime terminate the thread when the goroutine exits.
func doLocked(fd int, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return &os.PathError{Op: "open", Path: "/proc/thread-self/ns/net", Err: err}
	}
	defer unix.Close(orig)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", os.NewSyscallError("setns", err))
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Keep the thread locked: the runtime discards it with the goroutine.
		return errors.Join(ferr, fmt.Errorf("restore network namespace: %w", os.NewSyscallError("setns", err)))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Open opens a network namespace by path (for example /run/netns/NAME or
// /proc/PID/ns/net) and returns its fd, close-on-exec. The caller owns the fd.
// It fails with an error satisfying errors.Is(err, fs.ErrNotExist) if the path
// does not exist and with EINVAL if the path is not a network namespace.
func Open(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// NS_GET_NSTYPE fails with ENOTTY on anything that is not a namespace file.
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err == nil && typ != unix.CLONE_NEWNET {
		err = unix.EINVAL
	}
	if err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("not a network namespace: %w", err)}
	}
	return fd, nil
}

// New makes a network namespace and returns an fd of it, close-on-exec;
// the caller owns the fd. The namespace lives while the fd (or a socket or
// device in it) is open. unshare acts on the calling thread, so it runs on
// a fresh goroutine with its OS thread locked, which then switches back to
// the namespace it came from before it unlocks; if it cannot, it stays
// locked and the runtime destroys the thread. Switching back matters even
// so: a goroutine that lands on the main thread cannot have that thread
// destroyed (the runtime wedges it instead), and the main thread would hold
// the namespace for the life of the process. It fails with an error
// satisfying errors.Is(err, os.ErrPermission) without CAP_SYS_ADMIN.
func New() (int, error) {
	type result struct {
		fd  int
		err error
	}
	c := make(chan result, 1)
	go func() {
		fd, err := unshareLocked()
		c <- result{fd, err}
	}()
	r := <-c
	return r.fd, r.err
}

// unshareLocked must run on its own goroutine, as doLocked.
func unshareLocked() (int, error) {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return -1, &os.PathError{Op: "open", Path: "/proc/thread-self/ns/net", Err: err}
	}
	defer unix.Close(orig)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, os.NewSyscallError("unshare", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		err = &os.PathError{Op: "open", Path: "/proc/thread-self/ns/net", Err: err}
	}
	if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
		// Keep the thread locked: the runtime discards it with the goroutine.
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, errors.Join(err, fmt.Errorf("restore network namespace: %w", os.NewSyscallError("setns", rerr)))
	}
	runtime.UnlockOSThread()
	if err != nil {
		return -1, err
	}
	return fd, nil
}
