// Command tapbridge gives virtual machines TAP-on-bridge networking from
// the shell: it creates one TAP per VM NIC on an existing Linux bridge,
// deletes them, lists and verifies them, and reclaims the TAPs that crashed
// VMs leave behind. It replaces `ip tuntap` scripts in VMM integrations, and
// its demo command shows the whole library at work.
//
// Usage:
//
//	tapbridge up --bridge BR --vm ID [--nics N] [--cpus C] [--queue-size Q]
//	    [--hypervisor cloud-hypervisor|firecracker|qemu] [--mac MAC ...]
//	    [--gc-grace DURATION] [--netns NAME|PATH] [--root DIR] [--json]
//	    [--print cloud-hypervisor|firecracker|qemu|libvirt] [--guard l2|strict|off] [--staged]
//	tapbridge activate --vm ID [--bridge BR] [--netns NAME|PATH] [--root DIR]
//	tapbridge down --vm ID [--vm ID ...] [--netns NAME|PATH] [--root DIR]
//	tapbridge ls [--bridge BR] [--netns NAME|PATH] [--root DIR] [--json]
//	tapbridge verify --vm ID [--bridge BR] [--hypervisor H] [--netns NAME|PATH] [--root DIR]
//	tapbridge bind --vm ID [--nic N] [--ip ADDR ...] [--bridge BR] [--netns NAME|PATH] [--root DIR]
//	tapbridge dhcp-script [--root DIR] [--netns NAME|PATH] add|old|del MAC IP [HOSTNAME]
//	tapbridge gc (--live ID,ID,... | --live-file FILE) [--dry-run] [--grace DURATION]
//	    [--netns NAME|PATH] [--root DIR] [--json]
//	tapbridge demo [--vms 200] [--nics 2] [--cpus 2] [--crash 50] [--workers 4]
//	tapbridge version
//
// `tapbridge --help` and `tapbridge COMMAND --help` print the usage to
// standard output. Flags take one or two dashes.
//
// # Instances and namespaces
//
// --root names the instance (default /var/lib/tapbridge): its path is the
// owner identity written into every TAP's tag, so instances with different
// root directories never touch each other's TAPs. `up` records the
// instance's namespace, bridge and GC grace period there; the other
// commands use what was recorded unless a flag says otherwise. --netns NAME
// means /run/netns/NAME; a value containing '/' is a path (such as
// /proc/PID/ns/net). Without --netns and without a record, the commands
// work in the caller's namespace.
//
// up opens the bridge through the library's bridge.New, which records the
// settings it was given (namespace, bridge, grace) in the root directory and
// pins the bridge's MAC address to its current value. ls and verify use
// bridge.Open, which changes nothing. down and gc need no bridge.
//
// # Commands
//
// up creates VM ID's TAPs (or checks and repairs them, if they exist: up is
// idempotent) and prints one row per NIC: TAP name, guest MAC, virtio queues
// (2 per vCPU), queue size, bridge. --mac gives NIC i its guest MAC (repeat
// per NIC), to recover a VM after a reboot. --hypervisor decides whether the
// TAPs are multi-queue: cloud-hypervisor and qemu open a TAP multi-queue
// when the VM has more than one vCPU, firecracker never. --gc-grace sets the
// instance's GC grace period (0 keeps the recorded one, else 1m; negative:
// none, and then GC runs only while no up is in flight). --guard sets the
// VM's port-security mode (see package guard): l2, the instance's default,
// locks the bridge port to the guest MAC, turns unicast flooding to it off
// and filters what the guest sends (its own MAC, ARP from it, IPv4, ARP and
// IPv6 only, no DHCP server, router advertisement or redirect, and only
// its bound addresses once it has some); strict also limits an unbound NIC
// to DHCP, ARP probes and link-local IPv6; off installs no filter, for
// guests that use several MACs, and is unsafe for untrusted guests.
//
// up --staged (bridge.Stage) makes the NICs of a live migration's
// destination: made, enslaved and guarded, but with no FDB entry for the
// guest MAC and the port locked with all flooding off, so that nothing is
// forwarded and EVPN still places the guest on the source. activate
// (bridge.Activate) makes them forward at the switchover (when the VMM
// resumes the guest; it must hold the TAPs open): it takes the MAC over,
// pins its static entry, removes the vxlan ports' own entries for it and
// opens the port. activate is idempotent and prints nothing.
//
// down deletes every TAP of the VMs (whatever their NIC count) that carries
// this instance's tag. A VM without TAPs is not an error. It prints nothing.
//
// ls lists the instance's VMs: per NIC the TAP, guest MAC, queues, queue
// size, multi-queue, attached queues (queue files open: a VMM holds the TAP)
// and state: "up" or "down", then "on BR", "no bridge" or "on X (not BR)",
// or "deleting" for a TAP queued for deletion; then the guard mode (l2,
// strict or off), the bound addresses ("-" for none) and the frames the
// guard dropped. If the bridge is gone it says so in one line.
//
// verify exits 0 when every NIC of the VM exists, is up, is a port of the
// bridge with learning off, has the bridge's MTU and its host-side MAC and
// the flags the hypervisor opens it with, and, unless the guard mode its
// tag records is off, carries the guard's filter as this version makes it
// for its policy, on a locked port with unicast flooding off; otherwise it
// exits 1 and prints the differences, one per indented line, on standard
// error.
//
// bind replaces the addresses bound to NIC --nic (default 0) of VM --vm
// with the --ip values (repeatable; an address, or an address/length whose
// length is kept as a note), or unbinds every address without --ip. The
// filter is replaced in place: the NIC is never unfiltered. It prints the
// bound set. A NIC whose guard is off cannot be bound (exit 1); an address
// that is not unicast, a duplicate or more than 32 addresses exit 2.
//
// dhcp-script is dnsmasq's --dhcp-script: dnsmasq runs it with ACTION MAC
// IP [HOSTNAME] and DNSMASQ_* variables. add and old bind IP to the NIC of
// the instance whose guest MAC is MAC (found by its owner tag, in the
// namespace the instance records, keeping its other addresses), del
// unbinds it; so a restart of dnsmasq, which calls old for every lease,
// restores every binding. A DHCPv6 lease's MAC comes from DNSMASQ_MAC.
// A MAC that is not one of the instance's guests, an instance with nothing
// recorded and a bridge that is gone exit 0 doing nothing, as do the calls
// init, tftp, arp-add, arp-del, arp-old and relay-snoop. Malformed
// arguments exit 2. dnsmasq takes a script path only, so the flags go in a
// wrapper:
//
//	#!/bin/sh
//	exec /usr/local/bin/tapbridge dhcp-script --root /var/lib/tapbridge --netns blue "$@"
//
// gc runs one garbage-collection cycle: it reclaims the instance's TAPs
// whose VM is not in the live set, that no process holds open and that are
// older than the grace period, and TAPs already queued for deletion. The
// live set is required: --live ID,ID,... or --live-file FILE (one ID per
// line; '#' starts a comment); `--live ""` is the explicit empty set. A
// missing live set is a usage error, because it would reclaim everything.
// --dry-run reclaims nothing and shows, for every TAP of the instance,
// whether a cycle would reclaim or keep it and why. --grace and --netns
// override the recorded grace period and namespace for this cycle.
//
// demo, as root, makes a throwaway network namespace with a bridge and a
// temporary root directory, provisions --vms VMs with --nics NICs and
// --cpus vCPUs each (cloud-hypervisor profile) from --workers goroutines,
// prints what the kernel holds (TAPs, bridge ports, the MemFree drop as the
// kernel memory used), "crashes" --crash VMs by forgetting them, runs GC
// with the others as the live set, verifies the survivors, deletes them with
// the default Delete (in the background) and prints the rates reached. It ends with
// "demo: OK, nothing left behind". The namespace and every device in it
// vanish with the process, also on Ctrl-C, and the root directory is
// removed; several demos can run at once. Progress is shown only when
// standard output is a terminal.
//
// # Exit status and errors
//
// 0: success. 1: the operation failed; standard error has one line
// "tapbridge: <error>", with further lines indented below it for multi-line
// errors (verify's differences). 2: the command line is wrong (unknown
// command or flag, missing or invalid flag value, such as a bad VM ID or
// --nics 0); standard error has one line with a hint to --help.
//
// # JSON output
//
// With --json, up prints an array of NIC objects, ls an array of VM
// objects and gc one report object, indented, on standard output. Field
// names are stable; fields may be added, never renamed or removed.
//
// NIC object (up; the "nics" of a VM object), types.NetworkConfig:
//
//	"tap"         string  TAP device name, bt + 8 ID characters (or a hash) + "-" + NIC index
//	"mac"         string  guest MAC, locally administered unicast ("2e:55:a2:c1:7b:a2")
//	"num_queues"  int     virtio queues: 2 per vCPU
//	"queue_size"  int     virtio queue size
//	"backend"     string  always "bridge"
//	"bridge_dev"  string  the bridge the TAP is (meant to be) a port of
//
// VM object (ls), types.Network:
//
//	"vm_id"       string  the full VM ID
//	"bridge_dev"  string  the bridge ls was run for
//	"nics"        array   NIC objects, in NIC order
//	"links"       array   link states, one per entry of "nics", same order
//
// Link state (the "links" of a VM object), types.LinkState:
//
//	"nic"              int     NIC index within the VM
//	"nics"             int     the VM's NIC count when the TAP was made
//	"ifindex"          int     kernel ifindex of the TAP
//	"master"           string  the bridge the TAP is a port of ("ifindex N" for
//	                           another master), "" if none
//	"up"               bool    administratively up
//	"multi_queue"      bool    IFF_MULTI_QUEUE
//	"attached_queues"  int     queue files open on the TAP: > 0 while a VMM runs
//	"deleting"         bool    queued for deletion
//	"created"          string  RFC 3339 time the TAP was made
//	"hypervisor"       string  the VMM profile the TAP was made for, "" if not recorded
//	"guard"            string  the guard mode its filter enforces: "l2", "strict", "off"
//	"bound"            array   the bound addresses as prefixes ("10.0.0.2/24")
//	"guard_drops"      int     frames the guard dropped since its filter was installed
//
// GC report (gc):
//
//	"dry_run"      bool    true for --dry-run: nothing was reclaimed
//	"root"         string  the instance's root directory
//	"netns"        string  the namespace path, "" for the caller's
//	"grace"        string  the grace period, Go duration syntax ("1m0s", "-1ns")
//	"live"         int     the size of the live set
//	"scanned"      array   names of the instance's TAPs the cycle saw, sorted
//	"orphans"      array   the TAPs chosen for reclaim (dry run: that would be)
//	"reclaimed"    array   the orphans deleted (empty on a dry run)
//	"failed"       object  TAP name -> error, for orphans that could not be deleted
//	"reasons"      array   dry run only: one object per scanned TAP, by name
//	"duration_ms"  number  how long the cycle took
//
// Reason object (the "reasons" of a dry-run report):
//
//	"tap"      string  TAP name
//	"vm_id"    string  the VM it belongs to
//	"reclaim"  bool    whether the cycle would reclaim it
//	"reason"   string  a code: "not-live" (reclaim: VM not live, TAP idle and
//	                   older than the grace), "doomed" (reclaim: already queued
//	                   for deletion), "in-use" (keep: a process holds it
//	                   open), "live" (keep: VM in the live set), "young" (keep:
//	                   younger than the grace), "creating" (keep: its Config is
//	                   in flight), "no-live-set" (keep: no live set given)
//	"detail"   string  the same in words, with the age
//
// # Privileges
//
// Creating and deleting TAPs needs CAP_NET_ADMIN (root); the demo also
// needs CAP_SYS_ADMIN to create its namespace. Without them the commands
// fail with one line saying so.
package main
