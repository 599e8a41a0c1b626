package rtnl

import (
	"errors"
	"net"
)

var (
	errNoIndex = errors.New("link index required")

	// errPortWithMaster refuses LinkChange.Port together with
	// LinkChange.Master; see the Port field.
	errPortWithMaster = errors.New("bridge-port settings cannot go with a master change in one message: " +
		"the kernel applies them to the master the link has before the change; enslave first")
)

// LinkChange is a set of changes to one link, applied by a single
// RTM_NEWLINK message. Nil and zero fields are left unchanged.
//
// The kernel applies the attributes of one message in a fixed order
// (net/core/rtnetlink.c: do_setlink): address, MTU, group, name, alias,
// up/down, master, txqueuelen, then the per-family settings such as IPv6
// address generation. So one message can set the MTU before enslaving, but
// turns address generation off only after bringing the link up; send that
// in an earlier message when it matters. Bridge-port settings (Port) come
// before all of these.
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

	// Port changes bridge-port settings in the same message
	// (IFLA_LINKINFO carrying IFLA_INFO_SLAVE_DATA), as SetBridgePort
	// does alone. The link must already be a bridge port: the kernel
	// parses the settings against the master the link has when the
	// message arrives, and applies them before everything else in it
	// (net/core/rtnetlink.c: rtnl_changelink runs the master's
	// slave_changelink, then do_setlink). So Port cannot go with Master:
	// on a link that is not yet a port the kernel answers EOPNOTSUPP, on
	// a port it would apply them to the old master; the combination is
	// refused before sending. If the kernel refuses the port settings
	// (EOPNOTSUPP when the link is not a bridge port), nothing of the
	// message is applied; if it takes them and then refuses a later
	// change of the message, the port settings stay.
	Port *BridgePort
}

// validate checks ch before it is encoded: what the kernel would refuse
// or misapply, and the caller can know in advance.
func (ch *LinkChange) validate() error {
	if ch.Index == 0 && ch.AltName == "" {
		return errNoIndex
	}
	if ch.Port == nil {
		return nil
	}
	if ch.Master != nil {
		return errPortWithMaster
	}
	return ch.Port.validate()
}
