//go:build !linux

package tap

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errNotLinux is what every operation on a device returns off Linux.
var errNotLinux = fmt.Errorf("TUN/TAP devices need Linux, this is %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Create fails off Linux with an error wrapping errors.ErrUnsupported.
func Create(name string, o *Options) (*Device, error) {
	return nil, fmt.Errorf("tap %s: %w", name, errNotLinux)
}

// Open fails off Linux with an error wrapping errors.ErrUnsupported.
func Open(name string, o *Options) (*Device, error) {
	return nil, fmt.Errorf("tap %s: %w", name, errNotLinux)
}

// OpenFiles fails off Linux with an error wrapping errors.ErrUnsupported.
func OpenFiles(netNS, n int) ([]*os.File, error) {
	return nil, fmt.Errorf("open /dev/net/tun: %w", errNotLinux)
}

// SetPersist fails off Linux with an error wrapping errors.ErrUnsupported.
func (d *Device) SetPersist(on bool) error {
	return fmt.Errorf("tap %s: %w", d.name, errNotLinux)
}
