//go:build unix

package flock

import (
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openFile opens path for locking, creating it and its parent directory
// if needed. The caller owns the returned descriptor.
func openFile(path string) (int, error) {
	fd, err := open(path)
	if err == unix.ENOENT {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return -1, err
		}
		fd, err = open(path)
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

func open(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// tryLock attempts a non-blocking flock on fd in mode m. It reports
// (false, nil) if the file is locked in a conflicting way.
func tryLock(fd int, path string, m Mode) (bool, error) {
	how := unix.LOCK_EX
	if m == Shared {
		how = unix.LOCK_SH
	}
	switch err := flock(fd, how|unix.LOCK_NB); err {
	case nil:
		return true, nil
	case unix.EWOULDBLOCK:
		return false, nil
	default:
		return false, &fs.PathError{Op: "flock", Path: path, Err: err}
	}
}

// unlockFile releases the lock on fd and closes it. The explicit LOCK_UN
// releases the lock even if a concurrent fork briefly duplicated fd into
// a child that has not exec'd yet.
func unlockFile(fd int, path string) error {
	err := flock(fd, unix.LOCK_UN)
	if err != nil {
		err = &fs.PathError{Op: "flock", Path: path, Err: err}
	}
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		err = &fs.PathError{Op: "close", Path: path, Err: cerr}
	}
	return err
}

func closeFile(fd int) {
	unix.Close(fd)
}

func flock(fd, how int) error {
	for {
		if err := unix.Flock(fd, how); err != unix.EINTR {
			return err
		}
	}
}
