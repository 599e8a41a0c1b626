package rtnl

import (
	"context"
	"fmt"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// AddBridge creates the bridge name, up, and returns its ifindex. tapbridge
// itself never creates bridges (the provider serves one that exists); this
// is for tools that need a fresh one, such as the demo's throwaway
// namespace. It fails with an error satisfying errors.Is(err, unix.EEXIST)
// if the name is taken.
func (c *Conn) AddBridge(ctx context.Context, name string) (uint32, error) {
	lm := rtnetlink.LinkMessage{
		Flags: unix.IFF_UP, Change: unix.IFF_UP,
		Attributes: &rtnetlink.LinkAttributes{Name: name, Info: &rtnetlink.LinkInfo{Kind: "bridge"}},
	}
	data, err := lm.MarshalBinary()
	var b Batch
	b.add(unix.RTM_NEWLINK, netlink.Acknowledge|netlink.Create|netlink.Excl, data, err, "add bridge "+name)
	if err := c.exec1(ctx, &b); err != nil {
		return 0, err
	}
	index, err := c.IndexByName(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("add bridge %s: %w", name, err)
	}
	return index, nil
}
