package rtnl

import (
	"context"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// SetNoQueue installs (or keeps) a noqueue root qdisc on link index.
//
// Do it before the link first comes up: a device brought up with the
// default qdisc gets one per TX queue, and a multi-queue TAP has 256 of
// them, each with rings sized by txqueuelen (about 96 MB of kernel memory
// at txqueuelen 10000). tun keeps its own per-queue ring and drops when it
// is full, so a qdisc in front of it adds cost, not buffering. It fails with
// an error satisfying errors.Is(err, unix.ENODEV) if the link does not
// exist.
func (c *Conn) SetNoQueue(ctx context.Context, index uint32) error {
	var b Batch
	b.SetNoQueue(index)
	return c.exec1(ctx, &b)
}

// SetNoQueue adds the request of [Conn.SetNoQueue].
func (b *Batch) SetNoQueue(index uint32) {
	var err error
	if index == 0 {
		err = errNoIndex
	}
	// struct tcmsg: family, pad, pad, ifindex, handle, parent, info.
	m := make([]byte, sizeofTcMsg, sizeofTcMsg+12)
	ne.PutUint32(m[4:8], index)
	ne.PutUint32(m[12:16], tcHRoot)
	data, eerr := encodeAttrs(m, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.TCA_KIND, "noqueue")
	})
	if err == nil {
		err = eerr
	}
	b.add(unix.RTM_NEWQDISC, netlink.Acknowledge|netlink.Create|netlink.Replace, data, err,
		fmt.Sprintf("set noqueue qdisc on link %d", index))
}
