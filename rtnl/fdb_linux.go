package rtnl

import (
	"context"
	"fmt"
	"net"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

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
