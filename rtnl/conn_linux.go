package rtnl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	// maxWindow bounds the requests written by one sendmsg. The kernel
	// processes them all before sendmsg returns and queues an
	// acknowledgement for each on our socket; past the receive buffer they
	// would be dropped (netlink_overrun), so a batch goes out in windows.
	maxWindow = 128

	// maxWindowBytes bounds the bytes written by one sendmsg: the kernel
	// refuses a sendmsg larger than the socket's send buffer with
	// EMSGSIZE (netlink_sendmsg), and the default send buffer
	// (net.core.wmem_default) is 208 KiB. A window of classic BPF
	// programs reaches that long before maxWindow requests.
	maxWindowBytes = 128 << 10

	// answerBudgetForced and answerBudgetDefault bound the answer bytes a
	// window may queue on the socket (estimated per request, see
	// request.answer): a quarter of recvBufferSize when SO_RCVBUFFORCE
	// got it, else what fits the default receive buffer
	// (net.core.rmem_default, 208 KiB).
	answerBudgetForced  = recvBufferSize / 4
	answerBudgetDefault = 192 << 10

	// recvBufferSize is the socket receive buffer asked for: room for a
	// window of acknowledgements and link replies with margin.
	recvBufferSize = 4 << 20

	// messageBufferSize is the size of one recvmsg buffer. The kernel sizes
	// dump datagrams by the largest buffer it has seen, capped at 32 KiB
	// (netlink_recvmsg: max_recvmsg_len).
	messageBufferSize = 64 << 10

	// dumpRetries bounds the retries of a dump the kernel marked
	// interrupted (NLM_F_DUMP_INTR).
	dumpRetries = 10
)

// Conn is an rtnetlink connection: one netlink socket, reused for every
// request.
//
// A Conn is safe for concurrent use; requests are serialized on the socket
// (the kernel serializes them under RTNL anyway).
type Conn struct {
	mu  sync.Mutex
	nl  *netlink.Conn
	buf []byte // dump datagrams are read here (recvDump); guarded by mu

	// answerBudget bounds the estimated answer bytes of one window; set
	// once, before the Conn is shared.
	answerBudget int
}

// Dial opens an rtnetlink socket in the namespace cfg names.
//
// The socket uses extended acknowledgements (the kernel's error text is kept
// in the returned errors) and strict checking of dump requests. It fails
// with EPERM-like errors only if the namespace fd cannot be entered; opening
// a netlink socket itself needs no privilege.
func Dial(cfg *Config) (*Conn, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	nl, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{
		NetNS:             cfg.NetNS,
		Strict:            true,
		MessageBufferSize: messageBufferSize,
	})
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	// No NETLINK_CAP_ACK: with it the kernel echoes only the request's
	// header in an error answer, while the netlink package finds the
	// extended-ack TLVs by that header's full length, and fails every error
	// whose TLVs are shorter than the request payload with "not enough data
	// for netlink error code", losing the errno. Acknowledgements of
	// successful requests are never echoed either way.

	// Best effort: without it the windows shrink to fit the default
	// buffer.
	budget := answerBudgetForced
	if err := setRecvBufferForce(nl, recvBufferSize); err != nil {
		_ = nl.SetReadBuffer(recvBufferSize)
		budget = answerBudgetDefault
	}
	return &Conn{nl: nl, answerBudget: budget}, nil
}

// NewConn wraps an existing netlink connection, such as one from
// github.com/mdlayher/netlink/nltest. The Conn takes ownership of c.
func NewConn(c *netlink.Conn) *Conn {
	return &Conn{nl: c, answerBudget: answerBudgetDefault}
}

// Close closes the socket. Requests in flight on other goroutines finish
// first; requests after Close fail.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nl.Close()
}

// setRecvBufferForce uses SO_RCVBUFFORCE, which needs CAP_NET_ADMIN but
// ignores net.core.rmem_max.
func setRecvBufferForce(nl *netlink.Conn, n int) error {
	rc, err := nl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// IndexByName returns the ifindex of the link named name (or carrying it as
// an alternative name) with one SIOCGIFINDEX ioctl on the netlink socket,
// which the kernel resolves in the socket's namespace (sock_do_ioctl falls
// back to dev_ioctl). It is far cheaper than a full RTM_GETLINK. It fails
// with an error satisfying errors.Is(err, unix.ENODEV) if there is no such
// link.
func (c *Conn) IndexByName(ctx context.Context, name string) (uint32, error) {
	index, _, err := c.ifreqs(ctx, name, false)
	return index, err
}

// IndexMTUByName is IndexByName that also returns the link's MTU, with a
// second ioctl (SIOCGIFMTU): two system calls and no message for the kernel
// to fill, where RTM_GETLINK costs a full link description.
func (c *Conn) IndexMTUByName(ctx context.Context, name string) (index, mtu uint32, err error) {
	return c.ifreqs(ctx, name, true)
}

func (c *Conn) ifreqs(ctx context.Context, name string, withMTU bool) (index, mtu uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, 0, fmt.Errorf("index of %q: %w", name, err)
	}
	c.mu.Lock()
	rc, err := c.nl.SyscallConn()
	if err != nil {
		c.mu.Unlock()
		// Not a real socket (nltest): fall back to RTM_GETLINK.
		l, err := c.LinkByName(ctx, name)
		if err != nil {
			return 0, 0, err
		}
		return l.Index, l.MTU, nil
	}
	op := "ioctl SIOCGIFINDEX"
	var ierr error
	cerr := rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFINDEX, ifr); ierr != nil || !withMTU {
			return
		}
		index = ifr.Uint32()
		op = "ioctl SIOCGIFMTU"
		if ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFMTU, ifr); ierr == nil {
			mtu = ifr.Uint32()
		}
	})
	c.mu.Unlock()
	if cerr != nil {
		return 0, 0, fmt.Errorf("index of %s: %w", name, cerr)
	}
	if ierr != nil {
		return 0, 0, fmt.Errorf("index of %s: %w", name, os.NewSyscallError(op, ierr))
	}
	if !withMTU {
		index = ifr.Uint32()
	}
	return index, mtu, nil
}

