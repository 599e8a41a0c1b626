package rtnl

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Batch is an ordered list of rtnetlink requests for [Conn.Exec].
//
// Methods that add a request never fail on their own: an encoding error is
// kept and returned by Exec before anything is sent. The zero value is an
// empty batch ready to use. A Batch is not safe for concurrent use.
type Batch struct {
	reqs []request
	err  error
}

// ackOverhead is what an error answer adds to the request it echoes: the
// headers, the errno and an extended-ack message, with margin.
const ackOverhead = 512

type request struct {
	msg netlink.Message
	op  string // what the request does, for errors: "set link 7"

	// done lists errnos that mean the request's goal already holds, such
	// as ENODEV for a delete.
	done []unix.Errno

	// answer estimates the bytes the kernel's answer takes in the socket's
	// receive buffer, for windowEnd.
	answer int

	// dst, if set, makes this a get: the kernel answers with one message
	// (a link, a qdisc, a filter...) instead of an acknowledgement, and
	// dst decodes it.
	dst answer
}

// answer is the destination of a get. It is an interface so that gets of
// every object type share Exec's pipeline; the implementations are
// pointers (*Link...), which an interface holds without an allocation.
type answer interface {
	// decode decodes the kernel's answer, a message of type typ, into
	// the destination, which it resets first: a Batch may be executed
	// again. (Type and payload rather than a *netlink.Message, which
	// would escape through the interface: an allocation per answer.)
	decode(typ netlink.HeaderType, data []byte) error

	// absent reports whether err, the kernel's error answer, means that
	// there is nothing to get. The request then succeeds and decode is
	// not called; absent clears the destination.
	absent(err error) bool
}

// Len returns the number of requests in b.
func (b *Batch) Len() int { return len(b.reqs) }

// Op describes request i ("set link 7", "delete group 29794", ...), as
// its errors do.
func (b *Batch) Op(i int) string { return b.reqs[i].op }

// Slice returns a batch of requests i..j-1 of b, which share b's encoded
// messages and destinations: for callers that split a batch, such as a
// test that stops a process between two of its requests. Executing it is
// executing those requests of b.
func (b *Batch) Slice(i, j int) *Batch {
	return &Batch{reqs: b.reqs[i:j:j], err: b.err}
}

// Reset empties b, keeping its storage.
func (b *Batch) Reset() {
	clear(b.reqs)
	b.reqs = b.reqs[:0]
	b.err = nil
}

func (b *Batch) add(typ netlink.HeaderType, flags netlink.HeaderFlags, data []byte, err error, op string, done ...unix.Errno) {
	if err != nil && b.err == nil {
		b.err = fmt.Errorf("%s: %w", op, err)
	}
	b.reqs = append(b.reqs, request{
		msg: netlink.Message{
			Header: netlink.Header{Type: typ, Flags: netlink.Request | flags},
			Data:   data,
		},
		op:   op,
		done: done,
		// An error answer echoes the request (no NETLINK_CAP_ACK), plus
		// the header, the errno and the extended ack.
		answer: len(data) + ackOverhead,
	})
}

// result maps the kernel's error answer to the request's result.
func (r *request) result(err error) error {
	for _, e := range r.done {
		if errors.Is(err, e) {
			return nil
		}
	}
	if r.dst != nil && r.dst.absent(err) {
		return nil
	}
	return fmt.Errorf("%s: %w", r.op, err)
}

// reply maps a successful answer to the request's result.
func (r *request) reply(m netlink.Message) error {
	if r.dst == nil {
		if m.Header.Type != netlink.Error {
			return fmt.Errorf("%s: unexpected answer of type %d", r.op, m.Header.Type)
		}
		return nil
	}
	if err := r.dst.decode(m.Header.Type, m.Data); err != nil {
		return fmt.Errorf("%s: %w", r.op, err)
	}
	return nil
}

// addGet adds a get: no NLM_F_ACK, as the kernel answers a get with
// exactly one message, the object or an error.
// size estimates the answer's bytes in the receive buffer (the
// allocation the kernel makes for it, not only its length).
func (b *Batch) addGet(typ netlink.HeaderType, flags netlink.HeaderFlags, data []byte, err error, op string, dst answer, size int) {
	b.add(typ, flags, data, err, op)
	r := &b.reqs[len(b.reqs)-1]
	r.dst = dst
	r.answer = max(r.answer, size)
}

// unexpectedType is the error of an answer of the wrong message type.
func unexpectedType(typ netlink.HeaderType) error {
	return fmt.Errorf("unexpected answer of type %d", typ)
}
