package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// QEMU is the real TAP client: with -machine none and -S it runs no guest,
// but it still opens its -netdev tap the way it does for a VM (TUNSETIFF
// with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, plus IFF_MULTI_QUEUE iff queues > 1,
// net/tap-linux.c: tap_open), and holds the queue files until it exits.
const qemuBin = "qemu-system-x86_64"

// qemuProc is a QEMU process started in a test namespace.
type qemuProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{} // closed when it exited
	err    error         // its exit, once done is closed
}

func (q *qemuProc) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stderr.Write(p)
}

func (q *qemuProc) output() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return strings.TrimSpace(q.stderr.String())
}

// startQEMU starts QEMU in f's namespace with one tap netdev on the TAP
// name, with queues= when queues > 0 (what QEMU needs to open a
// multi-queue TAP) and without it otherwise. nsenter execs QEMU, so the
// process is QEMU itself; cleanup kills it.
func startQEMU(t *testing.T, f *fixture, name string, queues int) *qemuProc {
	t.Helper()
	bin, err := exec.LookPath(qemuBin)
	if err != nil {
		t.Fatalf("%s is needed as the real TAP client (make deps installs it): %v", qemuBin, err)
	}
	netdev := "tap,id=n0,ifname=" + name + ",script=no,downscript=no,vnet_hdr=on"
	if queues > 0 {
		netdev += fmt.Sprintf(",queues=%d", queues)
	}
	q := &qemuProc{done: make(chan struct{})}
	q.cmd = exec.Command("nsenter", "--net="+testutil.NSPath(f.ns), "--", bin,
		"-nodefaults", "-display", "none", "-machine", "none", "-S", "-monitor", "none", "-netdev", netdev)
	q.cmd.Stderr = q
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", q.cmd.Args, err)
	}
	go func() {
		q.err = q.cmd.Wait()
		close(q.done)
	}()
	t.Cleanup(func() {
		q.cmd.Process.Kill()
		<-q.done
	})
	return q
}

// stop kills QEMU (SIGKILL, by pid) and waits for it.
func (q *qemuProc) stop(t *testing.T) {
	t.Helper()
	if err := q.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill qemu %d: %v", q.cmd.Process.Pid, err)
	}
	<-q.done
}

// wait waits for QEMU to exit by itself and returns its exit error.
func (q *qemuProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-q.done:
		return q.err
	case <-time.After(time.Minute):
		t.Fatalf("qemu is still running after a minute; want it to fail (stderr %q)", q.output())
		return nil
	}
}

// tapAttached reports whether a process holds l open: the queue count for
// a multi-queue TAP, the carrier for a single-queue one (the kernel reports
// IFLA_TUN_NUM_QUEUES only for multi-queue TAPs).
func tapAttached(l *rtnl.Link) (queues int, attached bool) {
	if l.Tun.MultiQueue {
		return int(l.Tun.Queues), l.Tun.Queues > 0
	}
	if l.Flags&unix.IFF_LOWER_UP != 0 {
		return 1, true
	}
	return 0, false
}

