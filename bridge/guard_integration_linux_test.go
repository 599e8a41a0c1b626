package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/frames"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/types"
)

// The hostile-guest tests write frames into a guest's TAP fd the way a
// VMM does (behind a virtio-net header) and check, on the real kernel,
// what the guard lets through: the frame reaches (or not) another guest's
// TAP and the host, and the guard's drop counter moves (or not). Every
// attack frame has a legitimate twin that must pass. The frames are valid
// (checksums and all): bridge-nf-call-iptables is on in namespaces here,
// and it drops bad IPv4 headers before the guard would, which would make a
// "dropped" prove nothing.

var (
	gwIP     = netip.MustParseAddr("10.0.0.1")
	victimIP = netip.MustParseAddr("10.0.0.3")
	attackIP = netip.MustParseAddr("10.0.0.4")
	victim6  = netip.MustParseAddr("fd00::3")
	attack6  = netip.MustParseAddr("fd00::4")
)

// guest is one VM's NIC as its VMM holds it.
type guest struct {
	id  string
	mac [6]byte
	fd  int
	tap string
}

// guardFixture is a namespace whose bridge br0 is the guests' gateway
// (10.0.0.1/24, and an IPv6 link-local address), with a Bridge in mode.
type guardFixture struct {
	*fixture
	brMAC [6]byte
	brLL  netip.Addr
}

func newGuardFixture(t *testing.T, mode guard.Mode) *guardFixture {
	t.Helper()
	f := newFixture(t, &config.Config{Guard: mode, Hypervisor: config.Firecracker})
	f.ip(t, "link", "set", "lo", "up")
	f.ip(t, "addr", "add", gwIP.String()+"/24", "dev", testBridge)
	g := &guardFixture{fixture: f, brMAC: [6]byte(mustHW(t, f.link(t, testBridge).Address))}
	g.brLL = frames.LinkLocal(g.brMAC)
	return g
}

