// Package e2e holds the end-to-end test that `make e2e` (and so CI) runs: a
// real guest, booted by QEMU, gets its network through a TAP that the
// tapbridge CLI made.
//
// For each case (single-queue with 1 vCPU, multi-queue with 2 vCPUs) the test
// makes a throwaway network namespace holding a bridge with an address and a
// dnsmasq serving DHCP on it, runs `tapbridge up`, boots a Debian cloud kernel
// with a busybox initramfs on the TAP, and checks from both sides: the guest
// prints markers on its serial console (E2E-LEASE, E2E-PING-OK, its queue
// count and the gateway MAC it resolved), and the host finds the guest MAC in
// the lease file and traffic in the TAP's counters. `tapbridge down` must then
// leave no TAP behind.
//
// TestE2ELibvirt boots the same guest under libvirt (libvirtd 9.0 of its
// own, in the case's namespace and a private mount namespace, stopped by
// pid), from the <interface> element package launch renders; TestE2E's
// QEMU command line takes its network arguments from package launch too.
//
// The guest kernel and busybox come from the Debian archive through
// `apt-get download` and are unpacked with `dpkg-deb -x` into a cache
// (-e2e.cache), never installed. The initramfs is written in Go (newc
// format), so /dev/console exists without mknod on the host.
//
// TestE2EEVPN is the many-hosts test: two namespaces as hosts, joined by a
// veth underlay, each with br0 + vxlan100 and its own zebra and bgpd (iBGP
// l2vpn evpn, advertise-all-vni), with private config, socket, pid and log
// paths under the test's temp dirs, stopped by pid. It measures how soon
// the other host learns and forgets a guest MAC after `tapbridge up` and
// `down`, boots guests that reach each other across the hosts (the guest
// /init takes e2e.mode= and e2e.peer= on its kernel command line), and
// live-migrates a pinging guest between the hosts, once with the
// destination TAP pinned from the start (the control) and once staged and
// activated at QEMU's RESUME.
//
// TestE2EGuard boots the guest over a guarded TAP (the default mode l2,
// then strict), with dnsmasq's --dhcp-script pointing at a two-line wrapper
// that execs the built tapbridge dhcp-script: the lease is bound (seen in
// `tapbridge ls --json`), the guest pings the gateway and the bridge's IPv6
// link-local address (guest e2e.mode=move), then moves to an unbound
// address, where its pings fail while the guard's drop count grows.
//
// The test is skipped unless -e2e is given. With -e2e it fails, rather than
// skips, when it is not root or a tool is missing: CI runs it as root after
// .ci/deps installed what it needs.
package e2e
