// Package vmmopen reproduces, syscall for syscall, how Cloud Hypervisor
// v53.0 and Firecracker v1.16.0 open a TAP, for tests that prove those
// VMMs can open what tapbridge makes. Neither VMM is packaged anywhere the
// tests can install from, so their open sequences are copied here, each
// step citing the upstream file and line it copies, and fed the very
// arguments package launch renders (a --net value, a network-interface
// JSON body). Errors carry the message chain the VMM itself would print
// and the kernel's errno.
//
// Reproduced:
//
//   - Firecracker v1.16.0, src/vmm/src/devices/virtio/net/device.rs Net::new
//     and tap.rs Tap::open_named: open /dev/net/tun O_RDWR|O_NONBLOCK|O_CLOEXEC,
//     TUNSETIFF IFF_TAP|IFF_NO_PI|IFF_VNET_HDR (never IFF_MULTI_QUEUE),
//     TUNSETVNETHDRSZ 12, and at device activation TUNSETOFFLOAD.
//   - Cloud Hypervisor v53.0 by name, net_util/src/open_tap.rs open_tap and
//     net_util/src/tap.rs Tap::open_named: the sysfs tun_flags check,
//     TUNGETFEATURES, TUNSETIFF (IFF_MULTI_QUEUE iff queue pairs > 1) once
//     per queue pair, host MAC read (set only if asked), MTU only if asked,
//     up only if down, TUNSETVNETHDRSZ 12.
//   - Cloud Hypervisor v53.0 with fd=, virtio-devices/src/net.rs
//     Net::from_tap_fds and tap.rs Tap::from_tap_fd: dup, O_NONBLOCK,
//     TUNGETIFF, TUNSETIFF (EEXIST ignored), TUNSETVNETHDRSZ 12.
//   - the --net syntax and validation (vmm/src/config.rs NetConfig::parse
//     and validate, option_parser/src/lib.rs) and Firecracker's
//     NetworkInterfaceConfig (src/vmm/src/vmm_config/net.rs).
//
// Not reproduced: anything after the TAP is open (virtio queues, rate
// limiters, vhost-user), ip=/mask=/host_mac= (which tapbridge's snippets
// never give, because they would change the TAP), and macvtap.
//
// # Namespaces
//
// Both VMMs open /dev/net/tun in the network namespace they run in, and
// Cloud Hypervisor reads /sys/class/net/TAP/tun_flags from the sysfs it
// sees: run the opens through Run, which gives the calling goroutine the
// target network namespace and a sysfs mounted for it, as
// `ip netns exec` does for a VMM started through it.
//
// This package is for tests: it is internal and Linux-only.
package vmmopen
