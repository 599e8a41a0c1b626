package rtnl

import (
	"context"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// qdiscAnswerSize estimates a qdisc get's answer in the receive buffer.
const qdiscAnswerSize = 2 << 10

var errShortTcMessage = errors.New("tc message shorter than tcmsg")

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
	data, err := qdiscMessage(index, 0, tcHRoot, "noqueue")
	b.add(unix.RTM_NEWQDISC, netlink.Acknowledge|netlink.Create|netlink.Replace, data, err,
		fmt.Sprintf("set noqueue qdisc on link %d", index))
}

// AddClsact installs a clsact qdisc on link index, where SetIngressBPF
// attaches its filter. It is idempotent: on a link that has clsact
// already the request changes nothing, and the filters attached to it
// stay (net/sched/sch_api.c: tc_modify_qdisc finds the qdisc by its handle
// and, without NLM_F_EXCL and without options, leaves it as it is). It
// coexists with the egress root qdisc, such as SetNoQueue's. It fails with
// an error satisfying errors.Is(err, unix.ENODEV) if the link does not
// exist, and unix.EINVAL if the link has another ingress qdisc ("ingress").
func (c *Conn) AddClsact(ctx context.Context, index uint32) error {
	var b Batch
	b.AddClsact(index)
	return c.exec1(ctx, &b)
}

// AddClsact adds the request of [Conn.AddClsact].
func (b *Batch) AddClsact(index uint32) {
	// Parent TC_H_CLSACT and handle ffff:, as `tc qdisc add dev D clsact`.
	// NLM_F_CREATE|NLM_F_REPLACE without NLM_F_EXCL: create it, or change
	// the one there with nothing.
	data, err := qdiscMessage(index, tcHClsactHandle, tcHClsact, "clsact")
	b.add(unix.RTM_NEWQDISC, netlink.Acknowledge|netlink.Create|netlink.Replace, data, err,
		fmt.Sprintf("add clsact qdisc on link %d", index))
}

func qdiscMessage(index, handle, parent uint32, kind string) ([]byte, error) {
	if index == 0 {
		return nil, errNoIndex
	}
	return encodeAttrs(tcmsg(index, handle, parent, 0, len(kind)+8), func(ae *netlink.AttributeEncoder) {
		ae.String(unix.TCA_KIND, kind)
	})
}

// Clsact returns the clsact qdisc of link index with its counters: Drops
// counts the frames its filters dropped. It fails with an error satisfying
// errors.Is(err, unix.ENODEV) if the link does not exist and unix.ENOENT if
// it has no clsact qdisc.
func (c *Conn) Clsact(ctx context.Context, index uint32) (*Qdisc, error) {
	var b Batch
	q := new(Qdisc)
	b.GetClsact(index, q)
	if err := c.exec1(ctx, &b); err != nil {
		return nil, err
	}
	return q, nil
}

// GetClsact adds a request for the clsact qdisc of link index; on success
// Exec fills *dst. The request's result is as [Conn.Clsact]'s error.
func (b *Batch) GetClsact(index uint32, dst *Qdisc) {
	// By handle alone (parent 0): tc_get_qdisc looks ffff: up among the
	// device's qdiscs, ingress included (qdisc_lookup), and answers
	// ENOENT without one. NLM_F_ECHO is what makes it answer us at all:
	// it sends the qdisc with rtnetlink_send to the RTNLGRP_TC group, and
	// to the requester only if it asked for an echo (net/sched/sch_api.c:
	// qdisc_get_notify; net/core/rtnetlink.c: nlmsg_notify); without, a
	// get would wait for an answer that never comes.
	var data []byte
	var err error
	if index == 0 {
		err = errNoIndex
	} else {
		data = tcmsg(index, tcHClsactHandle, 0, 0, 0)
	}
	b.addGet(unix.RTM_GETQDISC, netlink.Echo, data, err, fmt.Sprintf("get clsact qdisc of link %d", index), (*clsactAnswer)(dst), qdiscAnswerSize)
}

// clsactAnswer is a *Qdisc as the destination of GetClsact.
type clsactAnswer Qdisc

func (q *clsactAnswer) decode(typ netlink.HeaderType, data []byte) error {
	if typ != unix.RTM_NEWQDISC {
		return unexpectedType(typ)
	}
	if err := (*Qdisc)(q).decode(data); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if q.Kind != "clsact" {
		// ffff: is reserved for ingress qdiscs, and "ingress" is the
		// other one.
		return fmt.Errorf("qdisc ffff: is %q, not clsact", q.Kind)
	}
	// The answer echoes the parent asked for (qdisc_get_notify passes the
	// request's tcm_parent to tc_fill_qdisc); a clsact's is TC_H_CLSACT,
	// as dumps report it.
	q.Parent = tcHClsact
	return nil
}

// absent is false: a missing clsact is an error (ENOENT).
func (*clsactAnswer) absent(error) bool { return false }