// guest makes VM id with one NIC, bound to addrs (none: unbound), and
// holds its TAP open as a VMM would; it waits until the port forwards.
func (g *guardFixture) guest(t *testing.T, id string, addrs ...netip.Addr) *guest {
	t.Helper()
	rec := g.config(t, id, 1, nil)[0]
	var pfx []netip.Prefix
	for _, a := range addrs {
		pfx = append(pfx, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(pfx) > 0 {
		if err := g.b.Bind(t.Context(), id, 0, pfx); err != nil {
			t.Fatalf("Bind(%s, %v) = %v", id, pfx, err)
		}
	}
	fd := int(gcHold(t, g.fixture, rec.Tap, false, 1).Queues()[0].Fd())
	g.waitForwarding(t, rec.Tap)
	return &guest{id: id, mac: mustMAC(t, rec.Mac), fd: fd, tap: rec.Tap}
}

// send writes one frame into the guest's TAP, behind the virtio-net header
// of a TAP whose header size nobody changed (10 bytes).
func (gu *guest) send(t *testing.T, frame []byte) {
	t.Helper()
	b := frames.VnetHdr(frame, frames.VnetHdrLen)
	if n, err := unix.Write(gu.fd, b); err != nil || n != len(b) {
		t.Fatalf("write %d bytes into %s's TAP = %d, %v", len(b), gu.id, n, err)
	}
}

// drops is the guard's drop counter of the guest's NIC, as Inspect reads it.
func (g *guardFixture) drops(t *testing.T, gu *guest) uint64 {
	t.Helper()
	n, err := g.b.Inspect(t.Context(), gu.id)
	if err != nil {
		t.Fatalf("Inspect(%s) = %v", gu.id, err)
	}
	return n.Links[0].GuardDrops
}

// received reads frames from the guest's TAP until one equals marker (or
// a timeout) and returns the frames before it, without their vnet headers.
func (gu *guest) received(t *testing.T, marker []byte, timeout time.Duration) (before [][]byte, seen bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return before, false
		}
		pfd := []unix.PollFd{{Fd: int32(gu.fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil || n == 0 {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return before, false
		}
		n, err := unix.Read(gu.fd, buf)
		if err != nil {
			t.Fatalf("read %s's TAP: %v", gu.id, err)
		}
		fr := bytes.Clone(buf[frames.VnetHdrLen:n])
		if bytes.Equal(fr, marker) {
			return before, true
		}
		before = append(before, fr)
	}
}

// guardCase is a frame the attacker sends and whether the guard must drop
// it, by mode and by whether the attacker's NIC has bound addresses.
type guardCase struct {
	name  string
	frame func(g *guardFixture, a, v *guest) []byte
	drop  func(mode guard.Mode, bound bool) bool
}

func always(guard.Mode, bool) bool { return true }
func never(guard.Mode, bool) bool  { return false }

// enforced: a rule of the bound set, which applies to a bound NIC, and in
// strict mode to an unbound one too.
func enforced(m guard.Mode, bound bool) bool { return bound || m == guard.ModeStrict }

// bootstrapOnly: legitimate traffic of a bound NIC, which a strict unbound
// NIC may not send yet.
func bootstrapOnly(m guard.Mode, bound bool) bool { return !bound && m == guard.ModeStrict }

func ip4(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	return frames.IPv4{Protocol: proto, Src: src, Dst: dst}.Marshal(payload)
}

// icmpEcho4 is an ICMP echo request (type 8) with its checksum.
func icmpEcho4(id uint16) []byte {
	e := append([]byte{8, 0, 0, 0}, frames.Echo(id, 1, []byte("tapbridge"))...)
	c := frames.Checksum(e)
	e[2], e[3] = byte(c>>8), byte(c)
	return e
}

var guardCases = []guardCase{
	// Layer 2.
	{"spoofed source MAC", func(g *guardFixture, a, v *guest) []byte {
		return frames.ARPRequestFrame(v.mac, victimIP, gwIP)
	}, always},
	{"802.1Q tag", func(g *guardFixture, a, v *guest) []byte {
		return frames.Tagged(frames.Broadcast, a.mac, []frames.Tag{{TPID: 0x8100, TCI: 5}}, frames.EtherTypeIPv4,
			ip4(attackIP, netip.MustParseAddr("10.0.0.255"), unix.IPPROTO_UDP, frames.UDP(attackIP, netip.MustParseAddr("10.0.0.255"), 9, 9, []byte("x"))))
	}, always},
	{"802.1ad and 802.1Q tags", func(g *guardFixture, a, v *guest) []byte {
		return frames.Tagged(frames.Broadcast, a.mac, []frames.Tag{{TPID: 0x88a8, TCI: 7}, {TPID: 0x8100, TCI: 5}}, frames.EtherTypeARP,
			frames.ARP{Op: frames.ARPRequest, SHA: a.mac, SPA: attackIP, TPA: gwIP}.Marshal())
	}, always},
	{"STP BPDU", func(g *guardFixture, a, v *guest) []byte { return frames.STPBPDU(a.mac) }, always},
	{"LLDP", func(g *guardFixture, a, v *guest) []byte { return frames.LLDP(a.mac) }, always},
	// ARP.
	{"ARP reply as the victim", func(g *guardFixture, a, v *guest) []byte {
		return frames.ARPReplyFrame(a.mac, victimIP, g.brMAC, gwIP)
	}, enforced},
	{"gratuitous ARP as the gateway", func(g *guardFixture, a, v *guest) []byte {
		return frames.GratuitousARP(a.mac, gwIP)
	}, enforced},
	{"ARP with a spoofed sender MAC", func(g *guardFixture, a, v *guest) []byte {
		return frames.ARPFrame(frames.Broadcast, a.mac, frames.ARP{Op: frames.ARPRequest, SHA: v.mac, SPA: attackIP, TPA: gwIP})
	}, always},
	{"ARP op 3", func(g *guardFixture, a, v *guest) []byte {
		return frames.ARPFrame(frames.Broadcast, a.mac, frames.ARP{Op: 3, SHA: a.mac, SPA: attackIP, TPA: gwIP})
	}, always},
	{"ARP request from the bound address (twin)", func(g *guardFixture, a, v *guest) []byte {
		return frames.ARPRequestFrame(a.mac, attackIP, gwIP)
	}, bootstrapOnly},
	{"ARP probe (twin)", func(g *guardFixture, a, v *guest) []byte { return frames.ARPProbe(a.mac, attackIP) }, never},
	// IPv4.
	{"IPv4 from the victim's address", func(g *guardFixture, a, v *guest) []byte {
		return frames.IPv4Frame(g.brMAC, a.mac, ip4(victimIP, gwIP, unix.IPPROTO_ICMP, icmpEcho4(7)))
	}, enforced},
	{"IPv4 from 0.0.0.0, not DHCP", func(g *guardFixture, a, v *guest) []byte {
		return frames.IPv4Frame(g.brMAC, a.mac, ip4(netip.IPv4Unspecified(), gwIP, unix.IPPROTO_ICMP, icmpEcho4(8)))
	}, enforced},
	{"ping from the bound address (twin)", func(g *guardFixture, a, v *guest) []byte {
		return frames.IPv4Frame(g.brMAC, a.mac, ip4(attackIP, gwIP, unix.IPPROTO_ICMP, icmpEcho4(9)))
	}, bootstrapOnly},
	{"unicast to another guest (twin)", func(g *guardFixture, a, v *guest) []byte {
		return frames.IPv4Frame(v.mac, a.mac, ip4(attackIP, victimIP, unix.IPPROTO_UDP, frames.UDP(attackIP, victimIP, 4000, 4000, []byte("hello"))))
	}, bootstrapOnly},
	{"rogue DHCP server", func(g *guardFixture, a, v *guest) []byte {
		return frames.DHCPv4Server(a.mac, attackIP, v.mac, netip.MustParseAddr("10.0.0.99"), 2, 0x1234, nil)
	}, always},
	{"rogue DHCP server, IPv4 options", func(g *guardFixture, a, v *guest) []byte {
		return frames.DHCPv4Server(a.mac, attackIP, v.mac, netip.MustParseAddr("10.0.0.99"), 2, 0x1235, []byte{1, 1, 1, 1})
	}, always},
	{"DHCP DISCOVER (twin)", func(g *guardFixture, a, v *guest) []byte {
		return frames.DHCPv4Client(a.mac, frames.DHCPDiscover, 0x4242)
	}, never},
	// IPv6.
	{"router advertisement", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.AllNodes), a.mac,
			frames.IPv6{HopLimit: 255, Src: frames.LinkLocal(a.mac), Dst: frames.AllNodes}, nil, 134, 0, frames.RA(1800, frames.SLLA(a.mac)))
	}, always},
	{"router advertisement behind Hop-by-Hop and Destination Options", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.AllNodes), a.mac,
			frames.IPv6{HopLimit: 255, Src: frames.LinkLocal(a.mac), Dst: frames.AllNodes},
			[]frames.Ext{frames.HopByHop(frames.PadN(4)), frames.DestOpts(frames.PadN(4))}, 134, 0, frames.RA(1800))
	}, always},
	{"redirect", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.AllNodes), a.mac,
			frames.IPv6{HopLimit: 255, Src: frames.LinkLocal(a.mac), Dst: frames.AllNodes}, nil, 137, 0,
			frames.Redirect(frames.LinkLocal(a.mac), victim6))
	}, always},
	{"DHCPv6 ADVERTISE", func(g *guardFixture, a, v *guest) []byte {
		return frames.DHCPv6Server(a.mac, frames.LinkLocal(a.mac), v.mac, frames.LinkLocal(v.mac), 2, 0x77)
	}, always},
	{"neighbour advertisement with the victim's MAC", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.AllNodes), a.mac,
			frames.IPv6{HopLimit: 255, Src: frames.LinkLocal(a.mac), Dst: frames.AllNodes}, nil, 136, 0,
			frames.NA(frames.NAOverride, frames.LinkLocal(a.mac), frames.TLLA(v.mac)))
	}, always},
	{"neighbour advertisement for the victim's address", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.AllNodes), a.mac,
			frames.IPv6{HopLimit: 255, Src: frames.LinkLocal(a.mac), Dst: frames.AllNodes}, nil, 136, 0,
			frames.NA(frames.NAOverride, victim6, frames.TLLA(a.mac)))
	}, enforced},
	{"neighbour solicitation with a spoofed source link-layer address", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.SolicitedNode(g.brLL)), a.mac,
			frames.IPv6{HopLimit: 255, Src: frames.LinkLocal(a.mac), Dst: frames.SolicitedNode(g.brLL)}, nil, 135, 0,
			frames.NS(g.brLL, frames.SLLA(v.mac)))
	}, always},
	{"DAD solicitation from :: (twin)", func(g *guardFixture, a, v *guest) []byte {
		ll := frames.LinkLocal(a.mac)
		return frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.SolicitedNode(ll)), a.mac,
			frames.IPv6{HopLimit: 255, Src: netip.IPv6Unspecified(), Dst: frames.SolicitedNode(ll)}, nil, 135, 0, frames.NS(ll))
	}, never},
	{"link-local echo to the gateway (twin)", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(g.brMAC, a.mac, frames.IPv6{Src: frames.LinkLocal(a.mac), Dst: g.brLL}, nil,
			frames.ICMPv6EchoRequest, 0, frames.Echo(3, 1, []byte("tapbridge")))
	}, never},
	{"IPv6 from the victim's address", func(g *guardFixture, a, v *guest) []byte {
		return frames.ICMPv6Frame(g.brMAC, a.mac, frames.IPv6{Src: victim6, Dst: g.brLL}, nil,
			frames.ICMPv6EchoRequest, 0, frames.Echo(4, 1, nil))
	}, enforced},
	{"DHCPv6 SOLICIT (twin)", func(g *guardFixture, a, v *guest) []byte {
		return frames.DHCPv6Client(a.mac, frames.LinkLocal(a.mac), frames.DHCPv6Solicit, 0x99)
	}, never},
}

