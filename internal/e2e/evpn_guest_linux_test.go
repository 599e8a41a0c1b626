package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// evpnGuest is one QEMU guest of the many-hosts tests, on one host.
type evpnGuest struct {
	name    string
	host    *evpnHost
	qemu    *proc
	console *consoleTail
	qmp     string // QMP socket path
}

// guestOpts are what the many-hosts tests vary on the QEMU command line.
type guestOpts struct {
	cmdline  string // appended to the kernel command line (e2e.mode=..., e2e.peer=...)
	mac      string // guest MAC (default: the NIC record's)
	incoming string // -incoming URI: the guest is a migration destination
}

// bootGuest starts QEMU for one single-queue guest on n, inside h's
// namespace, with a QMP socket and its console tailed.
func bootGuest(t *testing.T, rep *report, h *evpnHost, g *guest, accel string, n nic, name string, o guestOpts) *evpnGuest {
	t.Helper()
	dir := t.TempDir()
	console := filepath.Join(dir, "console.log")
	if o.mac != "" {
		n.Mac = o.mac
	}
	args, err := qemuArgs(g, n, e2eCase{cpus: 1}, accel, console)
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	for i := range args {
		if args[i] == "-append" && o.cmdline != "" {
			args[i+1] += " " + o.cmdline
		}
	}
	gst := &evpnGuest{name: name, host: h, qmp: filepath.Join(dir, "qmp.sock")}
	args = append(args, "-qmp", "unix:"+gst.qmp+",server=on,wait=off")
	if o.incoming != "" {
		args = append(args, "-incoming", o.incoming)
	}
	// The console file must exist before the tail opens it.
	if err := os.WriteFile(console, nil, 0o644); err != nil {
		rep.fatalf(t, "%v", err)
	}
	p, err := startProc(t, "qemu-"+name, append([]string{"nsenter", "--net=" + h.nsPath, "--"}, args...)...)
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	gst.qemu = p
	gst.console = tailConsole(t, console)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guest %s on host %s: QEMU output:\n%s\nconsole:\n%s", name, h.name, p.out.String(), tail([]byte(gst.console.text()), 3000))
		}
	})
	return gst
}

// waitMarker waits until the guest's console has marker k and returns its
// value.
func (gs *evpnGuest) waitMarker(k string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		m := parseMarkers([]byte(gs.console.text()))
		if m.has(k) {
			return m.val(k), nil
		}
		if gs.qemu.exited() {
			return "", fmt.Errorf("guest %s: QEMU exited (%v) before %s; markers %q", gs.name, gs.qemu.err, k, m.lines)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("guest %s: no %s within %v; markers %q", gs.name, k, timeout, m.lines)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consoleTail follows a guest console file and stamps each line with the
// time the host read it: a guest's clock stops while QEMU is paused (the
// last phase of a migration), so only the host's clock can time a gap.
type consoleTail struct {
	mu    sync.Mutex
	buf   bytes.Buffer // everything read
	lines []stampedLine
	part  []byte // the last, unterminated line
	stop  chan struct{}
	done  chan struct{}
}

type stampedLine struct {
	at   time.Time
	text string
}

// tailConsoleEvery is how often the tail reads: the resolution of every
// gap it measures.
const tailConsoleEvery = 5 * time.Millisecond

func tailConsole(t *testing.T, path string) *consoleTail {
	c := &consoleTail{stop: make(chan struct{}), done: make(chan struct{})}
	go c.run(path)
	t.Cleanup(func() {
		close(c.stop)
		<-c.done
	})
	return c
}

func (c *consoleTail) run(path string) {
	defer close(c.done)
	f, err := os.Open(path)
	if err != nil {
		c.mu.Lock()
		fmt.Fprintf(&c.buf, "E2E-TAIL-FAIL %v\n", err)
		c.mu.Unlock()
		return
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	tick := time.NewTicker(tailConsoleEvery)
	defer tick.Stop()
	for {
		for {
			n, _ := f.Read(b)
			if n == 0 {
				break
			}
			c.add(b[:n], time.Now())
		}
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
	}
}

func (c *consoleTail) add(b []byte, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(b)
	c.part = append(c.part, b...)
	for {
		i := bytes.IndexByte(c.part, '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, stampedLine{at: at, text: strings.TrimRight(string(c.part[:i]), "\r")})
		c.part = c.part[i+1:]
	}
}

func (c *consoleTail) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *consoleTail) stamped() []stampedLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]stampedLine(nil), c.lines...)
}

// pingReply is one reply line of busybox ping: "64 bytes from IP: seq=N
// ttl=64 time=0.5 ms".
type pingReply struct {
	at  time.Time
	seq int
}

var pingSeq = regexp.MustCompile(`bytes from [0-9.]+: seq=([0-9]+) `)

