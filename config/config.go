// Package config holds the settings of a tapbridge instance.
package config

import (
	"fmt"
	"time"

	"github.com/tapbridge/tapbridge/guard"
)

// Hypervisor profiles: they decide how the VMM reopens a TAP, and so the
// flags the TAP must be created with (drivers/net/tun.c refuses a
// multi-queue mismatch with EINVAL).
const (
	// CloudHypervisor opens a TAP multi-queue iff it has more than one
	// queue pair.
	CloudHypervisor = "cloud-hypervisor"
	// Firecracker never opens a TAP multi-queue.
	Firecracker = "firecracker"
	// QEMU opens a TAP multi-queue iff queues > 1.
	QEMU = "qemu"
)

const (
	// DefaultRootDir is used when Config.RootDir is empty, and by the
	// package-level helpers that need no Config.
	DefaultRootDir = "/var/lib/tapbridge"

	// DefaultTxQueueLen is the TAP txqueuelen when Config.TxQueueLen is 0:
	// the kernel default of 1000 is too small for VM workloads.
	DefaultTxQueueLen = 10000

	// DefaultGCGrace is how young a TAP the garbage collector leaves alone
	// when Config.GCGrace is 0.
	DefaultGCGrace = time.Minute

	// DefaultReapInterval is how long the background deletion lets deleted
	// TAPs gather before deleting them together, when Config.ReapInterval
	// is 0.
	DefaultReapInterval = 100 * time.Millisecond

	// DefaultReapBatch is the number of pending VMs that starts the
	// background deletion before its interval, when Config.ReapBatch is 0.
	DefaultReapBatch = 256
)

// Config is the configuration of a tapbridge instance. The zero value of
// each field selects the default documented on it.
type Config struct {
	// RootDir holds the instance's lock files and settings, and its
	// absolute path is the instance identity written into every owner tag:
	// two instances with different RootDirs never touch each other's TAPs.
	// Empty means DefaultRootDir.
	RootDir string

	// NetnsPath is the network namespace to work in, such as
	// /run/netns/NAME or /proc/PID/ns/net. Empty means the caller's.
	NetnsPath string

	// Hypervisor is the VMM profile: CloudHypervisor (the default when
	// empty), Firecracker or QEMU.
	Hypervisor string

	// TxQueueLen is the TAPs' txqueuelen. Zero means DefaultTxQueueLen.
	TxQueueLen uint32

	// TAPOwner and TAPGroup, when set, restrict who may open the TAPs
	// (TUNSETOWNER, TUNSETGROUP); set them when the VMM does not run with
	// CAP_NET_ADMIN. Nil leaves them unset: any user that can open
	// /dev/net/tun may then attach.
	TAPOwner *uint32
	TAPGroup *uint32

	// Guard is the port-security mode of the VMs' NICs (see package
	// guard): guard.ModeL2 (the default when empty) filters what a guest
	// sends on its TAP and locks its bridge port to its MAC;
	// guard.ModeStrict also limits an unbound NIC to bootstrapping
	// traffic until an address is bound; guard.ModeOff installs no filter
	// and leaves the port as it was before the guard existed, for guests
	// that legitimately send from several MACs (nested VMs, macvlan): it
	// is unsafe for untrusted guests. types.VMConfig.Guard overrides it
	// per VM.
	Guard guard.Mode

	// Isolated makes the VM ports isolated bridge ports: VMs reach the
	// bridge and non-isolated ports (the uplink, the DHCP server) but not
	// each other.
	Isolated bool

	// Locked makes the VM ports locked bridge ports: only the guest MAC
	// that Config pinned in the FDB may send.
	Locked bool

	// Sticky makes every guest MAC's static FDB entry sticky (NTF_STICKY):
	// the bridge never moves it to another port, and with BGP EVPN (FRR)
	// every host treats it as a sticky MAC that a MAC from another host
	// cannot take over (it blocks MAC hijacking across hosts). The cost is
	// for live migration: the destination's Activate cannot take the MAC
	// over, so the source must Delete its NIC (withdrawing the route)
	// before the destination activates, which adds the withdrawal time to
	// the switchover gap. False (the default) makes ordinary static
	// entries.
	Sticky bool

	// GCGrace is how young a TAP the garbage collector leaves alone, so
	// that it never reclaims the TAP of a VM whose creation is still in
	// flight. Zero means DefaultGCGrace; negative means no grace, and then
	// a GC cycle runs only while no Config of this instance is in flight in
	// any process (it holds the instance's in-flight lock exclusively).
	//
	// With no grace the caller must close one more window itself: between
	// Config returning and the VM entering the live set the GC reads. Either
	// record the VM as live before calling Config, or hold the lock of the
	// caller's VM database (the GC module that reports ActiveVMIDs) across
	// Config and the record.
	GCGrace time.Duration

	// SyncDelete makes Delete return only when the TAPs are gone, each call
	// paying the RCU grace period of a link deletion (about 15 ms here).
	// By default (false) Delete dooms the TAPs and returns at once: when it
	// returns they carry no traffic and their FDB entries are gone, and a
	// background goroutine deletes them together (see ReapInterval and
	// ReapBatch).
	SyncDelete bool

	// ReapInterval and ReapBatch tune the background deletion; see
	// DefaultReapInterval and DefaultReapBatch.
	ReapInterval time.Duration
	ReapBatch    int
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch c.Hypervisor {
	case "", CloudHypervisor, Firecracker, QEMU:
	default:
		return fmt.Errorf("config: hypervisor %q: want %q, %q or %q", c.Hypervisor, CloudHypervisor, Firecracker, QEMU)
	}
	if _, err := guard.ParseMode(string(c.Guard)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.ReapBatch < 0 {
		return fmt.Errorf("config: reap batch %d is negative", c.ReapBatch)
	}
	if c.ReapInterval < 0 {
		return fmt.Errorf("config: reap interval %v is negative", c.ReapInterval)
	}
	return nil
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c *Config) WithDefaults() Config {
	d := *c
	if d.RootDir == "" {
		d.RootDir = DefaultRootDir
	}
	if d.Hypervisor == "" {
		d.Hypervisor = CloudHypervisor
	}
	if d.Guard == "" {
		d.Guard = guard.ModeL2
	}
	if d.TxQueueLen == 0 {
		d.TxQueueLen = DefaultTxQueueLen
	}
	if d.GCGrace == 0 {
		d.GCGrace = DefaultGCGrace
	}
	if d.ReapInterval == 0 {
		d.ReapInterval = DefaultReapInterval
	}
	if d.ReapBatch == 0 {
		d.ReapBatch = DefaultReapBatch
	}
	return d
}

// MultiQueue reports whether the hypervisor profile opens a TAP with
// queuePairs queue pairs multi-queue.
func MultiQueue(hypervisor string, queuePairs int) bool {
	switch hypervisor {
	case Firecracker:
		return false
	default: // Cloud Hypervisor and QEMU
		return queuePairs > 1
	}
}
