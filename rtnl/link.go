package rtnl

import (
	"net"

	"golang.org/x/sys/unix"
)

// Link is a network device as an rtnetlink link message describes it,
// reduced to the fields tapbridge reads.
type Link struct {
	Index      uint32
	Name       string
	Flags      uint32 // IFF_* device flags (netdevice(7))
	Type       uint16 // ARPHRD_* hardware type
	MTU        uint32
	TxQueueLen uint32
	Master     uint32 // ifindex of the master device, 0 if none
	Group      uint32 // device group
	Alias      string // IFLA_IFALIAS, "" if unset
	AltNames   []string
	Address    net.HardwareAddr
	OperState  uint8 // IF_OPER_* (RFC 2863 operational state)

	// Carrier is the lower layer's state (IFLA_CARRIER), whether or not
	// the link is up. A TAP has carrier while some process holds a queue
	// file attached, which is the only sign of that for a single-queue
	// TAP: the kernel reports TunInfo.Queues for multi-queue TAPs only.
	Carrier   bool
	Kind      string // IFLA_INFO_KIND: "tun", "bridge", "veth"...; "" for none
	SlaveKind string // IFLA_INFO_SLAVE_KIND: "bridge" for a bridge port

	// AddrGenMode is the IPv6 address generation mode
	// (IN6_ADDR_GEN_MODE_*), or -1 if the link has no IPv6 state.
	AddrGenMode int

	// Tun is set for TUN/TAP devices (Kind "tun").
	Tun *TunInfo

	// Port is set for bridge ports (SlaveKind "bridge").
	Port *PortInfo
}

// Up reports whether the link is administratively up (IFF_UP).
func (l *Link) Up() bool { return l.Flags&unix.IFF_UP != 0 }

// AttachedQueues returns how many queue files some process holds open on a
// TUN/TAP link, and 0 for any other link. The kernel reports queue counts
// only for multi-queue devices (drivers/net/tun.c: tun_fill_info), so for a
// single-queue one it is derived from the carrier, which tun turns on
// exactly while its queue is attached (tun_set_iff: netif_carrier_on;
// __tun_detach: netif_carrier_off) and which IFLA_CARRIER reports whether
// or not the link is up. Disabled queues (TUNSETQUEUE IFF_DETACH_QUEUE) are
// open too and count.
func (l *Link) AttachedQueues() int {
	switch {
	case l.Tun == nil:
		return 0
	case l.Tun.MultiQueue:
		return int(l.Tun.Queues + l.Tun.DisabledQueues)
	case l.Carrier:
		return 1
	}
	return 0
}

// TunInfo is what the tun driver reports about a device (IFLA_TUN_*,
// drivers/net/tun.c: tun_fill_info).
type TunInfo struct {
	TAP        bool // IFF_TAP; false means a TUN device
	PI         bool // frames carry the packet-information prefix
	VnetHdr    bool
	Persist    bool
	MultiQueue bool

	// Queues and DisabledQueues count the queue files attached to a
	// multi-queue device. The kernel reports them for multi-queue devices
	// only: for a single-queue device both are 0 even while it is
	// attached. Use Link.AttachedQueues.
	Queues         uint32
	DisabledQueues uint32

	Owner *uint32 // uid allowed to attach; nil when unset
	Group *uint32 // gid allowed to attach; nil when unset
}

// PortInfo is the bridge-port state the kernel reports for a port
// (IFLA_BRPORT_*).
type PortInfo struct {
	Learning      bool
	UnicastFlood  bool
	Isolated      bool
	Locked        bool
	NeighSuppress bool
	BcastFlood    bool
	McastFlood    bool
	State         PortState
}

// LinkFilter asks the kernel to filter a link dump (rtnl_dump_ifinfo:
// link_dump_filtered). The zero value lists every link.
type LinkFilter struct {
	// Master keeps only the links enslaved to this ifindex.
	Master uint32
	// Kind keeps only links of this IFLA_INFO_KIND, such as "tun".
	Kind string

	// Brief decodes less of each link, for scans of thousands of links:
	// AltNames, Address, SlaveKind and Port stay empty and AddrGenMode -1.
	Brief bool
}
