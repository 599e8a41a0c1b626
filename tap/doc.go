// Package tap creates and opens Linux TAP devices through /dev/net/tun.
//
// It owns the character-device side of a TAP only: open, TUNSETIFF,
// TUNSETOWNER, TUNSETGROUP, TUNSETPERSIST and TUNGETIFF. It never speaks
// netlink; configuring, listing and deleting devices is package rtnl's job.
//
// # Persistent TAPs
//
// A VMM-facing TAP is usually created persistent and then closed: the device
// outlives the file, and the VMM opens it again by name. Creating one takes a
// single file whatever the queue count: the multi-queue flag is what binds the
// VMM that reopens the device (drivers/net/tun.c: tun_set_iff rejects a
// multi-queue mismatch with EINVAL), and every extra queue file opened and
// closed costs an RCU grace period under RTNL.
//
// # Exclusive creation
//
// TUNSETIFF on a name that already exists attaches to that device instead of
// creating one. Without [Options.Exclusive] two owners can silently share a
// TAP. With it (IFF_TUN_EXCL) the kernel fails with EBUSY.
//
// # Network namespaces
//
// A TAP is created in the network namespace of the thread that opened
// /dev/net/tun (tun_chr_open takes current->nsproxy->net_ns). [Options.NetNS]
// makes Create and Open do only that open(2) on a locked OS thread inside the
// target namespace; every ioctl afterwards runs on an ordinary goroutine.
//
// # File descriptor ownership
//
// A [Device] owns the queue files it opened until [Device.Release] hands them
// to the caller; [Device.Close] closes what it still owns. Closing the last
// queue of a non-persistent TAP destroys the device; a persistent TAP
// survives. NetNS fds are borrowed, never closed.
//
// Queue files are opened close-on-exec, but a child forked by another
// goroutine holds copies of them until it execs: a Close in that window
// leaves the queue attached (and a transient TAP alive) until the child's
// exec. A VMM launcher that forks while creating TAPs should expect it.
//
// # Privileges
//
// Creating a TAP needs CAP_NET_ADMIN in the namespace. Attaching to an
// existing TAP needs CAP_NET_ADMIN unless the caller matches the device's
// owner and group; a TAP whose owner and group are unset can be attached by
// any user that can open /dev/net/tun (tun_not_capable in drivers/net/tun.c).
// Leave [Options.Owner] nil only when that is what you want.
package tap
