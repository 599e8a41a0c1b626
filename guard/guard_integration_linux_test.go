package guard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/cbpf"
	f "github.com/tapbridge/tapbridge/internal/frames"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/tap"
)

// The kernel is the oracle here: each policy's program is installed with
// tc on a TAP's clsact ingress in a throwaway namespace, every frame of the
// table (and every cut of a few of them) is written into the TAP as a guest
// would, and the kernel's verdict, read from the clsact qdisc counters,
// must be the interpreter's.

// bytecode formats a program for tc's "bpf bytecode" argument.
func bytecode(prog []guard.Instruction) string {
	parts := []string{strconv.Itoa(len(prog))}
	for _, in := range prog {
		parts = append(parts, fmt.Sprintf("%d %d %d %d", in.Op, in.Jt, in.Jf, in.K))
	}
	return strings.Join(parts, ",")
}

var bytecodeRE = regexp.MustCompile(`bytecode '([0-9 ,]+)'`)

// parseBytecode reads back what tc prints of an installed classic filter.
func parseBytecode(t *testing.T, s string) []guard.Instruction {
	t.Helper()
	m := bytecodeRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no bytecode in tc output %q", s)
	}
	parts := strings.Split(m[1], ",")
	n, err := strconv.Atoi(parts[0])
	if err != nil || n != len(parts)-1 {
		t.Fatalf("bad bytecode header in %q", m[1])
	}
	var prog []guard.Instruction
	for _, p := range parts[1:] {
		var op, jt, jf, k uint64
		if _, err := fmt.Sscanf(p, "%d %d %d %d", &op, &jt, &jf, &k); err != nil {
			t.Fatalf("bad instruction %q: %v", p, err)
		}
		prog = append(prog, guard.Instruction{Op: uint16(op), Jt: uint8(jt), Jf: uint8(jf), K: uint32(k)})
	}
	return prog
}

// counters are the clsact qdisc's statistics: packets that reached the
// ingress filters, and those the filters dropped.
type counters struct{ packets, drops uint64 }

func clsact(t *testing.T, ns int, dev string) counters {
	t.Helper()
	var qdiscs []struct {
		Kind    string `json:"kind"`
		Packets uint64 `json:"packets"`
		Drops   uint64 `json:"drops"`
	}
	if err := json.Unmarshal(testutil.Run(t, ns, "tc", "-s", "-j", "qdisc", "show", "dev", dev), &qdiscs); err != nil {
		t.Fatalf("decode tc -s -j qdisc: %v", err)
	}
	for _, q := range qdiscs {
		if q.Kind == "clsact" {
			return counters{q.Packets, q.Drops}
		}
	}
	t.Fatalf("no clsact qdisc on %s", dev)
	return counters{}
}

// kernelVerdict is what happened to a written frame.
type kernelVerdict string

const (
	refused kernelVerdict = "refused by write" // EINVAL from tun_get_user
	early   kernelVerdict = "dropped before tc"
	kPass   kernelVerdict = "passed"
	kDrop   kernelVerdict = "dropped by the filter"
)

// expected is the interpreter's verdict, with the kernel's treatment before
// tc modelled by cbpf.Ingress.
func expected(t *testing.T, prog []guard.Instruction, frame []byte) kernelVerdict {
	t.Helper()
	if len(frame) < 14 {
		return refused
	}
	if _, _, ok := cbpf.Ingress(frame, tapMAC); !ok {
		return early
	}
	if run(t, prog, frame, false) == pass {
		return kPass
	}
	return kDrop
}

type guardedTAP struct {
	ns    int
	name  string
	file  *os.File
	vnet  int
	count counters
}

