package rtnl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ntfSticky is NTF_STICKY: an FDB entry that never moves to another
// port on its own.
const ntfSticky = 0x40

// fdbAnswerSize estimates an FDB get's answer in the receive buffer.
const fdbAnswerSize = 1 << 10

var (
	errShortNdMessage = errors.New("neighbour message shorter than ndmsg")
	errUseWithOptions = errors.New("fdb: Use excludes Sticky and Exclusive")
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
	b.AddFDBWith(index, mac, nil)
}

// AddFDBExclusive is AddFDB that refuses to take mac over: if the bridge
// already has an entry for mac, on any port, the request fails with an
// error satisfying errors.Is(err, unix.EEXIST) and changes nothing. Use it
// for a MAC that must be new to the bridge.
func (b *Batch) AddFDBExclusive(index uint32, mac net.HardwareAddr) {
	b.AddFDBWith(index, mac, &FDBOptions{Exclusive: true})
}

// AddFDBWith is AddFDB with options (nil: none). A sticky static entry
// is what the kernel accepts on a port (net/bridge/br_fdb.c:
// fdb_add_entry refuses only sticky permanent ones) and what `bridge fdb
// show` prints as "static" with flag "sticky". It fails as AddFDB does:
// with an error satisfying errors.Is(err, unix.ENODEV) if the port does
// not exist, unix.EOPNOTSUPP if it is not a bridge port, and with
// Exclusive unix.EEXIST if the bridge has an entry for mac.
func (c *Conn) AddFDBWith(ctx context.Context, index uint32, mac net.HardwareAddr, o *FDBOptions) error {
	var b Batch
	b.AddFDBWith(index, mac, o)
	return c.exec1(ctx, &b)
}

// AddFDBWith adds the request of [Conn.AddFDBWith].
func (b *Batch) AddFDBWith(index uint32, mac net.HardwareAddr, o *FDBOptions) {
	if o == nil {
		o = &FDBOptions{}
	}
	flags := uint8(unix.NTF_MASTER)
	state := uint16(unix.NUD_NOARP)
	op := "add"
	var err error
	switch {
	case o.Use && (o.Sticky || o.Exclusive):
		err = errUseWithOptions
	case o.Use:
		// The state is not used on this path, but br_fdb_add refuses a
		// request without one of PERMANENT, NOARP or REACHABLE; a learned
		// entry is REACHABLE.
		flags |= unix.NTF_USE
		state = unix.NUD_REACHABLE
		op = "use"
	case o.Sticky:
		flags |= ntfSticky
	}
	excl := netlink.HeaderFlags(netlink.Replace)
	if o.Exclusive {
		excl = netlink.Excl
	}
	data, derr := fdbMessage(index, mac, state, flags)
	if err == nil {
		err = derr
	}
	b.add(unix.RTM_NEWNEIGH, netlink.Acknowledge|netlink.Create|excl, data, err,
		fmt.Sprintf("%s fdb %s on link %d", op, mac, index))
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
	data, err := fdbMessage(index, mac, unix.NUD_NOARP, unix.NTF_MASTER)
	b.add(unix.RTM_DELNEIGH, netlink.Acknowledge, data, err,
		fmt.Sprintf("delete fdb %s on link %d", mac, index), unix.ENOENT)
}

// DelFDBSelf deletes the entry for mac that device index keeps itself
// (RTM_DELNEIGH with NTF_SELF, what `bridge fdb del MAC dev DEV self`
// sends), such as a vxlan device's entry that sends frames for mac to a
// remote VTEP (drivers/net/vxlan/vxlan_core.c: vxlan_fdb_delete; with no
// NDA_DST it deletes every remote of the entry). The bridge's own entry
// for mac is left alone. Unlike DelFDB it does not treat a missing entry
// as success: it fails with an error satisfying errors.Is(err,
// unix.ENOENT) if the device has no entry for mac, so that a caller can
// tell "deleted" from "was not there", and with unix.ENODEV if the device
// does not exist.
func (c *Conn) DelFDBSelf(ctx context.Context, index uint32, mac net.HardwareAddr) error {
	var b Batch
	b.DelFDBSelf(index, mac)
	return c.exec1(ctx, &b)
}

// DelFDBSelf adds the request of [Conn.DelFDBSelf].
func (b *Batch) DelFDBSelf(index uint32, mac net.HardwareAddr) {
	data, err := fdbMessage(index, mac, 0, unix.NTF_SELF)
	b.add(unix.RTM_DELNEIGH, netlink.Acknowledge, data, err,
		fmt.Sprintf("delete self fdb %s on link %d", mac, index))
}

func fdbMessage(index uint32, mac net.HardwareAddr, state uint16, flags uint8) ([]byte, error) {
	if index == 0 {
		return nil, errNoIndex
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("MAC %q: want 6 bytes, have %d", mac.String(), len(mac))
	}
	b := ndmsg(index, state, flags, 12)
	return encodeAttrs(b, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(unix.NDA_LLADDR, mac)
	})
}

// ndmsg returns an AF_BRIDGE struct ndmsg (family, pad, pad, ifindex,
// state, flags, type) with room for extra more bytes.
func ndmsg(index uint32, state uint16, flags uint8, extra int) []byte {
	b := make([]byte, unix.SizeofNdMsg, unix.SizeofNdMsg+extra)
	b[0] = unix.AF_BRIDGE
	ne.PutUint32(b[4:8], index)
	ne.PutUint16(b[8:10], state)
	b[10] = flags
	return b
}

