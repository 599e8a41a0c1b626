package rtnl

import (
	"context"
	"fmt"
	"net"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// BridgePort is a set of bridge-port flags to change on an enslaved link.
// Nil fields are left unchanged.
type BridgePort struct {
	Learning      *bool // learn source MACs of frames from this port
	UnicastFlood  *bool // flood unknown-unicast frames to this port
	Isolated      *bool // isolated ports cannot talk to each other
	Locked        *bool // only FDB-known source MACs may send (802.1X-style)
	NeighSuppress *bool // answer ARP/ND for this port from the bridge
	McastFlood    *bool // flood unknown-multicast frames to this port
	BcastFlood    *bool // flood broadcast frames to this port
}

// SetBridgePort changes the bridge-port flags of link index, which must
// already be a port of a bridge: port settings sent in the same message as
// the master are refused (EOPNOTSUPP), because the kernel parses them
// against the master the link had when the message arrived. It fails with
// an error satisfying errors.Is(err, unix.EOPNOTSUPP) when the link is not a
// bridge port and unix.ENODEV when it does not exist.
func (c *Conn) SetBridgePort(ctx context.Context, index uint32, p *BridgePort) error {
	var b Batch
	b.SetBridgePort(index, p)
	return c.exec1(ctx, &b)
}

// SetBridgePort adds the request of [Conn.SetBridgePort].
func (b *Batch) SetBridgePort(index uint32, p *BridgePort) {
	data, err := p.marshal(index)
	b.add(unix.RTM_NEWLINK, netlink.Acknowledge, data, err, fmt.Sprintf("set bridge port %d", index))
}

func (p *BridgePort) marshal(index uint32) ([]byte, error) {
	if index == 0 {
		return nil, errNoIndex
	}
	// RTM_NEWLINK on an existing device with IFLA_LINKINFO carrying only
	// IFLA_INFO_SLAVE_DATA reaches the master's slave_changelink
	// (net/bridge/br_netlink.c: br_port_slave_changelink -> br_setport).
	return encodeAttrs(ifinfomsg(index, 0, 0, 48), func(ae *netlink.AttributeEncoder) {
		ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.IFLA_INFO_SLAVE_DATA, func(ae *netlink.AttributeEncoder) error {
				putFlag(ae, unix.IFLA_BRPORT_LEARNING, p.Learning)
				putFlag(ae, unix.IFLA_BRPORT_UNICAST_FLOOD, p.UnicastFlood)
				putFlag(ae, unix.IFLA_BRPORT_ISOLATED, p.Isolated)
				putFlag(ae, unix.IFLA_BRPORT_LOCKED, p.Locked)
				putFlag(ae, unix.IFLA_BRPORT_NEIGH_SUPPRESS, p.NeighSuppress)
				putFlag(ae, unix.IFLA_BRPORT_MCAST_FLOOD, p.McastFlood)
				putFlag(ae, unix.IFLA_BRPORT_BCAST_FLOOD, p.BcastFlood)
				return nil
			})
			return nil
		})
	})
}

func putFlag(ae *netlink.AttributeEncoder, typ uint16, v *bool) {
	if v == nil {
		return
	}
	var u uint8
	if *v {
		u = 1
	}
	ae.Uint8(typ, u)
}

// AddFDB adds (or moves to this port) a static forwarding entry for mac on
// bridge port index: frames for mac go only to that port, and the entry
// never ages out. It is static (NUD_NOARP, what `bridge fdb add ... master
// static` makes), not permanent: a permanent entry would mark mac as local
// to the bridge and deliver its frames to the host. Adding an entry that
// exists is not an error.
func (c *Conn) AddFDB(ctx context.Context, index uint32, mac net.HardwareAddr) error {
	var b Batch
	b.AddFDB(index, mac)
	return c.exec1(ctx, &b)
}

// AddFDB adds the request of [Conn.AddFDB].
func (b *Batch) AddFDB(index uint32, mac net.HardwareAddr) {
	data, err := fdbMessage(index, mac)
	b.add(unix.RTM_NEWNEIGH, netlink.Acknowledge|netlink.Create|netlink.Replace, data, err,
		fmt.Sprintf("add fdb %s on link %d", mac, index))
}

// AddFDBExclusive is AddFDB that refuses to take mac over: if the bridge
// already has an entry for mac, on any port, the request fails with an
// error satisfying errors.Is(err, unix.EEXIST) and changes nothing. Use it
// for a MAC that must be new to the bridge.
func (b *Batch) AddFDBExclusive(index uint32, mac net.HardwareAddr) {
	data, err := fdbMessage(index, mac)
	b.add(unix.RTM_NEWNEIGH, netlink.Acknowledge|netlink.Create|netlink.Excl, data, err,
		fmt.Sprintf("add fdb %s on link %d", mac, index))
}

// DelFDB removes the forwarding entry for mac on bridge port index. An
// entry that is already gone counts as removed (ENOENT is not an error).
func (c *Conn) DelFDB(ctx context.Context, index uint32, mac net.HardwareAddr) error {
	var b Batch
	b.DelFDB(index, mac)
	return c.exec1(ctx, &b)
}

// DelFDB adds the request of [Conn.DelFDB].
func (b *Batch) DelFDB(index uint32, mac net.HardwareAddr) {
	data, err := fdbMessage(index, mac)
	b.add(unix.RTM_DELNEIGH, netlink.Acknowledge, data, err,
		fmt.Sprintf("delete fdb %s on link %d", mac, index), unix.ENOENT)
}

func fdbMessage(index uint32, mac net.HardwareAddr) ([]byte, error) {
	if index == 0 {
		return nil, errNoIndex
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("MAC %q: want 6 bytes, have %d", mac.String(), len(mac))
	}
	// struct ndmsg: family, pad, pad, ifindex, state, flags, type.
	b := make([]byte, unix.SizeofNdMsg, unix.SizeofNdMsg+12)
	b[0] = unix.AF_BRIDGE
	ne.PutUint32(b[4:8], index)
	ne.PutUint16(b[8:10], unix.NUD_NOARP)
	b[10] = unix.NTF_MASTER
	return encodeAttrs(b, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(unix.NDA_LLADDR, mac)
	})
}
