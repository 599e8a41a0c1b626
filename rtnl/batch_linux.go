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

type request struct {
	msg netlink.Message
	op  string // what the request does, for errors: "set link 7"

	// done lists errnos that mean the request's goal already holds, such
	// as ENODEV for a delete.
	done []unix.Errno

	// dst, if set, makes this a get: the kernel answers with a link
	// message instead of an acknowledgement, decoded into dst.
	dst *Link
}

// Len returns the number of requests in b.
func (b *Batch) Len() int { return len(b.reqs) }

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
	})
}

// result maps the kernel's error answer to the request's result.
func (r *request) result(err error) error {
	for _, e := range r.done {
		if errors.Is(err, e) {
			return nil
		}
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
	if m.Header.Type != unix.RTM_NEWLINK {
		return fmt.Errorf("%s: unexpected answer of type %d", r.op, m.Header.Type)
	}
	if err := r.dst.unmarshal(m.Data); err != nil {
		return fmt.Errorf("%s: decode: %w", r.op, err)
	}
	return nil
}