// TestIntegrationGuardHostileGuest writes every attack of guardCases, and
// its legitimate twin, from an attacker guest, in l2 and strict mode, with
// the attacker's NIC bound (IPv4 and IPv6) and unbound.
func TestIntegrationGuardHostileGuest(t *testing.T) {
	for _, mode := range []guard.Mode{guard.ModeL2, guard.ModeStrict} {
		for _, bound := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/bound=%v", mode, bound), func(t *testing.T) {
				g := newGuardFixture(t, mode)
				v := g.guest(t, "vm-victim", victimIP, victim6)
				var a *guest
				if bound {
					a = g.guest(t, "vm-attacker", attackIP, attack6)
				} else {
					a = g.guest(t, "vm-attacker")
				}
				// The marker: a frame every mode lets through, broadcast, so
				// that the victim has seen everything the attacker sent
				// before it once it sees the marker.
				marker := frames.DHCPv4Client(a.mac, frames.DHCPDiscover, 0x5a5a5a5a)
				for _, tc := range guardCases {
					want := tc.drop(mode, bound)
					frame := tc.frame(g, a, v)
					before := g.drops(t, a)
					a.send(t, frame)
					a.send(t, marker)
					got, seen := v.received(t, marker, 10*time.Second)
					if !seen {
						t.Fatalf("%s: the victim never received the marker", tc.name)
					}
					reached := false
					for _, fr := range got {
						reached = reached || bytes.Equal(fr, frame)
					}
					after := g.drops(t, a)
					dropped := after == before+1
					if dropped != want || after > before+1 {
						t.Errorf("%s: guard drop counter %d -> %d; want the frame dropped: %v", tc.name, before, after, want)
					}
					if want && reached {
						t.Errorf("%s: the victim received the frame the guard should drop", tc.name)
					}
					if dst := [6]byte(frame[:6]); !want && (dst == frames.Broadcast || dst == v.mac) && !reached {
						t.Errorf("%s: the victim did not receive the legitimate frame", tc.name)
					}
				}
				// The legitimate twins that reach the host get its answer.
				if !bootstrapOnly(mode, bound) {
					a.send(t, frames.IPv4Frame(g.brMAC, a.mac, ip4(attackIP, gwIP, unix.IPPROTO_ICMP, icmpEcho4(11))))
					if !a.answered(t, func(fr []byte) bool {
						return len(fr) > 34 && fr[12] == 0x08 && fr[13] == 0 && fr[23] == unix.IPPROTO_ICMP && fr[34] == 0 // echo reply
					}) {
						t.Errorf("ping from the bound address: no echo reply from the gateway")
					}
				}
				g.waitLinkLocal(t)
				// A solicitation with our link-layer address first, so that the
				// host has a neighbour entry to reply through (ndisc_recv_ns).
				a.send(t, frames.ICMPv6Frame(frames.IPv6MulticastMAC(frames.SolicitedNode(g.brLL)), a.mac,
					frames.IPv6{HopLimit: 255, Src: frames.LinkLocal(a.mac), Dst: frames.SolicitedNode(g.brLL)}, nil, 135, 0,
					frames.NS(g.brLL, frames.SLLA(a.mac))))
				a.send(t, frames.ICMPv6Frame(g.brMAC, a.mac, frames.IPv6{Src: frames.LinkLocal(a.mac), Dst: g.brLL}, nil,
					frames.ICMPv6EchoRequest, 0, frames.Echo(12, 1, nil)))
				if !a.answered(t, func(fr []byte) bool {
					return len(fr) > 54 && fr[12] == 0x86 && fr[13] == 0xdd && fr[20] == unix.IPPROTO_ICMPV6 && fr[54] == 129 // echo reply
				}) {
					t.Errorf("link-local echo to the gateway: no echo reply")
				}
			})
		}
	}
}

