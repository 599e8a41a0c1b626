package rtnl

import (
	"errors"
	"net"
)

var errNoIndex = errors.New("link index required")

// LinkChange is a set of changes to one link, applied by a single
// RTM_NEWLINK message. Nil and zero fields are left unchanged.
//
// The kernel applies the attributes of one message in a fixed order
// (net/core/rtnetlink.c: do_setlink): address, MTU, group, name, alias,
// up/down, master, txqueuelen, then the per-family settings such as IPv6
// address generation. So one message can set the MTU before enslaving, but
// turns address generation off only after bringing the link up; send that
// in an earlier message when it matters.
type LinkChange struct {
	// Index is the ifindex of the link to change. Either Index or AltName
	// is required.
	Index uint32

	// AltName, when Index is 0, selects the link by alternative name
	// instead (rtnl_setlink: rtnl_dev_get). Selecting by a name that only
	// its owner gives out is a guard: the request fails with ENODEV rather
	// than change whatever device now holds a remembered ifindex.
	AltName string

	// Name renames the link when non-empty (the link must be down).
	Name string

	MTU        uint32 // 0: unchanged
	TxQueueLen *uint32
	Address    net.HardwareAddr

	// Up sets (true) or clears (false) IFF_UP.
	Up *bool

	// Master enslaves the link to this ifindex; a pointer to 0 releases it
	// from its master.
	Master *uint32

	// Group moves the link into this device group.
	Group *uint32

	// Alias sets IFLA_IFALIAS (at most 255 bytes).
	Alias *string

	// AddrGenModeNone turns IPv6 address generation off
	// (IN6_ADDR_GEN_MODE_NONE), so the link gets no link-local address
	// when it comes up.
	AddrGenModeNone bool
}
