package rtnl

import (
	"errors"
	"strconv"
)

// The STP states of a bridge port (BR_STATE_*, include/uapi/linux/if_bridge.h).
const (
	PortDisabled   PortState = 0 // forwards and learns nothing
	PortListening  PortState = 1 // forwards and learns nothing, takes part in STP
	PortLearning   PortState = 2 // learns source MACs, forwards nothing
	PortForwarding PortState = 3 // learns and forwards: a port of a bridge without STP
	PortBlocking   PortState = 4 // forwards only BPDUs
)

var errPortState = errors.New("bridge port state out of range (BR_STATE_DISABLED..BR_STATE_BLOCKING)")

// PortState is the STP state of a bridge port.
type PortState uint8

// String returns the state's name as iproute2 prints it ("forwarding").
func (s PortState) String() string {
	switch s {
	case PortDisabled:
		return "disabled"
	case PortListening:
		return "listening"
	case PortLearning:
		return "learning"
	case PortForwarding:
		return "forwarding"
	case PortBlocking:
		return "blocking"
	}
	return "state " + strconv.Itoa(int(s))
}

// BridgePort is a set of bridge-port settings to change on an enslaved
// link. Nil fields are left unchanged.
type BridgePort struct {
	Learning      *bool // learn source MACs of frames from this port
	UnicastFlood  *bool // flood unknown-unicast frames to this port
	Isolated      *bool // isolated ports cannot talk to each other
	Locked        *bool // only FDB-known source MACs may send (802.1X-style)
	NeighSuppress *bool // answer ARP/ND for this port from the bridge
	BcastFlood    *bool // flood broadcast frames to this port
	McastFlood    *bool // flood unknown-multicast frames to this port

	// State sets the port's STP state; a value above PortBlocking is
	// refused before sending. The kernel refuses a state with ENETDOWN
	// unless the port is up and, for every state but PortDisabled, has
	// carrier (net/bridge/br_netlink.c: br_set_port_state); a TAP has
	// carrier only while some process holds a queue attached.
	//
	// The bridge also sets the state itself, overwriting what was set:
	// disabled when the port loses its carrier, and back to forwarding
	// when a disabled port is checked and has carrier
	// (net/bridge/br_if.c: br_port_carrier_check, on every NETDEV_CHANGE).
	// The RTM_NEWLINK that carries State is itself such a change
	// (do_setlink ends with netdev_state_change), so PortDisabled does
	// not stick on a port with carrier; it does on one without. It refuses
	// it with EBUSY while the bridge runs kernel STP. On a bridge without
	// STP, PortBlocking does not stick: the port-state selection that
	// follows moves a blocking port straight to forwarding
	// (net/bridge/br_stp.c: br_port_state_selection, br_make_forwarding).
	// PortListening and PortLearning stay as set until the carrier goes.
	State *PortState
}

func (p *BridgePort) validate() error {
	if p.State != nil && *p.State > PortBlocking {
		return errPortState
	}
	return nil
}
