// Package launch renders, from the records Config returns, the exact
// arguments each VMM needs to open tapbridge's TAPs: Cloud Hypervisor's
// --net value, Firecracker's network-interface object, QEMU's -netdev and
// -device arguments, and libvirt's <interface> element.
//
// The most common failure of TAPs made out of band is a flag mismatch
// between the TAP and the VMM that opens it: a multi-queue TAP opened
// single-queue, or the reverse, fails in the kernel with EINVAL
// (drivers/net/tun.c, tun_set_iff). The launch arguments therefore depend
// on two things only, and take each from where it is recorded:
//
//   - from the record (types.NetworkConfig): the TAP name, the guest MAC,
//     the virtio queue count (NumQueues, 2 per queue pair) and the queue
//     size;
//   - from the hypervisor profile the TAP was made with (config.Config's
//     Hypervisor): whether the TAP is multi-queue, which config.MultiQueue
//     decides. Firecracker's profile never makes one.
//
// A VMM is always told to open the TAP the way it was made: a single-queue
// TAP gets one queue pair whatever NumQueues says, and a multi-queue TAP
// gets all of them. What a VMM cannot open at all (Firecracker on a
// multi-queue TAP, file descriptors for Firecracker or libvirt, a queue
// size QEMU refuses) is an error wrapping ErrIncompatible, never arguments
// that fail later; bad input is an error wrapping ErrInvalid.
//
// # Queue counts
//
// The units differ per VMM: Cloud Hypervisor's num_queues counts virtio
// queues (2 per pair, vmm/src/config.rs), QEMU's queues= and libvirt's
// queues= count queue pairs, Firecracker has one pair and no setting.
//
// # File descriptors
//
// A NIC made by bridge.ConfigHandoff is passed as its queue files: set
// NIC.FDs to their numbers in the VMM's process (one per queue pair the
// profile opens). Cloud Hypervisor then gets fd=[...], QEMU fd= or fds=.
//
// The package is pure: it does no I/O and builds on every platform.
package launch
