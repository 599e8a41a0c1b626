//go:build !linux

package netns

import (
	"errors"
	"fmt"
)

// Do runs fn when fd <= 0; network namespaces exist only on Linux.
func Do(fd int, fn func() error) error {
	if fd <= 0 {
		return fn()
	}
	return fmt.Errorf("network namespaces: %w", errors.ErrUnsupported)
}

// Open reports that network namespaces exist only on Linux.
func Open(path string) (int, error) {
	return -1, fmt.Errorf("open network namespace %s: %w", path, errors.ErrUnsupported)
}