// answered waits a few seconds for a frame to the guest that match
// accepts.
func (gu *guest) answered(t *testing.T, match func([]byte) bool) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got, _ := gu.received(t, nil, 100*time.Millisecond)
		for _, fr := range got {
			if match(fr) {
				return true
			}
		}
	}
	return false
}

// waitLinkLocal waits until the bridge's IPv6 link-local address has
// passed duplicate address detection, which starts when its first port
// gets carrier: a tentative address answers nothing.
func (g *guardFixture) waitLinkLocal(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := string(g.run(t, "ip", "-6", "addr", "show", "dev", testBridge, "scope", "link"))
		if strings.Contains(out, g.brLL.String()) && !strings.Contains(out, "tentative") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge link-local address %s not usable after 10 s: %s", g.brLL, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationGuardARPPoisoning: a bound guest cannot rewrite the host's
// neighbour entry for another guest's IP. The spoofed reply is sent after
// the neighbour locktime (1 s: an earlier reply would be ignored anyway
// and prove nothing), and its legitimate twin, from the victim, changes
// the entry as a control.
func TestIntegrationGuardARPPoisoning(t *testing.T) {
	g := newGuardFixture(t, guard.ModeL2)
	v := g.guest(t, "vm-victim", victimIP)
	a := g.guest(t, "vm-attacker", attackIP)
	// The host learns the victim from its request.
	v.send(t, frames.ARPRequestFrame(v.mac, victimIP, gwIP))
	neigh := func() string {
		t.Helper()
		var e []struct {
			Lladdr string `json:"lladdr"`
		}
		if err := json.Unmarshal(g.run(t, "ip", "-j", "neigh", "show", victimIP.String(), "dev", testBridge), &e); err != nil {
			t.Fatal(err)
		}
		if len(e) == 0 {
			return ""
		}
		return e[0].Lladdr
	}
	deadline := time.Now().Add(5 * time.Second)
	for neigh() != net.HardwareAddr(v.mac[:]).String() {
		if time.Now().After(deadline) {
			t.Fatalf("host neighbour entry for %s = %q, want the victim's %s", victimIP, neigh(), net.HardwareAddr(v.mac[:]))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // past the locktime
	before := g.drops(t, a)
	a.send(t, frames.ARPReplyFrame(a.mac, victimIP, g.brMAC, gwIP))
	time.Sleep(100 * time.Millisecond)
	if got := neigh(); got != net.HardwareAddr(v.mac[:]).String() {
		t.Errorf("host neighbour entry for %s after the spoofed reply = %s, want the victim's %s", victimIP, got, net.HardwareAddr(v.mac[:]))
	}
	if after := g.drops(t, a); after != before+1 {
		t.Errorf("attacker's drop counter %d -> %d, want one drop", before, after)
	}
	// The control: with the guard off on the attacker, the same reply
	// poisons the entry.
	off := "vm-off"
	rec := g.config(t, off, 1, &types.VMConfig{Guard: "off"})[0]
	o := &guest{id: off, mac: mustMAC(t, rec.Mac), fd: int(gcHold(t, g.fixture, rec.Tap, false, 1).Queues()[0].Fd()), tap: rec.Tap}
	g.waitForwarding(t, rec.Tap)
	time.Sleep(1100 * time.Millisecond)
	o.send(t, frames.ARPReplyFrame(o.mac, victimIP, g.brMAC, gwIP))
	deadline = time.Now().Add(5 * time.Second)
	for neigh() != net.HardwareAddr(o.mac[:]).String() {
		if time.Now().After(deadline) {
			t.Fatalf("control: host neighbour entry for %s = %q after an unguarded spoofed reply, want %s: the test proves nothing",
				victimIP, neigh(), net.HardwareAddr(o.mac[:]))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIntegrationGuardRandomMACs: frames from random source MACs neither
// pass nor grow the bridge's forwarding table.
func TestIntegrationGuardRandomMACs(t *testing.T) {
	g := newGuardFixture(t, guard.ModeL2)
	a := g.guest(t, "vm-attacker")
	before, drops := len(g.fdb(t)), g.drops(t, a)
	for i := range 64 {
		src := [6]byte(randomMAC())
		a.send(t, frames.ARPRequestFrame(src, netip.AddrFrom4([4]byte{10, 0, 0, byte(100 + i)}), gwIP))
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.drops(t, a) < drops+64 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := g.drops(t, a); got != drops+64 {
		t.Errorf("drop counter %d -> %d, want 64 drops", drops, got)
	}
	if after := len(g.fdb(t)); after != before {
		t.Errorf("FDB has %d entries after 64 random source MACs, want %d as before", after, before)
	}
}

// TestIntegrationGuardOff: with the guard off a NIC is as before the
// guard: no filter, no drop, the frames pass.
func TestIntegrationGuardOff(t *testing.T) {
	g := newGuardFixture(t, guard.ModeOff)
	v := g.guest(t, "vm-victim")
	a := g.guest(t, "vm-attacker")
	if g.hasGuardFilter(t, a.tap) {
		t.Fatalf("TAP %s has a guard filter with the guard off", a.tap)
	}
	ra := frames.DHCPv4Server(a.mac, attackIP, v.mac, netip.MustParseAddr("10.0.0.99"), 2, 0x1234, nil)
	a.send(t, ra)
	got, seen := v.received(t, ra, 10*time.Second)
	if !seen {
		t.Errorf("with the guard off, the victim did not receive the DHCP OFFER (got %d other frames)", len(got))
	}
	n, err := g.b.Inspect(t.Context(), a.id)
	if err != nil || n.Links[0].Guard != "off" || n.Links[0].GuardDrops != 0 {
		t.Errorf("Inspect(attacker) = %+v, %v; want guard off, no drops", n, err)
	}
}

// TestIntegrationBind: bindings replace the set, are read back by another
// process's Bridge, survive a repairing Config, and refuse bad input
// without changing anything.
func TestIntegrationBind(t *testing.T) {
	g := newGuardFixture(t, guard.ModeL2)
	ctx := t.Context()
	g.config(t, "vm-b", 2, nil)
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	bound := func(b *Bridge, nic int) []string {
		t.Helper()
		n, err := b.Inspect(ctx, "vm-b")
		if err != nil {
			t.Fatal(err)
		}
		return n.Links[nic].Bound
	}
	if err := g.b.Bind(ctx, "vm-b", 1, p("10.0.0.7/24", "fd00::7/64")); err != nil {
		t.Fatalf("Bind = %v", err)
	}
	if err := g.b.Bind(ctx, "vm-b", 1, p("10.0.0.7/24", "fd00::7/64")); err != nil {
		t.Fatalf("Bind again = %v, want nil (idempotent)", err)
	}
	want := []string{"10.0.0.7/24", "fd00::7/64"}
	other := g.newBridge(t, &config.Config{RootDir: g.dir})
	if got := bound(other, 1); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("another Bridge reads NIC 1's bindings %q, want %q", got, want)
	}
	if got := bound(g.b, 0); len(got) != 0 {
		t.Errorf("NIC 0's bindings = %q, want none", got)
	}
	n, _ := other.Inspect(ctx, "vm-b")
	if nw := n.NICs[1].Network; nw == nil || nw.IP != "10.0.0.7" || nw.Prefix != 24 {
		t.Errorf("Inspect NIC 1 record network = %+v, want ip 10.0.0.7 prefix 24", nw)
	}
	// A repairing Config keeps the bindings the filter holds.
	g.config(t, "vm-b", 2, nil)
	if got := bound(g.b, 1); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after a repairing Config NIC 1's bindings = %q, want %q", got, want)
	}
	// Bad input: an error, nothing changed.
	many := make([]netip.Prefix, guard.MaxAddrs+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32)
	}
	for _, tc := range []struct {
		desc string
		vm   string
		nic  int
		pfx  []netip.Prefix
		want error
	}{
		{"unknown VM", "vm-none", 0, p("10.0.0.9/32"), network.ErrNotFound},
		{"unknown NIC", "vm-b", 5, p("10.0.0.9/32"), network.ErrNotFound},
		{"NIC out of range", "vm-b", 16, p("10.0.0.9/32"), ErrInvalidArgument},
		{"bad VM ID", "vm/b", 0, p("10.0.0.9/32"), ErrInvalidArgument},
		{"multicast", "vm-b", 1, p("224.0.0.1/32"), ErrInvalidArgument},
		{"broadcast", "vm-b", 1, p("255.255.255.255/32"), ErrInvalidArgument},
		{"unspecified", "vm-b", 1, p("0.0.0.0/32"), ErrInvalidArgument},
		{"duplicate", "vm-b", 1, p("10.0.0.9/32", "10.0.0.9/24"), ErrInvalidArgument},
		{"too many", "vm-b", 1, many, ErrInvalidArgument},
	} {
		err := g.b.Bind(ctx, tc.vm, tc.nic, tc.pfx)
		if !errors.Is(err, tc.want) {
			t.Errorf("Bind(%s) = %v, want an error wrapping %v", tc.desc, err, tc.want)
		}
	}
	if got := bound(g.b, 1); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after refused Binds NIC 1's bindings = %q, want %q unchanged", got, want)
	}
	// Unbind.
	if err := g.b.Bind(ctx, "vm-b", 1, nil); err != nil {
		t.Fatalf("Bind(nil) = %v", err)
	}
	if got := bound(g.b, 1); len(got) != 0 {
		t.Errorf("after Bind(nil) NIC 1's bindings = %q, want none", got)
	}
	// A NIC whose guard is off has nothing to bind in.
	g.config(t, "vm-off", 1, &types.VMConfig{Guard: "off"})
	if err := g.b.Bind(ctx, "vm-off", 0, p("10.0.0.8/32")); !errors.Is(err, ErrGuardOff) {
		t.Errorf("Bind on a NIC with the guard off = %v, want ErrGuardOff", err)
	}
	// Recovery: records carrying cocoon's network field bind again.
	recs := g.config(t, "vm-r", 1, nil)
	recs[0].Network = &types.Network{IP: "10.0.0.20", Gateway: "10.0.0.1", Prefix: 24}
	if _, err := g.b.Delete(ctx, []string{"vm-r"}); err != nil {
		t.Fatal(err)
	}
	again, err := g.b.Config(ctx, "vm-r", 1, nil, recs...)
	if err != nil {
		t.Fatalf("Config(vm-r, recovered records) = %v", err)
	}
	if nw := again[0].Network; nw == nil || !reflect.DeepEqual(*nw, *recs[0].Network) {
		t.Errorf("recovered record network = %+v, want %+v", nw, recs[0].Network)
	}
	n, err = g.b.Inspect(ctx, "vm-r")
	if err != nil || n.IP != "10.0.0.20" || n.Gateway != "10.0.0.1" || n.Prefix != 24 || strings.Join(n.Links[0].Bound, " ") != "10.0.0.20/24" {
		t.Errorf("Inspect(vm-r) = %+v, %v; want ip 10.0.0.20/24 via 10.0.0.1, bound", n, err)
	}
}

// TestIntegrationLease: a lease event binds the lease's address to the NIC
// with that guest MAC, keeps its other addresses, and del unbinds it; a
// MAC that is not one of the instance's guests is no error.
func TestIntegrationLease(t *testing.T) {
	g := newGuardFixture(t, guard.ModeStrict)
	ctx := t.Context()
	rec := g.config(t, "vm-l", 1, nil)[0]
	mac := mustHW(t, rec.Mac)
	ip := netip.MustParseAddr("10.0.0.50")
	for range 2 { // add, then old (dnsmasq's restart): idempotent
		if found, err := g.b.Lease(ctx, mac, ip, true); err != nil || !found {
			t.Fatalf("Lease(add %s %s) = %v, %v; want found", mac, ip, found, err)
		}
	}
	n, _ := g.b.Inspect(ctx, "vm-l")
	if got := strings.Join(n.Links[0].Bound, " "); got != "10.0.0.50/32" {
		t.Errorf("after the lease, bindings = %q, want 10.0.0.50/32", got)
	}
	if found, err := g.b.Lease(ctx, mac, ip, false); err != nil || !found {
		t.Fatalf("Lease(del) = %v, %v", found, err)
	}
	n, _ = g.b.Inspect(ctx, "vm-l")
	if len(n.Links[0].Bound) != 0 {
		t.Errorf("after del, bindings = %q, want none", n.Links[0].Bound)
	}
	if found, err := g.b.Lease(ctx, net.HardwareAddr{2, 9, 9, 9, 9, 9}, ip, true); err != nil || found {
		t.Errorf("Lease for a foreign MAC = %v, %v; want not found, nil", found, err)
	}
}
