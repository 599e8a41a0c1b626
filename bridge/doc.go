// Package bridge is tapbridge's network provider: TAP-on-bridge networking
// for virtual machines. For each NIC of a VM it creates a TAP device, puts
// it on an existing Linux bridge (where a DHCP server serves the guests),
// and later removes it; a garbage-collection module reclaims the TAPs that
// crashed VMs leave behind.
//
// # Ownership
//
// The kernel is the record. Every TAP carries an owner tag in its alias
// (instance, full VM ID, NIC index and count, guest MAC, queues, creation
// time; see package owner) and an alternative name made from the instance
// and the full VM ID, which the kernel keeps unique. Lookups go through the
// alternative name and trust only the tag; the 8-byte VM ID prefix in the
// TAP name is never used to decide anything. Config refuses a name held by
// any other device and tries the next name candidate; Delete, Verify and
// GC touch only TAPs whose tag names this instance, and delete by ifindex.
//
// # Create path
//
// Per NIC: open /dev/net/tun in the target namespace, TUNSETIFF (TAP, no PI,
// vnet_hdr, exclusive, multi-queue per the hypervisor profile), owner and
// group when configured. Then, for all NICs of the VM in one pipelined
// rtnetlink batch: a noqueue root qdisc; MTU (the bridge's), txqueuelen,
// host-side MAC, IPv6 address generation off, the owner tag and the master;
// the alternative name; learning off (and isolated or locked if
// configured); a static FDB entry for the guest MAC so that frames for it
// are not flooded. Only then TUNSETPERSIST and close, and last, in one more
// batch, up. Until TUNSETPERSIST the TAP is not persistent: if anything
// fails, or the process dies, closing its file makes the kernel destroy it,
// so a crash mid-create leaves nothing untagged. Up comes after close
// because closing a TAP's last file drops its carrier, which on a running
// bridge port costs a port-state change and on a down one nothing.
//
// # Delete path
//
// Deleting a link waits for an RCU grace period. Delete therefore moves a
// VM's TAPs into a device group reserved for the instance ("dooms" them)
// and deletes the whole group with one message (one grace period for the
// batch). With the reaper started ([Bridge.StartReaper]) Delete only dooms
// the TAPs, which costs no grace period, and returns; the reaper deletes
// every doomed TAP together, after Config.ReapInterval or when
// Config.ReapBatch VMs wait. A Config for a VM whose TAPs are doomed deletes
// them first, so the ID can be reused at once. If the process dies before
// the reaper runs, the doomed TAPs stay tagged and GC reclaims them.
//
// # Bridge MAC
//
// A bridge whose MAC was never set takes the lowest MAC of its ports and
// changes it as ports come and go, which moves every guest's gateway MAC.
// TAP host-side MACs start with 0xfe so that they are never lowest among
// real ports, and New pins the bridge's MAC by setting it to its current
// value (the kernel then marks it user-set and stops recomputing it). This
// changes the bridge device: New documents it and does it only once.
//
// # Live migration
//
// Stage makes a migration destination's NICs without their FDB entries and
// with blocked ports, so that EVPN keeps the guest on the source; Activate
// makes them forward at the switchover (see their docs, and the README's
// "Many hosts").
//
// # Concurrency
//
// A Bridge is safe for concurrent use. Config and Delete of different VMs
// run in parallel; calls for the same VM are serialized. Across processes,
// instances sharing a RootDir coordinate through lock files in it.
package bridge
