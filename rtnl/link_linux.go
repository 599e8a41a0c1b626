package rtnl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// linkAnswerSize estimates a link get's answer in the receive buffer: a
// TAP bridge port without statistics is 1.6 KiB, allocated in a larger
// buffer (rtnl_getlink: nlmsg_new(if_nlmsg_size)).
const linkAnswerSize = 4 << 10

var errShortLinkMessage = errors.New("link message shorter than ifinfomsg")

// LinkByName returns the link named name. The kernel also matches
// alternative names. It fails with an error satisfying
// errors.Is(err, unix.ENODEV) if there is no such link.
func (c *Conn) LinkByName(ctx context.Context, name string) (*Link, error) {
	var b Batch
	l := new(Link)
	b.GetLinkByName(name, l)
	if err := c.exec1(ctx, &b); err != nil {
		return nil, err
	}
	return l, nil
}

// LinkByAltName returns the link carrying the alternative name name. It
// fails with an error satisfying errors.Is(err, unix.ENODEV) if there is no
// such link.
func (c *Conn) LinkByAltName(ctx context.Context, name string) (*Link, error) {
	var b Batch
	l := new(Link)
	b.GetLinkByAltName(name, l)
	if err := c.exec1(ctx, &b); err != nil {
		return nil, err
	}
	return l, nil
}

// LinkByIndex returns the link with ifindex index. It fails with an error
// satisfying errors.Is(err, unix.ENODEV) if there is no such link.
func (c *Conn) LinkByIndex(ctx context.Context, index uint32) (*Link, error) {
	var b Batch
	l := new(Link)
	b.GetLinkByIndex(index, l)
	if err := c.exec1(ctx, &b); err != nil {
		return nil, err
	}
	return l, nil
}

// Links dumps the links of the Conn's namespace that pass f (nil: all), in
// ifindex order. If the kernel marks the dump interrupted by concurrent
// changes it is retried from scratch a bounded number of times; after that
// Links fails with an error wrapping ErrDumpInterrupted and returns no links.
func (c *Conn) Links(ctx context.Context, f *LinkFilter) ([]Link, error) {
	var links []Link
	err := c.WalkLinks(ctx, f, func(l *Link) error {
		links = append(links, *l)
		return nil
	}, func() {
		// An interrupted attempt may have delivered some links before
		// the kernel flagged it; the retry lists them all again.
		links = links[:0]
	})
	if err != nil {
		return nil, err
	}
	return links, nil
}

// WalkLinks is Links without the slice: fn sees each link of a complete
// dump. fn's *Link is reused between calls; copy what must outlive the call.
// Because an interrupted dump is retried from scratch, fn may see a link
// more than once; reset is called before every attempt, including the
// first, so that fn's caller can discard what it gathered. reset may be nil.
// An error from fn stops the walk and is returned wrapped.
func (c *Conn) WalkLinks(ctx context.Context, f *LinkFilter, fn func(*Link) error, reset ...func()) error {
	if f == nil {
		f = &LinkFilter{}
	}
	data, err := dumpLinksRequest(f)
	if err != nil {
		return fmt.Errorf("dump links: %w", err)
	}
	req := netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   data,
	}
	var l Link
	return c.dump(ctx, "dump links", req, func(m *netlink.Message) error {
		if m == nil {
			for _, r := range reset {
				r()
			}
			return nil
		}
		if m.Header.Type != unix.RTM_NEWLINK {
			return nil
		}
		if err := l.decode(m.Data, f.Brief); err != nil {
			return err
		}
		return fn(&l)
	})
}

func dumpLinksRequest(f *LinkFilter) ([]byte, error) {
	mask := uint32(rtextFilterSkipStats)
	lm := rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{ExtMask: &mask}}
	if f.Master != 0 {
		lm.Attributes.Master = &f.Master
	}
	b, err := lm.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if f.Kind == "" {
		return b, nil
	}
	return encodeAttrs(b, func(ae *netlink.AttributeEncoder) {
		ae.Nested(unix.IFLA_LINKINFO, func(nae *netlink.AttributeEncoder) error {
			nae.String(unix.IFLA_INFO_KIND, f.Kind)
			return nil
		})
	})
}

