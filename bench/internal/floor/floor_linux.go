// Package floor is the yardstick of the benchmarks: the kernel operations
// tapbridge performs, written with golang.org/x/sys/unix alone, one request
// and one acknowledgement at a time, with no library structure around them.
//
// A Conn is a raw rtnetlink socket in the namespace of the thread that
// dialed it (or of DialAt's fd). It is not safe for concurrent use. CreateTAP
// works in the calling thread's namespace: call it from a goroutine whose
// OS thread is locked inside the target namespace.
package floor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Constants x/sys/unix does not export.
const (
	rtextFilterSkipStats = 1 << 3     // RTEXT_FILTER_SKIP_STATS
	tcHRoot              = 0xFFFFFFFF // TC_H_ROOT
	sizeofTcMsg          = 20         // struct tcmsg
	in6AddrGenModeNone   = 1          // IN6_ADDR_GEN_MODE_NONE
	nlaFNested           = 1 << 15    // NLA_F_NESTED
	tcHClsact            = 0xFFFFFFF1 // TC_H_CLSACT
	tcHClsactHandle      = 0xFFFF0000 // ffff:
	tcHIngress           = 0xFFFFFFF2 // TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
	tcaBPFOps            = 5          // TCA_BPF_OPS
	tcaBPFOpsLen         = 4          // TCA_BPF_OPS_LEN
	tcaBPFFlags          = 8          // TCA_BPF_FLAGS
	tcaBPFFlagActDirect  = 1          // TCA_BPF_FLAG_ACT_DIRECT
)

var ne = binary.NativeEndian

// Conn is one rtnetlink socket. Its requests go out one at a time and each
// waits for its own acknowledgement.
type Conn struct {
	fd  int
	seq uint32
	tx  []byte
	rx  []byte
}

// Dial opens a Conn in the calling thread's network namespace.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	// Short acknowledgements, and room for dumps of thousands of links.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	return &Conn{fd: fd, tx: make([]byte, 0, 512), rx: make([]byte, 64<<10)}, nil
}

// DialAt opens a Conn in the network namespace behind nsFD, from a
// throwaway locked thread. The fd is borrowed.
func DialAt(nsFD int) (*Conn, error) {
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread dies with this goroutine.
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, os.NewSyscallError("setns", err)}
			return
		}
		c, err := Dial()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// CreateTAP creates the persistent TAP name in the calling thread's
// namespace with one /dev/net/tun fd: TUNSETIFF (no PI, vnet header,
// exclusive, multi-queue if asked), TUNSETPERSIST, close.
func CreateTAP(name string, multiQueue bool) error {
	fd, err := OpenTAP(name, multiQueue)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// OpenTAP is CreateTAP without the close: it returns the TAP's fd, which
// the caller closes (the TAP, persistent, stays).
func OpenTAP(name string, multiQueue bool) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_TUN_EXCL)
	if multiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETPERSIST %s: %w", name, err)
	}
	return fd, nil
}

// Index returns the ifindex of name (SIOCGIFINDEX on the netlink socket,
// resolved in its namespace).
func (c *Conn) Index(name string) (uint32, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("index of %s: %w", name, err)
	}
	return ifr.Uint32(), nil
}

