package rtnl

import (
	"context"
	"errors"
	"fmt"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SetLink applies ch in one message. It fails with an error satisfying
// errors.Is(err, unix.ENODEV) if the link does not exist, and with the
// kernel's errno for a refused change (EBUSY renaming a link that is up,
// EEXIST for a name in use, EINVAL for an MTU out of range...).
func (c *Conn) SetLink(ctx context.Context, ch *LinkChange) error {
	var b Batch
	b.SetLink(ch)
	return c.exec1(ctx, &b)
}

// SetLink adds the changes of ch as one request.
func (b *Batch) SetLink(ch *LinkChange) {
	data, err := ch.marshal()
	op := fmt.Sprintf("set link %d", ch.Index)
	if ch.Index == 0 && ch.AltName != "" {
		op = "set link " + ch.AltName
	}
	b.add(unix.RTM_NEWLINK, netlink.Acknowledge, data, err, op)
}

func (ch *LinkChange) marshal() ([]byte, error) {
	if err := ch.validate(); err != nil {
		return nil, err
	}
	lm := rtnetlink.LinkMessage{Index: ch.Index, Attributes: &rtnetlink.LinkAttributes{
		Name:    ch.Name,
		Alias:   ch.Alias,
		MTU:     ch.MTU,
		Address: ch.Address,
		Master:  ch.Master,
	}}
	if ch.Up != nil {
		lm.Change = unix.IFF_UP
		if *ch.Up {
			lm.Flags = unix.IFF_UP
		}
	}
	b, err := lm.MarshalBinary()
	if err != nil {
		return nil, err
	}
	selectAlt := ch.Index == 0
	if ch.TxQueueLen == nil && ch.Group == nil && !ch.AddrGenModeNone && !selectAlt && ch.Port == nil {
		return b, nil
	}
	// rtnetlink v2 decodes but does not encode these.
	return encodeAttrs(b, func(ae *netlink.AttributeEncoder) {
		if selectAlt {
			ae.String(unix.IFLA_ALT_IFNAME, ch.AltName)
		}
		if ch.TxQueueLen != nil {
			ae.Uint32(unix.IFLA_TXQLEN, *ch.TxQueueLen)
		}
		if ch.Group != nil {
			ae.Uint32(unix.IFLA_GROUP, *ch.Group)
		}
		if ch.AddrGenModeNone {
			ae.Nested(unix.IFLA_AF_SPEC, func(ae *netlink.AttributeEncoder) error {
				ae.Nested(unix.AF_INET6, func(ae *netlink.AttributeEncoder) error {
					ae.Uint8(unix.IFLA_INET6_ADDR_GEN_MODE, in6AddrGenModeNone)
					return nil
				})
				return nil
			})
		}
		if ch.Port != nil {
			ch.Port.encode(ae)
		}
	})
}

// DeleteLink deletes the link with ifindex index. A link that is already
// gone counts as deleted (ENODEV is not an error). Each deletion waits for
// an RCU grace period in the kernel; to delete many links at once, move them
// into one group and use DeleteGroup.
func (c *Conn) DeleteLink(ctx context.Context, index uint32) error {
	var b Batch
	b.DeleteLink(index)
	return c.exec1(ctx, &b)
}

// DeleteLink adds the deletion of link index; ENODEV counts as success.
func (b *Batch) DeleteLink(index uint32) {
	var err error
	if index == 0 {
		err = errNoIndex
	}
	lm := rtnetlink.LinkMessage{Index: index}
	data, merr := lm.MarshalBinary()
	b.add(unix.RTM_DELLINK, netlink.Acknowledge, data, errors.Join(err, merr), fmt.Sprintf("delete link %d", index), unix.ENODEV)
}

// DeleteGroup deletes every link of device group group in the Conn's
// namespace with one message and one RCU grace period for all of them
// (net/core/rtnetlink.c: rtnl_group_dellink).
//
// It is all or nothing: if one member cannot be deleted (a device without
// rtnl_link_ops, such as a physical NIC), the kernel deletes none and the
// error satisfies errors.Is(err, unix.EOPNOTSUPP). Group 0, the default
// group of every device, is refused by the kernel with EPERM, and here
// before sending. An empty group counts as deleted (ENODEV is not an error).
//
// Every device in the group goes, whoever put it there: reserve the group
// number for this purpose.
func (c *Conn) DeleteGroup(ctx context.Context, group uint32) error {
	var b Batch
	b.DeleteGroup(group)
	return c.exec1(ctx, &b)
}

// DeleteGroup adds the deletion of device group group; see
// [Conn.DeleteGroup].
func (b *Batch) DeleteGroup(group uint32) {
	var err error
	if group == 0 {
		err = fmt.Errorf("group 0 holds every device: %w", unix.EPERM)
	}
	data, eerr := encodeAttrs(ifinfomsg(0, 0, 0, 8), func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.IFLA_GROUP, group)
	})
	b.add(unix.RTM_DELLINK, netlink.Acknowledge, data, errors.Join(err, eerr), fmt.Sprintf("delete group %d", group), unix.ENODEV)
}

// AddAltName gives link index the alternative name name (up to 127 bytes;
// RTM_NEWLINKPROP). Alternative names share the namespace's name space with
// ordinary names: one in use fails with an error satisfying
// errors.Is(err, unix.EEXIST).
func (c *Conn) AddAltName(ctx context.Context, index uint32, name string) error {
	var b Batch
	b.AddAltName(index, name)
	return c.exec1(ctx, &b)
}

// AddAltName adds the request of [Conn.AddAltName].
func (b *Batch) AddAltName(index uint32, name string) {
	data, err := altNameMessage(index, name)
	b.add(unix.RTM_NEWLINKPROP, netlink.Acknowledge|netlink.Create|netlink.Excl, data, err,
		fmt.Sprintf("add altname %s to link %d", name, index))
}

// DelAltName removes the alternative name name from link index. A name
// that is already gone counts as removed (ENOENT and ENODEV are not
// errors).
func (c *Conn) DelAltName(ctx context.Context, index uint32, name string) error {
	var b Batch
	b.DelAltName(index, name)
	return c.exec1(ctx, &b)
}

// DelAltName adds the request of [Conn.DelAltName].
func (b *Batch) DelAltName(index uint32, name string) {
	data, err := altNameMessage(index, name)
	b.add(unix.RTM_DELLINKPROP, netlink.Acknowledge, data, err,
		fmt.Sprintf("delete altname %s from link %d", name, index), unix.ENOENT, unix.ENODEV)
}

func altNameMessage(index uint32, name string) ([]byte, error) {
	if index == 0 {
		return nil, errNoIndex
	}
	return encodeAttrs(ifinfomsg(index, 0, 0, len(name)+12), func(ae *netlink.AttributeEncoder) {
		ae.Nested(unix.IFLA_PROP_LIST, func(ae *netlink.AttributeEncoder) error {
			ae.String(unix.IFLA_ALT_IFNAME, name)
			return nil
		})
	})
}