// GetLinkByName adds a request for the link named name; on success Exec
// fills *dst. The request's result satisfies errors.Is(err, unix.ENODEV)
// when there is no such link.
func (b *Batch) GetLinkByName(name string, dst *Link) {
	mask := uint32(rtextFilterSkipStats)
	lm := rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{Name: name, ExtMask: &mask}}
	data, err := lm.MarshalBinary()
	b.addLinkGet(data, err, "get link "+name, dst)
}

// GetLinkByAltName adds a request for the link with alternative name name;
// on success Exec fills *dst. The request's result satisfies
// errors.Is(err, unix.ENODEV) when there is no such link.
func (b *Batch) GetLinkByAltName(name string, dst *Link) {
	mask := uint32(rtextFilterSkipStats)
	lm := rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{ExtMask: &mask}}
	data, err := lm.MarshalBinary()
	if err == nil {
		data, err = encodeAttrs(data, func(ae *netlink.AttributeEncoder) {
			ae.String(unix.IFLA_ALT_IFNAME, name)
		})
	}
	b.addLinkGet(data, err, "get link altname "+name, dst)
}

// GetLinkByIndex adds a request for the link with ifindex index; on success
// Exec fills *dst. The request's result satisfies errors.Is(err,
// unix.ENODEV) when there is no such link.
func (b *Batch) GetLinkByIndex(index uint32, dst *Link) {
	mask := uint32(rtextFilterSkipStats)
	lm := rtnetlink.LinkMessage{Index: index, Attributes: &rtnetlink.LinkAttributes{ExtMask: &mask}}
	data, err := lm.MarshalBinary()
	b.addLinkGet(data, err, fmt.Sprintf("get link %d", index), dst)
}

// addLinkGet adds an RTM_GETLINK get answered into dst.
func (b *Batch) addLinkGet(data []byte, err error, op string, dst *Link) {
	b.addGet(unix.RTM_GETLINK, 0, data, err, op, (*linkAnswer)(dst), linkAnswerSize)
}

// linkAnswer is a *Link as the destination of a get. A conversion, not a
// wrapper: it costs nothing.
type linkAnswer Link

