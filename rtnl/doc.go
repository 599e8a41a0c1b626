// Package rtnl speaks rtnetlink for tapbridge: typed link, bridge-port, FDB,
// qdisc and alternative-name operations over one reused netlink socket per
// network namespace, with pipelined batches and filtered dumps.
//
// It never opens /dev/net/tun; creating TAP devices is package tap's job
// (rtnetlink cannot create them: the tun driver's newlink returns
// EOPNOTSUPP), but once they exist rtnl configures, lists and deletes them.
//
// Message types follow github.com/jsimonetti/rtnetlink/v2 where it can encode
// what is needed; what it cannot (IFLA_TXQLEN and IFLA_GROUP on a set,
// IFLA_AF_SPEC, bridge-port slave data, alternative names, AF_BRIDGE FDB
// entries, TC qdiscs) is encoded here with netlink.AttributeEncoder and has
// exact-byte tests. Link dumps are decoded here too, into the few fields the
// library uses, because decoding every attribute of thousands of links costs
// more than the kernel takes to produce them.
//
// # Errors
//
// Kernel errors keep their errno: errors.Is(err, unix.ENODEV) reports an
// absent link, unix.EEXIST a duplicate name, and so on. The *netlink.OpError
// in the chain carries the kernel's extended-ack message when there is one.
// Deletes treat "already gone" as success.
//
// # Forwarding database
//
// [Conn.AddFDB] pins a guest MAC to its port with a static entry
// (NUD_NOARP: forwarded to the port, never aged, and what FRR's zebra
// advertises for EVPN; NUD_PERMANENT would make the MAC local to the
// bridge). [FDBOptions] adds Sticky (NTF_STICKY), Exclusive (EEXIST
// instead of a take-over) and Use (NTF_USE: learn the MAC on the port as
// the data path would, the only way to take over a control plane's
// extern_learn entry without keeping its mark). [Conn.DelFDBSelf]
// deletes a device's own entry (a vxlan device's remote VTEP for a MAC)
// and reports ENOENT; [Conn.DelFDB] treats a missing entry as done.
// [Conn.FDBEntry] reads one entry and [Conn.FDB] dumps, filtered by the
// kernel by bridge or port.
//
// # Network namespaces
//
// [Config.NetNS] picks the namespace once, at [Dial]; every request on the
// Conn then applies there. The caller's thread is never moved.
//
// # Batches
//
// A [Batch] holds many requests; [Conn.Exec] writes them with as few sendmsg
// calls as the socket's receive buffer allows (the kernel runs a whole
// sendmsg synchronously and queues one acknowledgement per request) and
// returns one result per request, in order. The kernel processes the
// requests in order and carries on after a failure, so later requests still
// run.
//
// # Context
//
// The kernel answers rtnetlink requests synchronously inside sendmsg and
// recvmsg, so a round trip cannot be interrupted. Every method checks its
// context before each round trip and between the chunks of a batch or the
// retries of a dump, and returns ctx.Err() (wrapped) if it is done.
//
// # Privileges
//
// Reading needs no privilege; every change needs CAP_NET_ADMIN in the
// namespace the Conn was dialled in.
package rtnl