// pingReplies extracts the ping replies of console lines, in order.
func pingReplies(lines []stampedLine) []pingReply {
	var rs []pingReply
	for _, l := range lines {
		m := pingSeq.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		seq, err := strconv.Atoi(m[1])
		if err == nil {
			rs = append(rs, pingReply{at: l.at, seq: seq})
		}
	}
	return rs
}

// pingGap is the longest silence in a run of ping replies, on the host's
// clock, and the sequence numbers lost around it.
type pingGap struct {
	gap      time.Duration // longest time between two consecutive replies
	from, to pingReply     // the replies on either side of it
	lost     int           // sequence numbers never answered, over the whole run
	replies  int
}

// longestGap returns the longest gap of rs (sorted by arrival). Sequence
// numbers are the guest's: they are counted for loss, while the gap is the
// host's time between replies, which includes the time the guest was
// paused.
func longestGap(rs []pingReply) pingGap {
	g := pingGap{replies: len(rs)}
	if len(rs) == 0 {
		return g
	}
	seen := map[int]bool{}
	lo, hi := rs[0].seq, rs[0].seq
	for i, r := range rs {
		seen[r.seq] = true
		lo, hi = min(lo, r.seq), max(hi, r.seq)
		if i > 0 && r.at.Sub(rs[i-1].at) > g.gap {
			g.gap, g.from, g.to = r.at.Sub(rs[i-1].at), rs[i-1], r
		}
	}
	g.lost = hi - lo + 1 - len(seen)
	return g
}

// qmpConn is a QMP client: one command at a time; events are kept with the
// time QEMU stamped them.
type qmpConn struct {
	c       net.Conn
	mu      sync.Mutex // one command in flight
	replies chan qmpMsg
	evMu    sync.Mutex
	events  []qmpEvent
}

type qmpMsg struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
	QMP json.RawMessage `json:"QMP"`
}

type qmpEvent struct {
	name string
	at   time.Time // QEMU's own stamp (host clock)
	data json.RawMessage
}

// dialQMP connects to a guest's QMP socket and leaves capabilities
// negotiation mode. t.Cleanup closes the connection.
func dialQMP(t *testing.T, gs *evpnGuest, timeout time.Duration) (*qmpConn, error) {
	if err := waitPath(gs.qmp, gs.qemu, timeout); err != nil {
		return nil, err
	}
	c, err := net.Dial("unix", gs.qmp)
	if err != nil {
		return nil, err
	}
	q := &qmpConn{c: c, replies: make(chan qmpMsg, 16)}
	go q.read()
	t.Cleanup(func() { c.Close() })
	if _, err := q.cmd("qmp_capabilities", nil, timeout); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *qmpConn) read() {
	dec := json.NewDecoder(q.c)
	defer close(q.replies)
	for {
		var m qmpMsg
		if err := dec.Decode(&m); err != nil {
			return
		}
		switch {
		case m.QMP != nil: // the greeting
		case m.Event != "":
			q.evMu.Lock()
			q.events = append(q.events, qmpEvent{name: m.Event, data: m.Data,
				at: time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)})
			q.evMu.Unlock()
		default:
			q.replies <- m
		}
	}
}

// cmd runs one QMP command and returns its "return" value.
func (q *qmpConn) cmd(name string, args any, timeout time.Duration) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	req := map[string]any{"execute": name}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := q.c.Write(b); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", name, err)
	}
	select {
	case m, ok := <-q.replies:
		if !ok {
			return nil, fmt.Errorf("qmp %s: connection closed", name)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s: %s", name, m.Error.Class, m.Error.Desc)
		}
		return m.Return, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("qmp %s: no reply within %v", name, timeout)
	}
}

// waitEvent waits for the first event called name.
func (q *qmpConn) waitEvent(name string, timeout time.Duration) (qmpEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		q.evMu.Lock()
		for _, e := range q.events {
			if e.name == name {
				q.evMu.Unlock()
				return e, nil
			}
		}
		q.evMu.Unlock()
		if time.Now().After(deadline) {
			return qmpEvent{}, errors.New("no QMP event " + name + " within " + timeout.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// migrationInfo is the part of query-migrate the tests report.
type migrationInfo struct {
	Status    string `json:"status"`
	TotalTime int64  `json:"total-time"` // ms
	Downtime  int64  `json:"downtime"`   // ms
	SetupTime int64  `json:"setup-time"` // ms
	RAM       struct {
		Transferred int64 `json:"transferred"`
	} `json:"ram"`
	ErrorDesc string `json:"error-desc"`
}

func (q *qmpConn) queryMigrate() (migrationInfo, error) {
	var mi migrationInfo
	r, err := q.cmd("query-migrate", nil, 10*time.Second)
	if err == nil {
		err = json.Unmarshal(r, &mi)
	}
	return mi, err
}