// Exec sends every request of b and reads back one answer per request.
//
// It returns a slice with one entry per request, in the order they were
// added: nil when the kernel acknowledged the request (or answered a get,
// whose destination is then filled), otherwise an error that names the
// operation and wraps the errno. The second result is nil when every entry
// is nil, and otherwise joins the failed entries. If the exchange itself
// fails (an encoding error, a socket error, a done context), requests that
// got no answer carry that error: the kernel may or may not have applied
// them, so treat them as failed and roll back idempotently.
//
// Exec does not modify b; it may be executed again.
func (c *Conn) Exec(ctx context.Context, b *Batch) ([]error, error) {
	res := make([]error, len(b.reqs))
	if b.err != nil {
		for i := range res {
			res[i] = b.err
		}
		return res, b.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	msgs := make([]netlink.Message, 0, min(len(b.reqs), maxWindow))
	for start, end := 0, 0; start < len(b.reqs); start = end {
		end = c.windowEnd(b.reqs, start)
		if err := ctx.Err(); err != nil {
			fill(res[start:], fmt.Errorf("rtnetlink batch: %w", err))
			break
		}
		if err := c.window(b.reqs[start:end], res[start:end], msgs[:0]); err != nil {
			fill(res[end:], err)
			break
		}
	}
	return res, joinNonNil(res)
}

// windowEnd returns the end of the window that starts at reqs[start]: at
// most maxWindow requests, maxWindowBytes of requests and answerBudget of
// estimated answers, and at least one request.
func (c *Conn) windowEnd(reqs []request, start int) int {
	end, size, answer := start, 0, 0
	for end < len(reqs) && end-start < maxWindow {
		size += len(reqs[end].msg.Data) + unix.NLMSG_HDRLEN
		answer += reqs[end].answer
		if end > start && (size > maxWindowBytes || answer > c.answerBudget) {
			break
		}
		end++
	}
	return end
}

// window sends reqs with one sendmsg and matches the answers in order. A
// returned error means the exchange broke; entries of res without an answer
// are set to it.
func (c *Conn) window(reqs []request, res []error, msgs []netlink.Message) error {
	for i := range reqs {
		msgs = append(msgs, reqs[i].msg)
	}
	sent, err := c.nl.SendMessages(msgs)
	if err != nil {
		err = fmt.Errorf("rtnetlink batch: %w", err)
		fill(res, err)
		return err
	}
	for i := 0; i < len(reqs); {
		// Answers are taken one message at a time: a datagram may carry
		// several (the kernel sends one per answer, a test socket may
		// batch them), and an error ends the iteration after the answers
		// before it, which must not be lost.
		start := i
		for m, err := range c.nl.ReceiveIter() {
			if i == len(reqs) {
				break
			}
			if err != nil {
				var oe *netlink.OpError
				if !errors.As(err, &oe) || !isKernelAnswer(oe) {
					// A socket error rather than a kernel answer.
					err = fmt.Errorf("rtnetlink batch: %w", err)
					fill(res[i:], err)
					return err
				}
				if oe.Sequence != sent[i].Header.Sequence {
					err := fmt.Errorf("rtnetlink batch: %s: error answer has sequence %d, want %d",
						reqs[i].op, oe.Sequence, sent[i].Header.Sequence)
					fill(res[i:], err)
					return err
				}
				res[i] = reqs[i].result(err)
				i++
				continue
			}
			if m.Header.Sequence != sent[i].Header.Sequence {
				err := fmt.Errorf("rtnetlink batch: %s: answer has sequence %d, want %d",
					reqs[i].op, m.Header.Sequence, sent[i].Header.Sequence)
				fill(res[i:], err)
				return err
			}
			res[i] = reqs[i].reply(m)
			i++
		}
		if i == start {
			err := fmt.Errorf("rtnetlink batch: %s: receive returned no answer", reqs[i].op)
			fill(res[i:], err)
			return err
		}
	}
	return nil
}

// isKernelAnswer reports whether oe carries an error answer of the kernel
// (a netlink error message, whose errno the netlink package leaves bare)
// rather than a failed recvmsg (wrapped in an *os.SyscallError).
func isKernelAnswer(oe *netlink.OpError) bool {
	_, ok := oe.Err.(unix.Errno)
	return oe.Op == "receive" && ok
}

func fill(res []error, err error) {
	for i := range res {
		if res[i] == nil {
			res[i] = err
		}
	}
}

func joinNonNil(errs []error) error {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return errors.Join(errs...)
}

// exec1 runs a one-request batch.
func (c *Conn) exec1(ctx context.Context, b *Batch) error {
	res, _ := c.Exec(ctx, b)
	return res[0]
}

// dump sends a dump request and calls fn for each reply message, retrying
// the whole dump when the kernel marks it interrupted. fn must reset
// whatever it accumulates when called with a nil message (start of an
// attempt).
func (c *Conn) dump(ctx context.Context, op string, req netlink.Message, fn func(m *netlink.Message) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 0; attempt <= dumpRetries; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := fn(nil); err != nil {
			return err
		}
		req.Header.Sequence = 0
		sent, err := c.nl.Send(req)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		intr := false
		var ferr error
		err = c.recvDump(func(m *netlink.Message) error {
			if m.Header.Sequence != sent.Header.Sequence {
				return fmt.Errorf("reply has sequence %d, want %d", m.Header.Sequence, sent.Header.Sequence)
			}
			if m.Header.Flags&netlink.DumpInterrupted != 0 {
				intr = true
			}
			// Keep reading to the end even after an error or an
			// interruption, so that the socket holds no stale replies.
			if ferr == nil && !intr && m.Header.Type != netlink.Done {
				ferr = fn(m)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if ferr != nil {
			return fmt.Errorf("%s: %w", op, ferr)
		}
		if !intr {
			return nil
		}
	}
	return fmt.Errorf("%s: %w after %d attempts", op, ErrDumpInterrupted, dumpRetries+1)
}

var (
	errTruncated     = errors.New("netlink message truncated")
	errShortMessage  = errors.New("netlink message shorter than its header")
	errDumpNoMessage = errors.New("netlink dump datagram holds no message")
)

// recvDump reads the replies of one dump and calls each for every message,
// NLMSG_DONE included (its flags carry NLM_F_DUMP_INTR too), until the
// dump is done or each fails. On a real socket it reads into the Conn's own
// buffer: a scan of thousands of links then costs no allocation per
// datagram, where netlink.Conn copies every datagram it reads. m.Data
// aliases that buffer and is valid only during the call. A socket without
// SyscallConn (nltest) is read through netlink.Conn.
func (c *Conn) recvDump(each func(m *netlink.Message) error) error {
	rc, err := c.nl.SyscallConn()
	if err != nil {
		for m, err := range c.nl.ReceiveIter() {
			if err != nil {
				return err
			}
			if err := each(&m); err != nil {
				return err
			}
		}
		return nil
	}
	if c.buf == nil {
		c.buf = make([]byte, messageBufferSize)
	}
	for {
		var n, flags int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, flags, _, rerr = unix.Recvmsg(int(fd), c.buf, nil, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		}); err != nil {
			return &netlink.OpError{Op: "receive", Err: err}
		}
		switch {
		case rerr != nil:
			return &netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", rerr)}
		case flags&unix.MSG_TRUNC != 0:
			return &netlink.OpError{Op: "receive", Err: errTruncated}
		case n < unix.NLMSG_HDRLEN:
			return &netlink.OpError{Op: "receive", Err: errDumpNoMessage}
		}
		for b := c.buf[:n]; len(b) > 0; {
			l := int(ne.Uint32(b[0:4]))
			if len(b) < unix.NLMSG_HDRLEN || l < unix.NLMSG_HDRLEN || l > len(b) {
				return &netlink.OpError{Op: "receive", Err: errShortMessage}
			}
			m := netlink.Message{
				Header: netlink.Header{
					Length:   uint32(l),
					Type:     netlink.HeaderType(ne.Uint16(b[4:6])),
					Flags:    netlink.HeaderFlags(ne.Uint16(b[6:8])),
					Sequence: ne.Uint32(b[8:12]),
					PID:      ne.Uint32(b[12:16]),
				},
				Data: b[unix.NLMSG_HDRLEN:l],
			}
			b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
			if m.Header.Type == netlink.Error || m.Header.Type == netlink.Done {
				// Both may carry an errno: an error ends the dump.
				if len(m.Data) >= 4 {
					if e := int32(ne.Uint32(m.Data)); e != 0 {
						return &netlink.OpError{Op: "receive", Err: unix.Errno(-e)}
					}
				}
			}
			if err := each(&m); err != nil {
				return err
			}
			if m.Header.Type == netlink.Done || m.Header.Type == netlink.Error {
				return nil
			}
		}
	}
}
