package rtnl

// Qdisc is a queueing discipline as the kernel reports it (struct tcmsg,
// TCA_KIND and TCA_STATS2), reduced to what tapbridge reads.
type Qdisc struct {
	Index uint32 // ifindex of the link the qdisc is on
	Kind  string // TCA_KIND: "noqueue", "clsact", "mq"...

	// Handle is the qdisc's handle, major:minor in the upper and lower 16
	// bits: 0xFFFF0000 (ffff:) for clsact, 0 for the kernel's own
	// defaults.
	Handle uint32

	// Parent is 0xFFFFFFFF (TC_H_ROOT) for a root qdisc, 0xFFFFFFF1
	// (TC_H_CLSACT) for clsact, otherwise the class it hangs from.
	Parent uint32

	Stats QdiscStats
}

// QdiscStats are a qdisc's counters (TCA_STATS2: gnet_stats_basic,
// gnet_stats_queue). They count from the qdisc's creation.
type QdiscStats struct {
	// Bytes counts what the qdisc saw of its frames; at ingress (clsact)
	// that is from the network header on, without the Ethernet header the
	// device has already pulled.
	Bytes   uint64
	Packets uint64

	// Drops counts the frames the qdisc dropped. A clsact qdisc counts
	// there every TC_ACT_SHOT of its filters, ingress and egress together
	// (its Packets count every frame its filters saw).
	Drops uint32

	Overlimits uint32
	Requeues   uint32
	Backlog    uint32 // bytes queued now
	QLen       uint32 // frames queued now
}

// QdiscFilter selects the qdiscs of a dump. The zero value selects every
// qdisc of the namespace.
type QdiscFilter struct {
	// Index keeps only the qdiscs of this ifindex. The kernel does not
	// filter qdisc dumps (net/sched/sch_api.c: tc_dump_qdisc walks every
	// device whatever tcm_ifindex says, strict checking or not), so the
	// Conn filters what it reads; for one link's clsact, Conn.Clsact asks
	// for that qdisc alone.
	Index uint32

	// Kind keeps only qdiscs of this kind, such as "clsact".
	Kind string
}
