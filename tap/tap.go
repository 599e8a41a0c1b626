package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

const (
	// MaxNameLen is the longest interface name the kernel accepts
	// (IFNAMSIZ - 1). Longer names are silently truncated by some paths, so
	// they are refused up front.
	MaxNameLen = 15

	// MaxQueues is the kernel's limit on queues per TAP (MAX_TAP_QUEUES).
	MaxQueues = 256
)

var (
	// ErrInvalidName is wrapped by errors for names the kernel would refuse,
	// truncate or treat as a template.
	ErrInvalidName = errors.New("invalid interface name")

	// ErrInvalidOptions is wrapped by errors for option combinations that
	// cannot work, such as a queue count out of range.
	ErrInvalidOptions = errors.New("invalid TAP options")

	// ErrNotPersistent is returned by Open when the name does not belong to
	// an existing persistent TAP.
	ErrNotPersistent = errors.New("not an existing persistent TAP")
)

// Options configures Create and Open. A nil *Options means the zero value.
type Options struct {
	// MultiQueue sets IFF_MULTI_QUEUE. A VMM that reopens the TAP must use
	// the same setting or the kernel refuses it with EINVAL. Required when
	// Queues > 1.
	MultiQueue bool

	// Queues is the number of queue files to open and attach. Zero means 1.
	// At most MaxQueues.
	Queues int

	// VnetHdr sets IFF_VNET_HDR: every frame carries a virtio-net header.
	// Cloud Hypervisor, Firecracker and QEMU all expect it.
	VnetHdr bool

	// Exclusive sets IFF_TUN_EXCL: Create fails with EBUSY instead of
	// attaching when the name exists. Ignored by Open.
	Exclusive bool

	// Persist makes the device outlive its queue files (TUNSETPERSIST).
	// Ignored by Open.
	Persist bool

	// Owner, if set, restricts attaching to that uid (TUNSETOWNER). Nil
	// leaves the owner unset. Ignored by Open.
	Owner *uint32

	// Group, if set, restricts attaching to that gid (TUNSETGROUP). Nil
	// leaves the group unset. Ignored by Open.
	Group *uint32

	// NetNS is an fd of the network namespace to create or open the TAP in.
	// Zero means the calling thread's namespace; negative values are
	// refused. The fd is borrowed.
	NetNS int

	// Files, if set, are files of /dev/net/tun opened beforehand (see
	// OpenFiles), one per queue, used instead of opening new ones; the
	// namespace they were opened in decides the TAP's, and NetNS is
	// ignored. Create and Open take ownership of them: the Device owns them
	// on success, and they are closed on failure.
	Files []*os.File
}

// Flags are the TUN/TAP flags the kernel reports for an attached device.
type Flags struct {
	TUN        bool // IFF_TUN: a layer 3 device; false means a TAP
	NoPI       bool // IFF_NO_PI: frames carry no packet-information prefix
	VnetHdr    bool // IFF_VNET_HDR
	MultiQueue bool // IFF_MULTI_QUEUE
	Persist    bool // IFF_PERSIST
}

// Device is a TUN/TAP device with the queue files this process opened on it.
//
// Its methods are safe for concurrent use. The queue files themselves follow
// os.File's rules.
type Device struct {
	name  string
	flags Flags

	mu    sync.Mutex
	files []*os.File
}

// Name returns the interface name.
func (d *Device) Name() string { return d.name }

// Flags returns the flags the kernel reported when the first queue attached,
// with Persist updated by SetPersist.
func (d *Device) Flags() Flags {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flags
}

// Queues returns the queue files the Device still owns, one per attached
// queue. They stay owned by d: do not close them, use Release to take them.
func (d *Device) Queues() []*os.File {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*os.File(nil), d.files...)
}

// Release hands the queue files to the caller, who must close them, and
// leaves the Device owning nothing. Use it to pass fds to a VMM.
func (d *Device) Release() []*os.File {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.files
	d.files = nil
	return f
}

// Close closes the queue files the Device still owns. A non-persistent TAP
// is destroyed by the kernel when its last queue file closes; a persistent
// one survives. Close is idempotent.
func (d *Device) Close() error {
	var errs []error
	for _, f := range d.Release() {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ValidateName reports whether the kernel would accept name as is for a new
// interface: 1 to 15 bytes, none of '/', ':', '%', NUL or whitespace, and
// not "." or "..". The kernel applies the same rule (dev_valid_name in
// net/core/dev.c), except that it treats '%' as a template and truncates
// rather than refuses in some paths. Whitespace is the kernel's isspace
// (lib/ctype.c), which also matches the byte 0xA0 (Latin-1 no-break space):
// UTF-8 names containing U+00A0 or U+00E0 ('à') are refused with EINVAL. The
// error wraps ErrInvalidName and quotes the name.
func ValidateName(name string) error {
	var why string
	switch {
	case name == "":
		why = "empty"
	case len(name) > MaxNameLen:
		why = fmt.Sprintf("%d bytes, the limit is %d", len(name), MaxNameLen)
	case name == "." || name == "..":
		why = "reserved"
	default:
		for i := 0; i < len(name); i++ {
			switch c := name[i]; c {
			case '/', ':', '%', 0, ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
				why = fmt.Sprintf("contains %q", c)
			}
			if why != "" {
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
}

// queues validates o and returns the queue count it asks for.
func (o *Options) queues(name string) (int, error) {
	q := o.Queues
	if q == 0 {
		q = 1
	}
	if q < 1 || q > MaxQueues {
		return 0, fmt.Errorf("tap %s: %w: %d queues, want 1..%d", name, ErrInvalidOptions, o.Queues, MaxQueues)
	}
	if o.NetNS < 0 {
		return 0, fmt.Errorf("tap %s: %w: namespace fd %d", name, ErrInvalidOptions, o.NetNS)
	}
	if q > 1 && !o.MultiQueue {
		return 0, fmt.Errorf("tap %s: %w: %d queues need MultiQueue", name, ErrInvalidOptions, q)
	}
	return q, nil
}