// FDBEntry returns the bridge's forwarding entry for mac (VLAN 0) on the
// bridge that port index belongs to (RTM_GETNEIGH, net/core/rtnetlink.c:
// rtnl_fdb_get -> br_fdb_get), wherever it points: compare the answer's
// Port with index to check one NIC's entry. It fails with an error
// satisfying errors.Is(err, unix.ENOENT) if the bridge has no entry for
// mac, unix.ENODEV if the link does not exist and unix.EINVAL if it is not
// a bridge port.
func (c *Conn) FDBEntry(ctx context.Context, index uint32, mac net.HardwareAddr) (*FDBEntry, error) {
	var b Batch
	e := new(FDBEntry)
	b.GetFDBEntry(index, mac, e)
	if err := c.exec1(ctx, &b); err != nil {
		return nil, err
	}
	return e, nil
}

// GetFDBEntry adds the request of [Conn.FDBEntry]; on success Exec fills
// *dst.
func (b *Batch) GetFDBEntry(index uint32, mac net.HardwareAddr, dst *FDBEntry) {
	// valid_fdb_get_strict: state 0, flags NTF_MASTER (the port's bridge).
	data, err := fdbMessage(index, mac, 0, unix.NTF_MASTER)
	b.addGet(unix.RTM_GETNEIGH, 0, data, err, fmt.Sprintf("get fdb %s of link %d", mac, index),
		(*fdbAnswer)(dst), fdbAnswerSize)
}

// fdbAnswer is a *FDBEntry as the destination of GetFDBEntry.
type fdbAnswer FDBEntry

func (e *fdbAnswer) decode(typ netlink.HeaderType, data []byte) error {
	if typ != unix.RTM_NEWNEIGH {
		return unexpectedType(typ)
	}
	if err := (*FDBEntry)(e).decode(data); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// absent is false: a missing entry is an error (ENOENT).
func (*fdbAnswer) absent(error) bool { return false }

// FDB dumps the forwarding entries that pass f (nil: all) with the
// kernel's filters. It fails with an error satisfying errors.Is(err,
// unix.ENODEV) if f.Master names no device. An interrupted dump is
// retried like Links; after the last retry FDB fails with an error
// wrapping ErrDumpInterrupted.
func (c *Conn) FDB(ctx context.Context, f *FDBFilter) ([]FDBEntry, error) {
	var es []FDBEntry
	err := c.WalkFDB(ctx, f, func(e *FDBEntry) error {
		es = append(es, *e)
		return nil
	}, func() { es = es[:0] })
	if err != nil {
		return nil, err
	}
	return es, nil
}

// WalkFDB is FDB without the slice, as WalkLinks is Links: fn's *FDBEntry
// is reused between calls (each has a MAC of its own), fn may see an
// entry again after reset, which is called before every attempt (reset
// may be nil), and an error from fn stops the walk and is returned wrapped.
func (c *Conn) WalkFDB(ctx context.Context, f *FDBFilter, fn func(*FDBEntry) error, reset ...func()) error {
	if f == nil {
		f = &FDBFilter{}
	}
	// Strict checking takes the port in ndm_ifindex and the bridge in
	// NDA_MASTER, and a header otherwise zero (valid_fdb_dump_strict).
	data := ndmsg(f.Port, 0, 0, 8)
	if f.Master != 0 {
		var err error
		data, err = encodeAttrs(data, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NDA_MASTER, f.Master)
		})
		if err != nil {
			return fmt.Errorf("dump fdb: %w", err)
		}
	}
	req := netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETNEIGH, Flags: netlink.Request | netlink.Dump},
		Data:   data,
	}
	var e FDBEntry
	return c.dump(ctx, "dump fdb", req, func(m *netlink.Message) error {
		if m == nil {
			for _, r := range reset {
				r()
			}
			return nil
		}
		if m.Header.Type != unix.RTM_NEWNEIGH {
			return nil
		}
		if err := e.decode(m.Data); err != nil {
			return err
		}
		return fn(&e)
	})
}

// decode decodes an AF_BRIDGE RTM_NEWNEIGH payload into e.
func (e *FDBEntry) decode(b []byte) error {
	if len(b) < unix.SizeofNdMsg {
		return errShortNdMessage
	}
	flags := b[10]
	*e = FDBEntry{
		Port:       ne.Uint32(b[4:8]),
		State:      FDBState(ne.Uint16(b[8:10])),
		Self:       flags&unix.NTF_SELF != 0,
		ExtLearned: flags&unix.NTF_EXT_LEARNED != 0,
		Sticky:     flags&ntfSticky != 0,
		Offloaded:  flags&unix.NTF_OFFLOADED != 0,
	}
	a := attrs{b: b[unix.SizeofNdMsg:]}
	for a.next() {
		switch a.typ {
		case unix.NDA_LLADDR:
			e.MAC = net.HardwareAddr(bytes.Clone(a.data))
		case unix.NDA_MASTER:
			e.Master = a.u32()
		case unix.NDA_VLAN:
			e.VLAN = a.u16()
		case unix.NDA_VNI:
			e.VNI = a.u32()
		case unix.NDA_DST:
			var ok bool
			if e.Dst, ok = netip.AddrFromSlice(a.data); !ok {
				a.err = fmt.Errorf("NDA_DST of %d bytes: %w", len(a.data), errBadAttr)
			}
		}
	}
	return a.err
}
