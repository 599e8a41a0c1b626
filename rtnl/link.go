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

var errShortLinkMessage = errors.New("link message shorter than ifinfomsg")

// Link is a network device as an rtnetlink link message describes it,
// reduced to the fields tapbridge reads.
type Link struct {
	Index      uint32
	Name       string
	Flags      uint32 // IFF_* device flags (netdevice(7))
	Type       uint16 // ARPHRD_* hardware type
	MTU        uint32
	TxQueueLen uint32
	Master     uint32 // ifindex of the master device, 0 if none
	Group      uint32 // device group
	Alias      string // IFLA_IFALIAS, "" if unset
	AltNames   []string
	Address    net.HardwareAddr
	OperState  uint8 // IF_OPER_* (RFC 2863 operational state)

	// Carrier is the lower layer's state (IFLA_CARRIER), whether or not
	// the link is up. A TAP has carrier while some process holds a queue
	// file attached, which is the only sign of that for a single-queue
	// TAP: the kernel reports TunInfo.Queues for multi-queue TAPs only.
	Carrier   bool
	Kind      string // IFLA_INFO_KIND: "tun", "bridge", "veth"...; "" for none
	SlaveKind string // IFLA_INFO_SLAVE_KIND: "bridge" for a bridge port

	// AddrGenMode is the IPv6 address generation mode
	// (IN6_ADDR_GEN_MODE_*), or -1 if the link has no IPv6 state.
	AddrGenMode int

	// Tun is set for TUN/TAP devices (Kind "tun").
	Tun *TunInfo

	// Port is set for bridge ports (SlaveKind "bridge").
	Port *PortInfo
}

// Up reports whether the link is administratively up (IFF_UP).
func (l *Link) Up() bool { return l.Flags&unix.IFF_UP != 0 }

// AttachedQueues returns how many queue files some process holds open on a
// TUN/TAP link, and 0 for any other link. The kernel reports queue counts
// only for multi-queue devices (drivers/net/tun.c: tun_fill_info), so for a
// single-queue one it is derived from the carrier, which tun turns on
// exactly while its queue is attached (tun_set_iff: netif_carrier_on;
// __tun_detach: netif_carrier_off) and which IFLA_CARRIER reports whether
// or not the link is up. Disabled queues (TUNSETQUEUE IFF_DETACH_QUEUE) are
// open too and count.
func (l *Link) AttachedQueues() int {
	switch {
	case l.Tun == nil:
		return 0
	case l.Tun.MultiQueue:
		return int(l.Tun.Queues + l.Tun.DisabledQueues)
	case l.Carrier:
		return 1
	}
	return 0
}

// TunInfo is what the tun driver reports about a device (IFLA_TUN_*,
// drivers/net/tun.c: tun_fill_info).
type TunInfo struct {
	TAP        bool // IFF_TAP; false means a TUN device
	PI         bool // frames carry the packet-information prefix
	VnetHdr    bool
	Persist    bool
	MultiQueue bool

	// Queues and DisabledQueues count the queue files attached to a
	// multi-queue device. The kernel reports them for multi-queue devices
	// only: for a single-queue device both are 0 even while it is
	// attached. Use Link.AttachedQueues.
	Queues         uint32
	DisabledQueues uint32

	Owner *uint32 // uid allowed to attach; nil when unset
	Group *uint32 // gid allowed to attach; nil when unset
}

// PortInfo is the bridge-port state the kernel reports for a port
// (IFLA_BRPORT_*).
type PortInfo struct {
	Learning      bool
	UnicastFlood  bool
	Isolated      bool
	Locked        bool
	NeighSuppress bool
}

// LinkFilter asks the kernel to filter a link dump (rtnl_dump_ifinfo:
// link_dump_filtered). The zero value lists every link.
type LinkFilter struct {
	// Master keeps only the links enslaved to this ifindex.
	Master uint32
	// Kind keeps only links of this IFLA_INFO_KIND, such as "tun".
	Kind string

	// Brief decodes less of each link, for scans of thousands of links:
	// AltNames, Address, SlaveKind and Port stay empty and AddrGenMode -1.
	Brief bool
}

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
	b.addGet(data, err, "get link "+name, dst)
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
	b.addGet(data, err, "get link altname "+name, dst)
}

// GetLinkByIndex adds a request for the link with ifindex index; on success
// Exec fills *dst. The request's result satisfies errors.Is(err,
// unix.ENODEV) when there is no such link.
func (b *Batch) GetLinkByIndex(index uint32, dst *Link) {
	mask := uint32(rtextFilterSkipStats)
	lm := rtnetlink.LinkMessage{Index: index, Attributes: &rtnetlink.LinkAttributes{ExtMask: &mask}}
	data, err := lm.MarshalBinary()
	b.addGet(data, err, fmt.Sprintf("get link %d", index), dst)
}

func (b *Batch) addGet(data []byte, err error, op string, dst *Link) {
	// No NLM_F_ACK: the kernel answers a get with exactly one message,
	// the link or an error.
	b.add(unix.RTM_GETLINK, 0, data, err, op)
	b.reqs[len(b.reqs)-1].dst = dst
}

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
		}
	}
	return a.err
}
