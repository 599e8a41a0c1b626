//go:build !linux

package tap

import (
	"errors"
	"fmt"
)

// Create reports that TAP devices exist only on Linux.
func Create(name string, o *Options) (*Device, error) {
	return nil, fmt.Errorf("tap %s: %w", name, errors.ErrUnsupported)
}

// Open reports that TAP devices exist only on Linux.
func Open(name string, o *Options) (*Device, error) {
	return nil, fmt.Errorf("tap %s: %w", name, errors.ErrUnsupported)
}

// SetPersist reports that TAP devices exist only on Linux.
func (d *Device) SetPersist(on bool) error {
	return fmt.Errorf("tap %s: %w", d.name, errors.ErrUnsupported)
}