// SetNoQueue installs a noqueue root qdisc on index.
func (c *Conn) SetNoQueue(index uint32) error {
	c.begin(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	m := c.grow(sizeofTcMsg)
	ne.PutUint32(m[4:8], index)
	ne.PutUint32(m[12:16], tcHRoot)
	c.attrString(unix.TCA_KIND, "noqueue")
	return c.exec()
}

// Setup is the one RTM_NEWLINK that configures a new TAP.
type Setup struct {
	MTU        uint32
	TxQLen     uint32
	Address    net.HardwareAddr // nil: unchanged
	Alias      string           // empty: none
	AddrGenOff bool             // IPv6 address generation off
	Master     uint32
	Down       bool // leave the link down (SetUp brings it up)
}

// Setup sets MTU, txqueuelen, and those of address, alias and IPv6
// address generation off that s asks for, enslaves the link to s.Master
// and brings it up (unless s.Down), in one message.
func (c *Conn) Setup(index uint32, s *Setup) error {
	up := uint32(unix.IFF_UP)
	if s.Down {
		up = 0
	}
	c.ifinfo(unix.RTM_NEWLINK, 0, index, up, up)
	c.attrU32(unix.IFLA_MTU, s.MTU)
	c.attrU32(unix.IFLA_TXQLEN, s.TxQLen)
	if s.Address != nil {
		c.attr(unix.IFLA_ADDRESS, s.Address)
	}
	if s.Alias != "" {
		c.attr(unix.IFLA_IFALIAS, []byte(s.Alias))
	}
	if s.AddrGenOff {
		af := c.nest(unix.IFLA_AF_SPEC)
		in6 := c.nest(unix.AF_INET6)
		c.attr(unix.IFLA_INET6_ADDR_GEN_MODE, []byte{in6AddrGenModeNone})
		c.end(in6)
		c.end(af)
	}
	c.attrU32(unix.IFLA_MASTER, s.Master)
	return c.exec()
}

// SetUp brings link index up.
func (c *Conn) SetUp(index uint32) error {
	c.ifinfo(unix.RTM_NEWLINK, 0, index, unix.IFF_UP, unix.IFF_UP)
	return c.exec()
}

// ProbeAltName looks a link up by alternative name (RTM_GETLINK with
// IFLA_ALT_IFNAME), as a create path does to find an existing TAP; it
// returns ENODEV when there is none.
func (c *Conn) ProbeAltName(name string) error {
	c.ifinfo(unix.RTM_GETLINK, 0, 0, 0, 0)
	c.attrU32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
	c.attrString(unix.IFLA_ALT_IFNAME, name)
	return c.exec()
}

// Insn is one classic BPF instruction (struct sock_filter).
type Insn struct {
	Op     uint16
	Jt, Jf uint8
	K      uint32
}

// SetGuard installs a clsact qdisc on link index and prog as a cls_bpf
// filter on its ingress in direct-action mode, two messages, as
// `tc qdisc add dev D clsact; tc filter add dev D ingress bpf bytecode .. da`.
func (c *Conn) SetGuard(index uint32, prog []Insn) error {
	c.begin(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	m := c.grow(sizeofTcMsg)
	ne.PutUint32(m[4:8], index)
	ne.PutUint32(m[8:12], tcHClsactHandle)
	ne.PutUint32(m[12:16], tcHClsact)
	c.attrString(unix.TCA_KIND, "clsact")
	if err := c.exec(); err != nil {
		return fmt.Errorf("clsact: %w", err)
	}
	c.begin(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	m = c.grow(sizeofTcMsg)
	ne.PutUint32(m[4:8], index)
	ne.PutUint32(m[8:12], 1)
	ne.PutUint32(m[12:16], tcHIngress)
	ne.PutUint32(m[16:20], 1<<16|uint32(htons(unix.ETH_P_ALL)))
	c.attrString(unix.TCA_KIND, "bpf")
	opts := c.nest(unix.TCA_OPTIONS)
	var n [2]byte
	ne.PutUint16(n[:], uint16(len(prog)))
	c.attr(tcaBPFOpsLen, n[:])
	ops := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		ops = ne.AppendUint16(ops, in.Op)
		ops = append(ops, in.Jt, in.Jf)
		ops = ne.AppendUint32(ops, in.K)
	}
	c.attr(tcaBPFOps, ops)
	c.attrU32(tcaBPFFlags, tcaBPFFlagActDirect)
	c.end(opts)
	if err := c.exec(); err != nil {
		return fmt.Errorf("bpf filter: %w", err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// SetLearning turns learning on or off on bridge port index (slave data,
// as `ip link set X type bridge_slave learning off` sends it).
func (c *Conn) SetLearning(index uint32, on bool) error {
	c.ifinfo(unix.RTM_NEWLINK, 0, index, 0, 0)
	li := c.nest(unix.IFLA_LINKINFO)
	sd := c.nest(unix.IFLA_INFO_SLAVE_DATA)
	v := byte(0)
	if on {
		v = 1
	}
	c.attr(unix.IFLA_BRPORT_LEARNING, []byte{v})
	c.end(sd)
	c.end(li)
	return c.exec()
}

// SetPortGuarded sets learning off, locked on and unicast flooding off on
// bridge port index, in one message: the port settings of tapbridge's
// default guard.
func (c *Conn) SetPortGuarded(index uint32) error {
	c.ifinfo(unix.RTM_NEWLINK, 0, index, 0, 0)
	li := c.nest(unix.IFLA_LINKINFO)
	sd := c.nest(unix.IFLA_INFO_SLAVE_DATA)
	c.attr(unix.IFLA_BRPORT_LEARNING, []byte{0})
	c.attr(unix.IFLA_BRPORT_LOCKED, []byte{1})
	c.attr(unix.IFLA_BRPORT_UNICAST_FLOOD, []byte{0})
	c.end(sd)
	c.end(li)
	return c.exec()
}

// DeleteLink deletes link index (one RCU grace period each).
func (c *Conn) DeleteLink(index uint32) error {
	c.ifinfo(unix.RTM_DELLINK, 0, index, 0, 0)
	return c.exec()
}

// Retire dooms link index: it moves it into device group group, where
// DeleteGroup finds it (the same operation as tapbridge's asynchronous
// Delete; taking the link down too would cost an RCU grace period on the
// caller's path).
func (c *Conn) Retire(index, group uint32) error {
	c.ifinfo(unix.RTM_NEWLINK, 0, index, 0, 0)
	c.attrU32(unix.IFLA_GROUP, group)
	return c.exec()
}

// AddAltName gives link index the alternative name name (RTM_NEWLINKPROP).
func (c *Conn) AddAltName(index uint32, name string) error {
	c.ifinfo(unix.RTM_NEWLINKPROP, unix.NLM_F_CREATE|unix.NLM_F_EXCL, index, 0, 0)
	pl := c.nest(unix.IFLA_PROP_LIST)
	c.attrString(unix.IFLA_ALT_IFNAME, name)
	c.end(pl)
	return c.exec()
}

// DeleteGroup deletes every link of device group group with one message.
// An empty group is not an error.
func (c *Conn) DeleteGroup(group uint32) error {
	c.ifinfo(unix.RTM_DELLINK, 0, 0, 0, 0)
	c.attrU32(unix.IFLA_GROUP, group)
	if err := c.exec(); err != nil && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}

// AddFDB adds a static FDB entry for mac on bridge port index; it fails
// with EEXIST if the bridge has an entry for mac already.
func (c *Conn) AddFDB(index uint32, mac net.HardwareAddr) error {
	c.begin(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	m := c.grow(unix.SizeofNdMsg)
	m[0] = unix.AF_BRIDGE
	ne.PutUint32(m[4:8], index)
	ne.PutUint16(m[8:10], unix.NUD_NOARP)
	m[10] = unix.NTF_MASTER
	c.attr(unix.NDA_LLADDR, mac)
	return c.exec()
}

// Link is what DumpTUN reports per TUN/TAP link. The byte slices alias the
// receive buffer: valid only during the callback.
type Link struct {
	Index  uint32
	Name   []byte
	Alias  []byte
	Group  uint32
	TAP    bool
	Queues uint32
}

// DumpTUN dumps the namespace's TUN/TAP links, filtered by kind in the
// kernel and without statistics, and calls fn for each. An interrupted dump
// (NLM_F_DUMP_INTR) is retried from scratch after calling reset.
func (c *Conn) DumpTUN(fn func(*Link), reset func()) error {
	return c.dump(true, fn, reset)
}

// DumpAll is DumpTUN without the kind filter: every link, TUN/TAP or not,
// with TAP false for the others.
func (c *Conn) DumpAll(fn func(*Link), reset func()) error {
	return c.dump(false, fn, reset)
}

func (c *Conn) dump(tunOnly bool, fn func(*Link), reset func()) error {
	for attempt := 0; attempt < 10; attempt++ {
		if reset != nil {
			reset()
		}
		c.ifinfo(unix.RTM_GETLINK, unix.NLM_F_DUMP, 0, 0, 0)
		c.attrU32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
		if tunOnly {
			li := c.nest(unix.IFLA_LINKINFO)
			c.attrString(unix.IFLA_INFO_KIND, "tun")
			c.end(li)
		}
		seq, err := c.send(false)
		if err != nil {
			return err
		}
		intr, err := c.readDump(seq, fn)
		if err != nil {
			return err
		}
		if !intr {
			return nil
		}
	}
	return errors.New("link dump interrupted 10 times")
}

func (c *Conn) readDump(seq uint32, fn func(*Link)) (intr bool, err error) {
	var l Link
	for {
		n, _, err := unix.Recvfrom(c.fd, c.rx, 0)
		if err != nil {
			return false, os.NewSyscallError("recvfrom", err)
		}
		b := c.rx[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			mlen := int(ne.Uint32(b[0:4]))
			if mlen < unix.NLMSG_HDRLEN || mlen > len(b) {
				return false, errors.New("truncated netlink message")
			}
			typ, flags, mseq := ne.Uint16(b[4:6]), ne.Uint16(b[6:8]), ne.Uint32(b[8:12])
			msg := b[unix.NLMSG_HDRLEN:mlen]
			b = b[min(nlmAlign(mlen), len(b)):]
			if mseq != seq {
				continue
			}
			if flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch typ {
			case unix.NLMSG_DONE:
				return intr, nil
			case unix.NLMSG_ERROR:
				if e := int32(ne.Uint32(msg[0:4])); e != 0 {
					return false, unix.Errno(-e)
				}
				return intr, nil
			case unix.RTM_NEWLINK:
				if !intr {
					parseLink(msg, &l)
					fn(&l)
				}
			}
		}
	}
}

// parseLink reads the few attributes GC needs: name, alias, group, and for
// TUN/TAP links the type and attached queue count.
func parseLink(msg []byte, l *Link) {
	*l = Link{Index: ne.Uint32(msg[4:8])}
	forAttrs(msg[unix.SizeofIfInfomsg:], func(typ uint16, v []byte) {
		switch typ {
		case unix.IFLA_IFNAME:
			l.Name = cstr(v)
		case unix.IFLA_IFALIAS:
			l.Alias = cstr(v)
		case unix.IFLA_GROUP:
			l.Group = ne.Uint32(v)
		case unix.IFLA_LINKINFO:
			forAttrs(v, func(typ uint16, v []byte) {
				if typ != unix.IFLA_INFO_DATA {
					return
				}
				forAttrs(v, func(typ uint16, v []byte) {
					switch typ {
					case unix.IFLA_TUN_TYPE:
						l.TAP = v[0] == unix.IFF_TAP
					case unix.IFLA_TUN_NUM_QUEUES:
						l.Queues = ne.Uint32(v)
					}
				})
			})
		}
	})
}

func forAttrs(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= unix.SizeofRtAttr {
		alen := int(ne.Uint16(b[0:2]))
		if alen < unix.SizeofRtAttr || alen > len(b) {
			return
		}
		fn(ne.Uint16(b[2:4])&^nlaFNested, b[unix.SizeofRtAttr:alen])
		b = b[min(nlaAlign(alen), len(b)):]
	}
}

func cstr(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// Message building: one message at a time in c.tx.

func (c *Conn) begin(typ uint16, flags uint16) {
	c.tx = c.tx[:unix.NLMSG_HDRLEN]
	clear(c.tx)
	ne.PutUint16(c.tx[4:6], typ)
	ne.PutUint16(c.tx[6:8], unix.NLM_F_REQUEST|flags)
}

func (c *Conn) ifinfo(typ, flags uint16, index, ifflags, change uint32) {
	c.begin(typ, flags)
	m := c.grow(unix.SizeofIfInfomsg)
	ne.PutUint32(m[4:8], index)
	ne.PutUint32(m[8:12], ifflags)
	ne.PutUint32(m[12:16], change)
}

func (c *Conn) grow(n int) []byte {
	l := len(c.tx)
	c.tx = append(c.tx, make([]byte, nlaAlign(n))...)
	return c.tx[l : l+n]
}

func (c *Conn) attr(typ uint16, v []byte) {
	h := c.grow(unix.SizeofRtAttr + len(v))
	ne.PutUint16(h[0:2], uint16(unix.SizeofRtAttr+len(v)))
	ne.PutUint16(h[2:4], typ)
	copy(h[unix.SizeofRtAttr:], v)
}

func (c *Conn) attrU32(typ uint16, v uint32) {
	var b [4]byte
	ne.PutUint32(b[:], v)
	c.attr(typ, b[:])
}

func (c *Conn) attrString(typ uint16, s string) {
	h := c.grow(unix.SizeofRtAttr + len(s) + 1)
	ne.PutUint16(h[0:2], uint16(unix.SizeofRtAttr+len(s)+1))
	ne.PutUint16(h[2:4], typ)
	copy(h[unix.SizeofRtAttr:], s)
}

func (c *Conn) nest(typ uint16) int {
	off := len(c.tx)
	h := c.grow(unix.SizeofRtAttr)
	ne.PutUint16(h[2:4], typ|nlaFNested)
	return off
}

func (c *Conn) end(off int) {
	ne.PutUint16(c.tx[off:off+2], uint16(len(c.tx)-off))
}

// send finishes the message in c.tx and sends it, with NLM_F_ACK if ack.
func (c *Conn) send(ack bool) (uint32, error) {
	c.seq++
	ne.PutUint32(c.tx[0:4], uint32(len(c.tx)))
	ne.PutUint32(c.tx[8:12], c.seq)
	if ack {
		ne.PutUint16(c.tx[6:8], ne.Uint16(c.tx[6:8])|unix.NLM_F_ACK)
	}
	if err := unix.Sendto(c.fd, c.tx, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, os.NewSyscallError("sendto", err)
	}
	return c.seq, nil
}

// exec sends the message in c.tx and waits for its acknowledgement.
func (c *Conn) exec() error {
	seq, err := c.send(true)
	if err != nil {
		return err
	}
	for {
		n, _, err := unix.Recvfrom(c.fd, c.rx, 0)
		if err != nil {
			return os.NewSyscallError("recvfrom", err)
		}
		b := c.rx[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			mlen := int(ne.Uint32(b[0:4]))
			if mlen < unix.NLMSG_HDRLEN || mlen > len(b) {
				return errors.New("truncated netlink message")
			}
			typ, mseq := ne.Uint16(b[4:6]), ne.Uint32(b[8:12])
			if typ == unix.NLMSG_ERROR && mseq == seq {
				if e := int32(ne.Uint32(b[16:20])); e != 0 {
					return unix.Errno(-e)
				}
				return nil
			}
			b = b[min(nlmAlign(mlen), len(b)):]
		}
	}
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
func nlaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// Reaper deletes retired links as tapbridge's reaper does: it wakes on the
// first retirement, lets more gather for Interval unless Batch are pending,
// and deletes the whole group with one message, on its own socket and
// goroutine.
type Reaper struct {
	Interval time.Duration
	Batch    int

	conn    *Conn
	group   uint32
	mu      sync.Mutex // serializes group deletions (loop and Flush)
	pending atomic.Int64
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	err     atomic.Pointer[error]
}

// StartReaper starts a reaper of group on conn, which it owns from now on.
func StartReaper(conn *Conn, group uint32, interval time.Duration, batch int) *Reaper {
	r := &Reaper{
		Interval: interval, Batch: batch, conn: conn, group: group,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go r.loop()
	return r
}

// Add tells the reaper that n more links were retired into its group.
func (r *Reaper) Add(n int) {
	r.pending.Add(int64(n))
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Flush deletes the group now and returns the first error any deletion
// met so far.
func (r *Reaper) Flush() error {
	r.reap()
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close flushes, stops the goroutine and closes the socket.
func (r *Reaper) Close() error {
	close(r.stop)
	<-r.done
	err := r.Flush()
	return errors.Join(err, r.conn.Close())
}

func (r *Reaper) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
		}
		t := time.NewTimer(r.Interval)
	gather:
		for r.pending.Load() < int64(r.Batch) {
			select {
			case <-t.C:
				break gather
			case <-r.wake:
			case <-r.stop:
				t.Stop()
				return
			}
		}
		t.Stop()
		r.reap()
	}
}

func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending.Swap(0) == 0 {
		return
	}
	if err := r.conn.DeleteGroup(r.group); err != nil {
		r.err.CompareAndSwap(nil, &err)
	}
}