// waitAttached polls the TAP until want queues are attached (0: until it is
// free), failing if q exits first.
func waitAttached(t *testing.T, f *fixture, name string, want int, q *qemuProc) {
	t.Helper()
	conn, err := rtnl.Dial(&rtnl.Config{NetNS: f.ns})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		l, err := conn.LinkByName(t.Context(), name)
		if err != nil {
			t.Fatalf("LinkByName(%q) = %v", name, err)
		}
		if n, _ := tapAttached(l); n == want {
			return
		}
		if q != nil {
			select {
			case <-q.done:
				t.Fatalf("qemu exited (%v) before %s had %d queues attached: %s", q.err, name, want, q.output())
			default:
			}
		}
		if time.Now().After(deadline) {
			n, _ := tapAttached(l)
			t.Fatalf("%s: %d queues attached after a minute, want %d", name, n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationQEMUOpensTAP(t *testing.T) {
	for _, hv := range []string{config.CloudHypervisor, config.Firecracker, config.QEMU} {
		for _, cpu := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("%s/cpu%d", hv, cpu), func(t *testing.T) {
				f := newFixture(t, &config.Config{Hypervisor: hv, GCGrace: -1})
				recs := f.config(t, "vm-qemu", 1, &types.VMConfig{CPU: cpu})
				name := recs[0].Tap
				if err := f.b.Verify(t.Context(), "vm-qemu"); err != nil {
					t.Fatalf("Verify() = %v, want nil", err)
				}
				// QEMU opens a TAP multi-queue iff queues > 1: with one
				// queue pair per vCPU where the profile makes the TAP
				// multi-queue, else with a single queue.
				mq := config.MultiQueue(hv, cpu)
				queues, want := 0, 1
				if mq {
					queues, want = cpu, cpu
				}
				q := startQEMU(t, f, name, queues)
				waitAttached(t, f, name, want, q)

				n, err := f.b.Inspect(t.Context(), "vm-qemu")
				if err != nil {
					t.Fatalf("Inspect() = %v, want nil", err)
				}
				if l := n.Links[0]; l.MultiQueue != mq || l.AttachedQueues != want {
					t.Errorf("Inspect() link = %+v, want multi-queue %v and %d attached queues", l, mq, want)
				}
				// The VM is not in the live set, but QEMU holds its TAP.
				mr := gcRun(t, gcOrch(f.b, newGCLive()), f.b.inst)
				if len(mr.Orphans) != 0 {
					t.Errorf("GC picked %v while qemu holds them, want nothing", mr.Orphans)
				}
				q.stop(t)
				waitAttached(t, f, name, 0, nil)
				// The TAP outlives its VMM, intact.
				if err := f.b.Verify(t.Context(), "vm-qemu"); err != nil {
					t.Errorf("Verify() after qemu exited = %v, want nil", err)
				}
				mr = gcRun(t, gcOrch(f.b, newGCLive()), f.b.inst)
				if len(mr.Reclaimed) != 1 || mr.Reclaimed[0] != name {
					t.Errorf("GC after qemu exited reclaimed %v, want [%s]", mr.Reclaimed, name)
				}
			})
		}
	}
}

func TestIntegrationQEMUWrongProfile(t *testing.T) {
	for _, tt := range []struct {
		made   string // the hypervisor profile Config used
		cpu    int
		other  string // the VMM that opens it
		queues int    // QEMU's queues= for the other profile (0: single queue)
	}{
		{made: config.Firecracker, cpu: 2, other: config.QEMU, queues: 2},
		{made: config.QEMU, cpu: 2, other: config.Firecracker, queues: 0},
		{made: config.CloudHypervisor, cpu: 4, other: config.Firecracker, queues: 0},
	} {
		t.Run(fmt.Sprintf("%s cpu%d opened as %s", tt.made, tt.cpu, tt.other), func(t *testing.T) {
			f := newFixture(t, &config.Config{Hypervisor: tt.made})
			recs := f.config(t, "vm-wrong", 1, &types.VMConfig{CPU: tt.cpu})
			// The same instance, configured for the other hypervisor,
			// reports the mismatch before any VMM tries.
			other := f.newBridge(t, &config.Config{RootDir: f.dir, Hypervisor: tt.other})
			err := other.Verify(t.Context(), "vm-wrong")
			if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "multi-queue") {
				t.Errorf("Verify() on a %s Bridge = %v, want an ErrMismatch naming multi-queue", tt.other, err)
			}
			q := startQEMU(t, f, recs[0].Tap, tt.queues)
			if err := q.wait(t); err == nil || !strings.Contains(q.output(), "Invalid argument") {
				t.Errorf("qemu opening a %s TAP as %s exited with %v (%q), want a failure with EINVAL", tt.made, tt.other, err, q.output())
			}
			// The failed attach left the TAP as it was.
			if err := f.b.Verify(t.Context(), "vm-wrong"); err != nil {
				t.Errorf("Verify() on the %s Bridge after qemu failed = %v, want nil", tt.made, err)
			}
		})
	}
}

// vnetHdrLen is the virtio-net header every frame carries on a TAP with
// IFF_VNET_HDR, unless TUNSETVNETHDRSZ changed it: sizeof(struct
// virtio_net_hdr) (drivers/net/tun.c: tun_set_iff sets vnet_hdr_sz).
const vnetHdrLen = 10

// testEtherType is the IEEE local experimental EtherType: frames of the
// test are told from the bridge's own IPv6 chatter by it.
const testEtherType = 0x88b5