// newGuardedTAP makes a TAP in a new namespace, with the vnet header size
// vnet, and installs prog on its ingress with tc.
func newGuardedTAP(t *testing.T, prog []guard.Instruction, vnet int) *guardedTAP {
	t.Helper()
	testutil.RequireTUN(t)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Fatalf("tc (iproute2) is needed; .ci/deps installs it: %v", err)
	}
	ns := testutil.NetNS(t)
	dev, err := tap.Create("gd0", &tap.Options{VnetHdr: true, Exclusive: true, NetNS: ns})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("skipping: creating a TAP needs CAP_NET_ADMIN: %v", err)
		}
		t.Fatalf("tap.Create: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	g := &guardedTAP{ns: ns, name: dev.Name(), file: dev.Queues()[0], vnet: vnet}
	if vnet != f.VnetHdrLen {
		rc, err := g.file.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var ierr error
		if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetPointerInt(int(fd), unix.TUNSETVNETHDRSZ, vnet) }); err != nil || ierr != nil {
			t.Fatalf("TUNSETVNETHDRSZ %d: %v %v", vnet, err, ierr)
		}
	}
	mac := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", tapMAC[0], tapMAC[1], tapMAC[2], tapMAC[3], tapMAC[4], tapMAC[5])
	testutil.Run(t, ns, "ip", "link", "set", g.name, "address", mac, "addrgenmode", "none")
	testutil.Run(t, ns, "ip", "link", "set", g.name, "up")
	testutil.Run(t, ns, "tc", "qdisc", "add", "dev", g.name, "clsact")
	testutil.Run(t, ns, "tc", "filter", "add", "dev", g.name, "ingress", "bpf", "bytecode", bytecode(prog), "da")
	g.count = clsact(t, ns, g.name)
	return g
}

// write sends one frame as the guest and returns what the kernel did.
func (g *guardedTAP) write(t *testing.T, frame []byte) kernelVerdict {
	t.Helper()
	_, err := g.file.Write(f.VnetHdr(frame, g.vnet))
	if errors.Is(err, unix.EINVAL) {
		return refused
	}
	if err != nil {
		t.Fatalf("write %d bytes: %v", len(frame), err)
	}
	// tun hands the frame to the stack synchronously (tun_rx_batched,
	// netif_receive_skb), so the counters are current when write returns.
	c := clsact(t, g.ns, g.name)
	prev := g.count
	g.count = c
	switch {
	case c == prev:
		return early
	case c.packets == prev.packets+1 && c.drops == prev.drops+1:
		return kDrop
	case c.packets == prev.packets+1 && c.drops == prev.drops:
		return kPass
	}
	t.Fatalf("clsact counters went from %+v to %+v for one frame", prev, c)
	return ""
}

// truncated are the cases cut at every length in the kernel too.
var truncated = []string{
	"802.1Q tagged (tag taken into the skb)",
	"QinQ (inner tag left in the frame)",
	"ARP reply from the bound IP",
	"ping with IP options from the bound IP",
	"DHCP ACK with IP options",
	"RA behind a chain",
	"NA with a spoofed TLLA",
	"DAD NS from :: with a nonce",
	"DHCPv6 ADVERTISE (rogue server)",
	"MLDv2 report",
}

func TestIntegrationKernelAgrees(t *testing.T) {
	for i, pc := range policies() {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			prog := mustProgram(t, &pc.p)
			vnet := f.VnetHdrMrgLen // what VMMs set
			if i%2 == 1 {
				vnet = f.VnetHdrLen // a TAP's default
			}
			g := newGuardedTAP(t, prog, vnet)

			// The kernel keeps the program as given: reading it back is
			// reading the policy back.
			dumped := parseBytecode(t, string(testutil.Run(t, g.ns, "tc", "filter", "show", "dev", g.name, "ingress")))
			if !slices.Equal(dumped, prog) {
				t.Fatalf("tc filter show gives %d instructions, installed %d, not the same", len(dumped), len(prog))
			}
			if got, err := guard.Decode(dumped); err != nil || !reflect.DeepEqual(got, canonical(pc.p)) {
				t.Fatalf("Decode(kernel dump) = %+v, %v, want %+v", got, err, canonical(pc.p))
			}

			counts := map[kernelVerdict]int{}
			check := func(name string, frame []byte) {
				want := expected(t, prog, frame)
				got := g.write(t, frame)
				counts[got]++
				if got != want {
					t.Errorf("%s (%d bytes): kernel %s, interpreter %s\nframe %x", name, len(frame), got, want, frame)
				}
			}
			for _, c := range cases() {
				check(c.name, c.frame)
				if pc.name == "l2 both" && slices.Contains(truncated, c.name) {
					for l := range len(c.frame) {
						check(fmt.Sprintf("%s cut to %d", c.name, l), c.frame[:l])
					}
				}
			}
			t.Logf("vnet header %d bytes; %v", vnet, counts)
		})
	}
}
