//go:build !unix

package flock

import (
	"errors"
	"io/fs"
)

func openFile(path string) (int, error) {
	return -1, &fs.PathError{Op: "open", Path: path, Err: errors.ErrUnsupported}
}

func tryLock(fd int, path string, m Mode) (bool, error) {
	return false, &fs.PathError{Op: "flock", Path: path, Err: errors.ErrUnsupported}
}

func unlockFile(fd int, path string) error {
	return &fs.PathError{Op: "flock", Path: path, Err: errors.ErrUnsupported}
}

func closeFile(fd int) {}