func testFrame(dst, src net.HardwareAddr, payload string) []byte {
	b := make([]byte, vnetHdrLen, vnetHdrLen+14+64)
	b = append(b, dst...)
	b = append(b, src...)
	b = append(b, testEtherType>>8, testEtherType&0xff)
	b = append(b, payload...)
	for len(b) < vnetHdrLen+60 {
		b = append(b, 0)
	}
	return b
}

// readPayloads reads test frames from a TAP queue fd until one carries
// until, or the timeout; it returns the payloads read (up to their NUL
// padding).
func readPayloads(t *testing.T, fd int, until string, timeout time.Duration) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return got
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if n == 0 {
			continue
		}
		m, err := unix.Read(fd, buf)
		if err != nil {
			t.Fatalf("read TAP: %v", err)
		}
		fr := buf[:m]
		if len(fr) < vnetHdrLen+14 || fr[vnetHdrLen+12] != testEtherType>>8 || fr[vnetHdrLen+13] != testEtherType&0xff {
			continue
		}
		p, _, _ := strings.Cut(string(fr[vnetHdrLen+14:]), "\x00")
		got = append(got, p)
		if p == until {
			return got
		}
	}
}

func TestIntegrationUnicastNotFlooded(t *testing.T) {
	// The frames are not IP: the guard would drop them. This test is
	// about the bridge's forwarding table, with the guard off.
	f := newFixture(t, &config.Config{Hypervisor: config.Firecracker, Guard: guard.ModeOff})
	ids := []string{"vm-a", "vm-b", "vm-c"}
	macs := map[string]net.HardwareAddr{}
	fds := map[string]int{}
	for _, id := range ids {
		rec := f.config(t, id, 1, nil)[0]
		macs[id] = mustHW(t, rec.Mac)
		// Hold the TAP as the VMM would: the attached queue gives it
		// carrier, and the port starts forwarding (STP is off).
		d := gcHold(t, f, rec.Tap, false, 1)
		fds[id] = int(d.Queues()[0].Fd())
		f.waitForwarding(t, rec.Tap)
	}
	write := func(from string, frame []byte) {
		t.Helper()
		if n, err := unix.Write(fds[from], frame); err != nil || n != len(frame) {
			t.Fatalf("write %d bytes into %s's TAP = %d, %v", len(frame), from, n, err)
		}
	}
	// A -> B unicast, then a frame to a MAC no port has, which the bridge
	// floods: once C sees that marker, it would have seen the unicast
	// before it, had the unicast been flooded too.
	unknown := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	write("vm-a", testFrame(macs["vm-b"], macs["vm-a"], "unicast a->b"))
	write("vm-a", testFrame(unknown, macs["vm-a"], "flood marker"))

	const wait = 30 * time.Second
	if got := readPayloads(t, fds["vm-b"], "flood marker", wait); !slices.Equal(got, []string{"unicast a->b", "flood marker"}) {
		t.Errorf("vm-b's TAP received %q, want the unicast and then the marker", got)
	}
	if got := readPayloads(t, fds["vm-c"], "flood marker", wait); !slices.Equal(got, []string{"flood marker"}) {
		t.Errorf("vm-c's TAP received %q, want only the flooded marker (no unicast for vm-b)", got)
	}
	// Nothing came back to the sender.
	if got := readPayloads(t, fds["vm-a"], "", 200*time.Millisecond); len(got) != 0 {
		t.Errorf("vm-a's TAP received %q, want nothing", got)
	}
	// And B -> C unicast reaches C only.
	write("vm-b", testFrame(macs["vm-c"], macs["vm-b"], "unicast b->c"))
	write("vm-b", testFrame(unknown, macs["vm-b"], "flood marker 2"))
	if got := readPayloads(t, fds["vm-c"], "flood marker 2", wait); !slices.Equal(got, []string{"unicast b->c", "flood marker 2"}) {
		t.Errorf("vm-c's TAP received %q, want the unicast and then the marker", got)
	}
	if got := readPayloads(t, fds["vm-a"], "flood marker 2", wait); !slices.Equal(got, []string{"flood marker 2"}) {
		t.Errorf("vm-a's TAP received %q, want only the flooded marker", got)
	}
}
