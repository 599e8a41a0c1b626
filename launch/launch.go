package launch

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/types"
)

// VMM names a VMM whose launch arguments this package renders.
type VMM string

// The VMMs. The first three are also hypervisor profiles (config); libvirt
// drives QEMU and opens TAPs the way QEMU does.
const (
	CloudHypervisor VMM = config.CloudHypervisor
	Firecracker     VMM = config.Firecracker
	QEMU            VMM = config.QEMU
	Libvirt         VMM = "libvirt"
)

// VMMs lists every VMM, in the order the documentation shows them.
var VMMs = []VMM{CloudHypervisor, Firecracker, QEMU, Libvirt}

const (
	// maxPairs is the kernel's limit on queues per TAP (MAX_TAP_QUEUES).
	maxPairs = 256
	// maxQueueSize is the largest virtio split-queue size.
	maxQueueSize = 32768
)

var (
	// ErrInvalid is wrapped by the errors for bad input: a nil record, a
	// record without TAP or MAC or with impossible queue counts, an unknown
	// VMM or profile, bad file descriptor numbers.
	ErrInvalid = errors.New("invalid launch input")

	// ErrIncompatible is wrapped when the VMM cannot open the NIC as it
	// was made: Firecracker and a multi-queue TAP, file descriptors for a
	// VMM that takes none, a queue size the VMM refuses.
	ErrIncompatible = errors.New("the VMM cannot open this TAP")
)

// NIC is one NIC to render.
type NIC struct {
	// Config is the record Config (or ConfigHandoff) returned. Required.
	Config *types.NetworkConfig

	// FDs, for a NIC made by ConfigHandoff, are its queue files' numbers
	// in the VMM's process, one per queue pair the profile opens. Nil
	// means the VMM opens the TAP by name.
	FDs []int

	// ID names the device where the VMM needs a name: QEMU's netdev id,
	// Firecracker's iface_id. Empty means "net0" (Render: "net<i>").
	ID string
}

// Options are the settings common to every NIC.
type Options struct {
	// Profile is the hypervisor profile the TAPs were made with
	// (config.Config.Hypervisor). Empty means config.CloudHypervisor, the
	// default of config.Config.
	Profile string

	// VhostOff turns vhost-net off: QEMU vhost=off, libvirt <driver
	// name='qemu'>. Set it where /dev/vhost-net is missing or not to be
	// used. The other VMMs have no vhost-net backend.
	VhostOff bool
}

// plan is a validated NIC: what every renderer needs.
type plan struct {
	tap       string
	mac       string // canonical lower-case form
	pairs     int    // queue pairs the VMM opens: all of them iff mq
	mq        bool
	queueSize int // 0: the VMM's default
	fds       []int
	id        string
	vhostOff  bool
}