func (l *linkAnswer) decode(typ netlink.HeaderType, data []byte) error {
	if typ != unix.RTM_NEWLINK {
		return unexpectedType(typ)
	}
	if err := (*Link)(l).unmarshal(data); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// absent is false: a get of a link that does not exist fails (ENODEV).
func (*linkAnswer) absent(error) bool { return false }

// unmarshal decodes an RTM_NEWLINK payload into l.
func (l *Link) unmarshal(b []byte) error { return l.decode(b, false) }

// decode decodes an RTM_NEWLINK payload into l, all of it or, if brief, what
// LinkFilter.Brief keeps.
func (l *Link) decode(b []byte, brief bool) error {
	if len(b) < unix.SizeofIfInfomsg {
		return errShortLinkMessage
	}
	// Start from scratch: a get's destination may hold an earlier answer
	// (a Batch can be executed again), and nothing of it may survive.
	*l = Link{AddrGenMode: -1}
	l.Type = ne.Uint16(b[2:4])
	l.Index = ne.Uint32(b[4:8])
	l.Flags = ne.Uint32(b[8:12])
	a := attrs{b: b[unix.SizeofIfInfomsg:]}
	for a.next() {
		switch a.typ {
		case unix.IFLA_IFNAME:
			l.Name = a.str()
		case unix.IFLA_MTU:
			l.MTU = a.u32()
		case unix.IFLA_TXQLEN:
			l.TxQueueLen = a.u32()
		case unix.IFLA_MASTER:
			l.Master = a.u32()
		case unix.IFLA_GROUP:
			l.Group = a.u32()
		case unix.IFLA_IFALIAS:
			l.Alias = a.str()
		case unix.IFLA_ADDRESS:
			if !brief {
				l.Address = net.HardwareAddr(bytes.Clone(a.data))
			}
		case unix.IFLA_OPERSTATE:
			l.OperState = a.u8()
		case unix.IFLA_CARRIER:
			l.Carrier = a.u8() != 0
		case unix.IFLA_PROP_LIST:
			if !brief {
				a.err = l.decodeProps(a.data)
			}
		case unix.IFLA_LINKINFO:
			a.err = l.decodeLinkInfo(a.data, brief)
		case unix.IFLA_AF_SPEC:
			if !brief {
				a.err = l.decodeAFSpec(a.data)
			}
		}
	}
	return a.err
}

func (l *Link) decodeProps(b []byte) error {
	a := attrs{b: b}
	for a.next() {
		if a.typ == unix.IFLA_ALT_IFNAME {
			l.AltNames = append(l.AltNames, a.str())
		}
	}
	return a.err
}

func (l *Link) decodeLinkInfo(b []byte, brief bool) error {
	// IFLA_INFO_KIND precedes IFLA_INFO_DATA in what the kernel sends
	// (rtnl_link_info_fill), but keep the data until the kind is known.
	var data, slaveData []byte
	a := attrs{b: b}
	for a.next() {
		switch a.typ {
		case unix.IFLA_INFO_KIND:
			l.Kind = a.kind()
		case unix.IFLA_INFO_SLAVE_KIND:
			if !brief {
				l.SlaveKind = a.kind()
			}
		case unix.IFLA_INFO_DATA:
			data = a.data
		case unix.IFLA_INFO_SLAVE_DATA:
			slaveData = a.data
		}
	}
	if a.err != nil {
		return a.err
	}
	if l.Kind == "tun" && data != nil {
		l.Tun = new(TunInfo)
		if err := l.Tun.decode(data); err != nil {
			return err
		}
	}
	if l.SlaveKind == "bridge" && slaveData != nil && !brief {
		l.Port = new(PortInfo)
		if err := l.Port.decode(slaveData); err != nil {
			return err
		}
	}
	return nil
}

func (l *Link) decodeAFSpec(b []byte) error {
	a := attrs{b: b}
	for a.next() {
		if a.typ != unix.AF_INET6 {
			continue
		}
		in := attrs{b: a.data}
		for in.next() {
			if in.typ == unix.IFLA_INET6_ADDR_GEN_MODE {
				l.AddrGenMode = int(in.u8())
			}
		}
		if in.err != nil {
			return in.err
		}
	}
	return a.err
}

func (t *TunInfo) decode(b []byte) error {
	a := attrs{b: b}
	for a.next() {
		switch a.typ {
		case unix.IFLA_TUN_TYPE:
			t.TAP = a.u8() == unix.IFF_TAP
		case unix.IFLA_TUN_PI:
			t.PI = a.u8() != 0
		case unix.IFLA_TUN_VNET_HDR:
			t.VnetHdr = a.u8() != 0
		case unix.IFLA_TUN_PERSIST:
			t.Persist = a.u8() != 0
		case unix.IFLA_TUN_MULTI_QUEUE:
			t.MultiQueue = a.u8() != 0
		case unix.IFLA_TUN_NUM_QUEUES:
			t.Queues = a.u32()
		case unix.IFLA_TUN_NUM_DISABLED_QUEUES:
			t.DisabledQueues = a.u32()
		case unix.IFLA_TUN_OWNER:
			v := a.u32()
			t.Owner = &v
		case unix.IFLA_TUN_GROUP:
			v := a.u32()
			t.Group = &v
		}
	}
	return a.err
}

func (p *PortInfo) decode(b []byte) error {
	a := attrs{b: b}
	for a.next() {
		switch a.typ {
		case unix.IFLA_BRPORT_LEARNING:
			p.Learning = a.u8() != 0
		case unix.IFLA_BRPORT_UNICAST_FLOOD:
			p.UnicastFlood = a.u8() != 0
		case unix.IFLA_BRPORT_ISOLATED:
			p.Isolated = a.u8() != 0
		case unix.IFLA_BRPORT_LOCKED:
			p.Locked = a.u8() != 0
		case unix.IFLA_BRPORT_NEIGH_SUPPRESS:
			p.NeighSuppress = a.u8() != 0
		case unix.IFLA_BRPORT_BCAST_FLOOD:
			p.BcastFlood = a.u8() != 0
		case unix.IFLA_BRPORT_MCAST_FLOOD:
			p.McastFlood = a.u8() != 0
		case unix.IFLA_BRPORT_STATE:
			p.State = PortState(a.u8())
		}
	}
	return a.err
}
