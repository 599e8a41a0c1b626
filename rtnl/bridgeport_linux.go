package rtnl

import (
	"context"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SetBridgePort changes the bridge-port settings of link index, which must
// already be a port of a bridge: port settings sent in the same message as
// the master are refused (EOPNOTSUPP), because the kernel parses them
// against the master the link had when the message arrived. It fails with
// an error satisfying errors.Is(err, unix.EOPNOTSUPP) when the link is not a
// bridge port and unix.ENODEV when it does not exist; see
// [BridgePort.State] for the errors of a state change. To change port
// settings together with other link settings in one message, use
// [LinkChange.Port].
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
	if err := p.validate(); err != nil {
		return nil, err
	}
	return encodeAttrs(ifinfomsg(index, 0, 0, 64), p.encode)
}

// encode encodes p as IFLA_LINKINFO carrying only IFLA_INFO_SLAVE_DATA.
// In an RTM_NEWLINK for an existing device that reaches the master's
// slave_changelink (net/core/rtnetlink.c: rtnl_changelink;
// net/bridge/br_netlink.c: br_port_slave_changelink -> br_setport).
func (p *BridgePort) encode(ae *netlink.AttributeEncoder) {
	ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
		ae.Nested(unix.IFLA_INFO_SLAVE_DATA, func(ae *netlink.AttributeEncoder) error {
			putFlag(ae, unix.IFLA_BRPORT_LEARNING, p.Learning)
			putFlag(ae, unix.IFLA_BRPORT_UNICAST_FLOOD, p.UnicastFlood)
			putFlag(ae, unix.IFLA_BRPORT_ISOLATED, p.Isolated)
			putFlag(ae, unix.IFLA_BRPORT_LOCKED, p.Locked)
			putFlag(ae, unix.IFLA_BRPORT_NEIGH_SUPPRESS, p.NeighSuppress)
			putFlag(ae, unix.IFLA_BRPORT_BCAST_FLOOD, p.BcastFlood)
			putFlag(ae, unix.IFLA_BRPORT_MCAST_FLOOD, p.McastFlood)
			if p.State != nil {
				ae.Uint8(unix.IFLA_BRPORT_STATE, uint8(*p.State))
			}
			return nil
		})
		return nil
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