// Qdiscs dumps the qdiscs of the Conn's namespace that pass f (nil: all).
// One dump reads the counters of every link, such as the drops of every
// TAP's clsact qdisc. An interrupted dump is retried like Links; after the
// last retry Qdiscs fails with an error wrapping ErrDumpInterrupted.
func (c *Conn) Qdiscs(ctx context.Context, f *QdiscFilter) ([]Qdisc, error) {
	var qs []Qdisc
	err := c.WalkQdiscs(ctx, f, func(q *Qdisc) error {
		qs = append(qs, *q)
		return nil
	}, func() { qs = qs[:0] })
	if err != nil {
		return nil, err
	}
	return qs, nil
}

// WalkQdiscs is Qdiscs without the slice, as WalkLinks is Links: fn's
// *Qdisc is reused between calls, fn may see a qdisc again after reset,
// which is called before every attempt (reset may be nil), and an error
// from fn stops the walk and is returned wrapped.
func (c *Conn) WalkQdiscs(ctx context.Context, f *QdiscFilter, fn func(*Qdisc) error, reset ...func()) error {
	if f == nil {
		f = &QdiscFilter{}
	}
	req := netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETQDISC, Flags: netlink.Request | netlink.Dump},
		Data:   tcmsg(f.Index, 0, 0, 0, 0),
	}
	var q Qdisc
	return c.dump(ctx, "dump qdiscs", req, func(m *netlink.Message) error {
		if m == nil {
			for _, r := range reset {
				r()
			}
			return nil
		}
		if m.Header.Type != unix.RTM_NEWQDISC {
			return nil
		}
		// Skip other links before decoding: the kernel sends them all.
		if f.Index != 0 && (len(m.Data) < sizeofTcMsg || ne.Uint32(m.Data[4:8]) != f.Index) {
			return nil
		}
		if err := q.decode(m.Data); err != nil {
			return err
		}
		if f.Kind != "" && q.Kind != f.Kind {
			return nil
		}
		return fn(&q)
	})
}

// decode decodes an RTM_NEWQDISC payload into q.
func (q *Qdisc) decode(b []byte) error {
	if len(b) < sizeofTcMsg {
		return errShortTcMessage
	}
	*q = Qdisc{
		Index:  ne.Uint32(b[4:8]),
		Handle: ne.Uint32(b[8:12]),
		Parent: ne.Uint32(b[12:16]),
	}
	a := attrs{b: b[sizeofTcMsg:]}
	for a.next() {
		switch a.typ {
		case unix.TCA_KIND:
			q.Kind = a.tcKind()
		case unix.TCA_STATS2:
			a.err = q.Stats.decode(a.data)
		}
	}
	return a.err
}

// decode decodes the attributes of TCA_STATS2 into s.
func (s *QdiscStats) decode(b []byte) error {
	var pkt64 uint64
	has64 := false
	a := attrs{b: b}
	for a.next() {
		switch a.typ {
		case tcaStatsBasic:
			if len(a.data) < sizeofGnetStatsBasic {
				return fmt.Errorf("TCA_STATS_BASIC of %d bytes: %w", len(a.data), errBadAttr)
			}
			s.Bytes = ne.Uint64(a.data[0:8])
			s.Packets = uint64(ne.Uint32(a.data[8:12]))
		case tcaStatsPkt64:
			if len(a.data) != 8 {
				return fmt.Errorf("TCA_STATS_PKT64 of %d bytes: %w", len(a.data), errBadAttr)
			}
			pkt64, has64 = ne.Uint64(a.data), true
		case tcaStatsQueue:
			if len(a.data) < sizeofGnetStatsQueue {
				return fmt.Errorf("TCA_STATS_QUEUE of %d bytes: %w", len(a.data), errBadAttr)
			}
			s.QLen = ne.Uint32(a.data[0:4])
			s.Backlog = ne.Uint32(a.data[4:8])
			s.Drops = ne.Uint32(a.data[8:12])
			s.Requeues = ne.Uint32(a.data[12:16])
			s.Overlimits = ne.Uint32(a.data[16:20])
		}
	}
	if has64 {
		// The kernel adds it after TCA_STATS_BASIC when the 32-bit count
		// overflowed (net/core/gen_stats.c: gnet_stats_copy_basic).
		s.Packets = pkt64
	}
	return a.err
}

// DelClsact removes the clsact qdisc of link index, and with it every
// filter attached to it, such as SetIngressBPF's. A link without clsact
// counts as done (the kernel answers ENOENT: net/sched/sch_api.c
// tc_get_qdisc), as does an absent link (ENODEV).
func (c *Conn) DelClsact(ctx context.Context, index uint32) error {
	var b Batch
	b.DelClsact(index)
	return c.exec1(ctx, &b)
}

// DelClsact adds the request of [Conn.DelClsact].
func (b *Batch) DelClsact(index uint32) {
	data, err := qdiscMessage(index, tcHClsactHandle, tcHClsact, "clsact")
	b.add(unix.RTM_DELQDISC, netlink.Acknowledge, data, err,
		fmt.Sprintf("delete clsact qdisc on link %d", index), unix.ENOENT, unix.ENODEV)
}
