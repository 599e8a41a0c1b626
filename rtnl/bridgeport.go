package rtnl

// BridgePort is a set of bridge-port flags to change on an enslaved link.
// Nil fields are left unchanged.
type BridgePort struct {
	Learning      *bool // learn source MACs of frames from this port
	UnicastFlood  *bool // flood unknown-unicast frames to this port
	Isolated      *bool // isolated ports cannot talk to each other
	Locked        *bool // only FDB-known source MACs may send (802.1X-style)
	NeighSuppress *bool // answer ARP/ND for this port from the bridge
}