// prepare validates n for vmm and decides the queue pairs.
func prepare(vmm VMM, n NIC, o *Options) (*plan, error) {
	if o == nil {
		o = &Options{}
	}
	switch vmm {
	case CloudHypervisor, Firecracker, QEMU, Libvirt:
	default:
		return nil, fmt.Errorf("launch: %w: VMM %q: want %s", ErrInvalid, vmm, vmmList())
	}
	profile := o.Profile
	switch profile {
	case "":
		profile = config.CloudHypervisor
	case config.CloudHypervisor, config.Firecracker, config.QEMU:
	default:
		return nil, fmt.Errorf("launch %s: %w: profile %q: want %q, %q or %q", vmm, ErrInvalid, o.Profile, config.CloudHypervisor, config.Firecracker, config.QEMU)
	}
	c := n.Config
	if c == nil {
		return nil, fmt.Errorf("launch %s: %w: no record", vmm, ErrInvalid)
	}
	if err := validName(c.Tap); err != nil {
		return nil, fmt.Errorf("launch %s: %w: record's TAP: %w", vmm, ErrInvalid, err)
	}
	mac, err := guestMAC(c.Mac)
	if err != nil {
		return nil, fmt.Errorf("launch %s %s: %w: record's MAC: %w", vmm, c.Tap, ErrInvalid, err)
	}
	if c.NumQueues < 2 || c.NumQueues%2 != 0 || c.NumQueues/2 > maxPairs {
		return nil, fmt.Errorf("launch %s %s: %w: record has %d virtio queues, want an even number from 2 to %d (2 per queue pair)", vmm, c.Tap, ErrInvalid, c.NumQueues, 2*maxPairs)
	}
	if q := c.QueueSize; q < 0 || q > maxQueueSize || q&(q-1) != 0 {
		return nil, fmt.Errorf("launch %s %s: %w: record's queue size %d, want a power of two up to %d (0: the VMM's default)", vmm, c.Tap, ErrInvalid, q, maxQueueSize)
	}
	p := &plan{tap: c.Tap, mac: mac, queueSize: c.QueueSize, id: n.ID, vhostOff: o.VhostOff}
	if p.id == "" {
		p.id = "net0"
	}
	if err := validID(p.id); err != nil {
		return nil, fmt.Errorf("launch %s %s: %w: device id: %w", vmm, c.Tap, ErrInvalid, err)
	}
	pairs := c.NumQueues / 2
	p.mq = config.MultiQueue(profile, pairs)
	p.pairs = 1
	if p.mq {
		p.pairs = pairs
	}
	if vmm == Firecracker && p.mq {
		// src/vmm/src/devices/virtio/net/tap.rs open_named: TUNSETIFF
		// without IFF_MULTI_QUEUE, which the kernel refuses on a
		// multi-queue TAP with EINVAL.
		return nil, fmt.Errorf("launch %s %s: %w: profile %s made it multi-queue (%d queue pairs), and Firecracker opens TAPs single-queue only: make it with the %s profile",
			vmm, c.Tap, ErrIncompatible, profile, pairs, config.Firecracker)
	}
	if n.FDs != nil {
		switch vmm {
		case Firecracker:
			return nil, fmt.Errorf("launch %s %s: %w: Firecracker takes a TAP by name (host_dev_name), not file descriptors: use Config, not ConfigHandoff", vmm, c.Tap, ErrIncompatible)
		case Libvirt:
			return nil, fmt.Errorf("launch %s %s: %w: libvirt opens the TAP itself (<target dev managed='no'>), it takes no file descriptors: use Config, not ConfigHandoff", vmm, c.Tap, ErrIncompatible)
		}
		if len(n.FDs) != p.pairs {
			return nil, fmt.Errorf("launch %s %s: %w: %d file descriptors for %d queue pairs (profile %s, multi-queue %v): want one per queue pair", vmm, c.Tap, ErrInvalid, len(n.FDs), p.pairs, profile, p.mq)
		}
		seen := make(map[int]bool, len(n.FDs))
		for _, fd := range n.FDs {
			// Cloud Hypervisor refuses 0..2 (vmm/src/config.rs
			// VnetReservedFd); they are stdio in every VMM.
			if fd <= 2 {
				return nil, fmt.Errorf("launch %s %s: %w: file descriptor %d: 0, 1 and 2 are standard input, output and error", vmm, c.Tap, ErrInvalid, fd)
			}
			if seen[fd] {
				return nil, fmt.Errorf("launch %s %s: %w: file descriptor %d given twice", vmm, c.Tap, ErrInvalid, fd)
			}
			seen[fd] = true
		}
		p.fds = n.FDs
	}
	return p, nil
}

// validName accepts the names a record can hold and every VMM syntax can
// carry unquoted: ASCII letters, digits, '.', '_' and '-', at most 15
// bytes. The kernel accepts more (a ',' say), which QEMU's and Cloud
// Hypervisor's option syntax would split.
func validName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > 15:
		return fmt.Errorf("%q is %d bytes, the kernel's limit is 15", s, len(s))
	case s == "." || s == "..":
		return fmt.Errorf("%q is reserved", s)
	}
	return plainChars(s)
}

// validID is validName for device ids, which have no length limit here.
func validID(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 bytes", s)
	}
	if s == "" || s[0] < 'A' || s[0] > 'z' || (s[0] > 'Z' && s[0] < 'a') {
		return fmt.Errorf("%q does not start with a letter (QEMU requires it)", s)
	}
	return plainChars(s)
}

func plainChars(s string) error {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%q contains %q: want letters, digits, '.', '_' or '-'", s, c)
		}
	}
	return nil
}

// guestMAC parses a record's guest MAC: 6 bytes, unicast, not zero.
func guestMAC(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	m, err := net.ParseMAC(s)
	if err != nil {
		return "", err
	}
	if len(m) != 6 {
		return "", fmt.Errorf("%q is not a 6-byte MAC", s)
	}
	if m[0]&1 != 0 {
		return "", fmt.Errorf("%s is a multicast MAC", m)
	}
	if string(m) == "\x00\x00\x00\x00\x00\x00" {
		return "", fmt.Errorf("%s is the zero MAC", m)
	}
	return m.String(), nil
}

func vmmList() string {
	s := make([]string, len(VMMs))
	for i, v := range VMMs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// joinInts joins fds with sep.
func joinInts(fds []int, sep string) string {
	var b strings.Builder
	for i, fd := range fds {
		if i > 0 {
			b.WriteString(sep)
		}
		fmt.Fprint(&b, fd)
	}
	return b.String()
}
