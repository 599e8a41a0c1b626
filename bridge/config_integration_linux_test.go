package bridge

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

func TestIntegrationNewErrors(t *testing.T) {
	f := newFixture(t, nil)
	f.addVeth(t, "veth0", "veth1", false)
	dir := t.TempDir()
	nsPath := testutil.NSPath(f.ns)
	conf := func(c config.Config) *config.Config {
		c.RootDir, c.NetnsPath = dir, nsPath
		return &c
	}
	tests := []struct {
		desc   string
		conf   *config.Config
		dev    string
		want   []error
		inText string
	}{
		{"nil config", nil, testBridge, []error{ErrInvalidArgument}, "nil config"},
		{"empty bridge name", conf(config.Config{}), "", []error{ErrInvalidArgument, tap.ErrInvalidName}, "empty"},
		{"bridge name too long", conf(config.Config{}), "br0123456789abcdef", []error{ErrInvalidArgument, tap.ErrInvalidName}, "br0123456789abcdef"},
		{"bridge name of 16 bytes", conf(config.Config{}), "br0123456789abcd", []error{ErrInvalidArgument, tap.ErrInvalidName}, "16 bytes"},
		{"bridge name with newline", conf(config.Config{}), "br\n0", []error{ErrInvalidArgument, tap.ErrInvalidName}, "br\\n0"},
		{"bridge name template", conf(config.Config{}), "br%d", []error{ErrInvalidArgument, tap.ErrInvalidName}, "br%d"},
		{"bridge name with slash", conf(config.Config{}), "br/0", []error{ErrInvalidArgument, tap.ErrInvalidName}, "br/0"},
		{"missing device", conf(config.Config{}), "nosuch0", []error{ErrBridgeNotFound, unix.ENODEV}, "nosuch0"},
		{"veth is not a bridge", conf(config.Config{}), "veth0", []error{ErrNotBridge}, "veth"},
		{"loopback is not a bridge", conf(config.Config{}), "lo", []error{ErrNotBridge}, "lo"},
		{"invalid hypervisor", conf(config.Config{Hypervisor: "xen"}), testBridge, []error{ErrInvalidArgument}, "xen"},
		{"negative reap batch", conf(config.Config{ReapBatch: -1}), testBridge, []error{ErrInvalidArgument}, "reap batch"},
		{"namespace path that is not a namespace", &config.Config{RootDir: dir, NetnsPath: dir}, testBridge, nil, "namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			before := f.links(t)
			fds := testutil.FDCountBusy(t)
			b, err := New(tt.conf, tt.dev)
			if b != nil {
				b.Close()
				t.Fatalf("New(%+v, %q) = a Bridge, want an error", tt.conf, tt.dev)
			}
			call := fmt.Sprintf("New(%+v, %q)", tt.conf, tt.dev)
			errIs(t, call, err, tt.want...)
			if err != nil && !strings.Contains(err.Error(), tt.inText) {
				t.Errorf("%s = %q, want the message to mention %q", call, err, tt.inText)
			}
			checkFDs(t, fds, call)
			if after := f.links(t); !reflect.DeepEqual(after[testBridge].Address, before[testBridge].Address) || len(after) != len(before) {
				t.Errorf("%s changed the namespace: links %v, want %v", call, slices.Sorted(mapKeys(after)), slices.Sorted(mapKeys(before)))
			}
		})
	}
}

// TestIntegrationNewPinsBridgeMAC checks that the bridge's MAC, the gateway
// MAC of every guest, never moves while TAPs come and go. Without the pin
// the kernel gives the bridge the lowest MAC of its ports
// (net/bridge/br_stp_if.c: br_stp_recalculate_bridge_id), and all zeros
// once the last port has left.
func TestIntegrationNewPinsBridgeMAC(t *testing.T) {
	tests := []struct {
		desc string
		// prepare runs before New, with the fixture's own Bridge closed.
		prepare func(t *testing.T, f *fixture)
	}{
		{"bridge without ports", func(t *testing.T, f *fixture) {}},
		{"uplink with a MAC above the TAPs' host MACs", func(t *testing.T, f *fixture) {
			// The bridge takes the uplink's MAC; every TAP's host MAC
			// (fe:00:00:00:00:xx) would be lower and win.
			f.addVeth(t, "up0", "up1", true, "address", "fe:ff:ff:ff:ff:f0")
		}},
		{"all-zero MAC after the last port left", func(t *testing.T, f *fixture) {
			f.addVeth(t, "tmp0", "tmp1", true)
			f.ip(t, "link", "del", "tmp0")
			if got := f.link(t, testBridge).Address; got != "00:00:00:00:00:00" {
				t.Logf("bridge MAC after its last port left = %s (kernel no longer zeroes it)", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			testutil.RequireTUN(t)
			ns := testutil.NetNS(t)
			testutil.AddBridge(t, ns, testBridge)
			f := &fixture{ns: ns}
			tt.prepare(t, f)
			before := f.link(t, testBridge).Address
			f.b = f.newBridge(t, nil)
			pinned := f.link(t, testBridge).Address
			mac := mustMAC(t, pinned)
			if mac[0]&1 != 0 || mac == [6]byte{} {
				t.Fatalf("bridge MAC after New = %s, want a unicast MAC that is not all zeros", pinned)
			}
			if before != "00:00:00:00:00:00" && pinned != before {
				t.Errorf("bridge MAC after New = %s, want it unchanged (%s)", pinned, before)
			}
			check := func(when string) {
				t.Helper()
				if got := f.link(t, testBridge).Address; got != pinned {
					t.Fatalf("bridge MAC %s = %s, want %s as pinned by New", when, got, pinned)
				}
			}
			// 50 VMs come and go, at most 5 at a time; their host MACs
			// fe:00:00:00:00:xx are below every other MAC in play.
			const n, live = 50, 5
			for i := range n {
				rec := &types.NetworkConfig{Mac: fmt.Sprintf("02:00:00:00:00:%02x", i+1)}
				recs := f.config(t, fmt.Sprintf("vm-%03d", i), 1, nil, rec)
				if got, want := f.link(t, recs[0].Tap).Address, fmt.Sprintf("fe:00:00:00:00:%02x", i+1); got != want {
					t.Fatalf("TAP %s MAC = %s, want %s", recs[0].Tap, got, want)
				}
				check(fmt.Sprintf("after VM %d came", i))
				if i >= live {
					if _, err := f.b.Delete(t.Context(), []string{fmt.Sprintf("vm-%03d", i-live)}); err != nil {
						t.Fatalf("Delete(vm-%03d) = %v", i-live, err)
					}
					check(fmt.Sprintf("after VM %d went", i-live))
				}
			}
			var rest []string
			for i := n - live; i < n; i++ {
				rest = append(rest, fmt.Sprintf("vm-%03d", i))
			}
			if _, err := f.b.Delete(t.Context(), rest); err != nil {
				t.Fatalf("Delete(%v) = %v", rest, err)
			}
			check("after the last TAP went")
			// A second New on a pinned bridge changes nothing.
			f.newBridge(t, nil)
			check("after a second New")
		})
	}
}

// checkNICs checks every NIC of a VM against iproute2: the TAP, its
// flags, MACs, MTU, qdisc, IPv6 state, bridge port flags, FDB entry, owner
// tag and alternative name.
func (f *fixture) checkNICs(t *testing.T, vmID string, recs []*types.NetworkConfig, mq bool) {
	t.Helper()
	links := f.links(t)
	ports := f.ports(t)
	br := links[testBridge]
	c := f.b.conf
	for nic, rec := range recs {
		l := links[rec.Tap]
		if l == nil {
			t.Errorf("vm %s nic %d: TAP %s not in the namespace", vmID, nic, rec.Tap)
			continue
		}
		d := tunData(t, l)
		for k, w := range map[string]any{"type": "tap", "pi": false, "vnet_hdr": true, "multi_queue": mq, "persist": true} {
			if d[k] != w {
				t.Errorf("ip -d link show %s: info_data[%q] = %v, want %v", l.Name, k, d[k], w)
			}
		}
		if mq && numQueues(t, l) != 0 {
			t.Errorf("ip -d link show %s: numqueues = %d, want 0 (Config keeps no queue open)", l.Name, numQueues(t, l))
		}
		if rec.Backend != Backend || rec.BridgeDev != testBridge {
			t.Errorf("record of nic %d = %+v, want backend %q and bridge %q", nic, rec, Backend, testBridge)
		}
		checkTag(t, l, f.b, vmID, nic, len(recs), rec)

		guest := mustMAC(t, rec.Mac)
		if guest[0]&1 != 0 || guest[0]&2 == 0 || guest[0] == 0xfe {
			t.Errorf("nic %d guest MAC %s: want a locally administered unicast MAC not starting with fe", nic, rec.Mac)
		}
		wantHost := fmt.Sprintf("fe:%s", rec.Mac[3:])
		if l.Address != wantHost || l.Address == rec.Mac {
			t.Errorf("ip link show %s: MAC %s, want %s (fe: and the guest MAC %s's last 5 bytes)", l.Name, l.Address, wantHost, rec.Mac)
		}
		if l.MTU != br.MTU {
			t.Errorf("ip link show %s: mtu %d, want the bridge's %d", l.Name, l.MTU, br.MTU)
		}
		if l.Master != testBridge || !l.HasFlag("UP") {
			t.Errorf("ip link show %s: master %q flags %v, want master %s and UP", l.Name, l.Master, l.Flags, testBridge)
		}
		if l.TxQLen != int(c.TxQueueLen) {
			t.Errorf("ip link show %s: qlen %d, want %d", l.Name, l.TxQLen, c.TxQueueLen)
		}
		if l.AddrGen != "none" {
			t.Errorf("ip -d link show %s: addrgenmode %q, want none", l.Name, l.AddrGen)
		}
		if a := f.addrs(t, l.Name, "inet6"); len(a) != 0 {
			t.Errorf("ip addr show %s: IPv6 addresses %v, want none", l.Name, a)
		}
		// The guard (on by default): a clsact qdisc beside the noqueue
		// root, carrying the filter, and the port locked with no
		// unknown-unicast flooding. Off: the port as before the guard.
		guarded := c.Guard != guard.ModeOff
		wantQ := []string{"noqueue"}
		if guarded {
			wantQ = append(wantQ, "clsact")
		}
		q := f.qdiscs(t, l.Name)
		var kinds []string
		for _, d := range q {
			kinds = append(kinds, d.Kind)
		}
		if !slices.Equal(kinds, wantQ) || !q[0].Root {
			t.Errorf("tc qdisc show dev %s = %+v, want qdiscs %v, the first the root", l.Name, q, wantQ)
		}
		if got := f.hasGuardFilter(t, l.Name); got != guarded {
			t.Errorf("tc filter show dev %s ingress: guard filter %v, want %v", l.Name, got, guarded)
		}
		p := ports[l.Name]
		wantLocked := c.Locked || guarded
		if p == nil {
			t.Errorf("bridge link show: %s is not a bridge port", l.Name)
		} else if p.Master != testBridge || p.Learning || p.Isolated != c.Isolated || p.Locked != wantLocked ||
			p.Flood == guarded || !p.McastFlood || !p.BcastFlood {
			t.Errorf("bridge -d link show %s = %+v, want master %s, learning off, isolated %v, locked %v, unicast flood %v, multicast and broadcast flood on",
				l.Name, *p, testBridge, c.Isolated, wantLocked, !guarded)
		}
		f.checkStaticFDB(t, rec.Mac, l.Name)
	}
}

func TestIntegrationConfigProfiles(t *testing.T) {
	for _, hv := range []string{config.CloudHypervisor, config.QEMU, config.Firecracker} {
		for _, cpu := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("%s/cpu%d", hv, cpu), func(t *testing.T) {
				f := newFixture(t, &config.Config{Hypervisor: hv})
				const vm = "vm-profile-test"
				recs := f.config(t, vm, 2, &types.VMConfig{CPU: cpu})
				mq := hv != config.Firecracker && cpu > 1
				for nic, rec := range recs {
					if want := owner.Name(vm, nic, 0); rec.Tap != want {
						t.Errorf("nic %d TAP name = %q, want %q (bt + 8 bytes of the ID + - + index)", nic, rec.Tap, want)
					}
					if rec.NumQueues != 2*cpu || rec.QueueSize != DefaultQueueSize {
						t.Errorf("nic %d record = %+v, want %d queues of %d", nic, *rec, 2*cpu, DefaultQueueSize)
					}
				}
				if recs[0].Mac == recs[1].Mac {
					t.Errorf("both NICs got guest MAC %s, want different ones", recs[0].Mac)
				}
				f.checkNICs(t, vm, recs, mq)
				if err := f.b.Verify(t.Context(), vm); err != nil {
					t.Errorf("Verify(%s) = %v, want nil", vm, err)
				}
				// The TAP opens the way the profile's VMM opens it: one
				// queue file per pair iff multi-queue, vnet_hdr on.
				queues := 1
				if mq {
					queues = cpu
				}
				d, err := tap.Open(recs[0].Tap, &tap.Options{MultiQueue: mq, Queues: queues, VnetHdr: true, NetNS: f.ns})
				if err != nil {
					t.Fatalf("tap.Open(%s, mq=%v, %d queues) as %s would = %v, want nil", recs[0].Tap, mq, queues, hv, err)
				}
				d.Close()
				// The other multi-queue setting is refused by the kernel.
				if d, err := tap.Open(recs[0].Tap, &tap.Options{MultiQueue: !mq, VnetHdr: true, NetNS: f.ns}); err == nil {
					d.Close()
					t.Errorf("tap.Open(%s, mq=%v) = nil error, want EINVAL (the TAP is mq=%v)", recs[0].Tap, !mq, mq)
				}
			})
		}
	}
}

func TestIntegrationConfigQueueSize(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		vmCfg *types.VMConfig
		want  int
		cpu   int
	}{
		{nil, DefaultQueueSize, 1},
		{&types.VMConfig{}, DefaultQueueSize, 1},
		{&types.VMConfig{CPU: 3, QueueSize: 1024}, 1024, 3},
		{&types.VMConfig{CPU: 1, QueueSize: 256}, 256, 1},
		{&types.VMConfig{QueueSize: 32768}, 32768, 1},
	}
	for i, tt := range tests {
		vm := fmt.Sprintf("vm-qsize-%d", i)
		recs := f.config(t, vm, 1, tt.vmCfg)
		if recs[0].QueueSize != tt.want || recs[0].NumQueues != 2*tt.cpu {
			t.Errorf("Config(%s, 1, %+v) = %+v, want queue size %d and %d queues", vm, tt.vmCfg, *recs[0], tt.want, 2*tt.cpu)
		}
		checkTag(t, f.link(t, recs[0].Tap), f.b, vm, 0, 1, recs[0])
	}
}

func TestIntegrationConfigMTU(t *testing.T) {
	tests := []struct {
		desc    string
		prepare func(t *testing.T, f *fixture)
	}{
		// The bridge took 9000 from its only port; a TAP enslaved at 1500
		// would pull it down (br_mtu_auto_adjust).
		{"automatic bridge MTU from a 9000 uplink", func(t *testing.T, f *fixture) {
			f.addVeth(t, "up0", "up1", false, "mtu", "9000")
			f.ip(t, "link", "set", "up1", "mtu", "9000")
			f.ip(t, "link", "set", "up0", "master", testBridge)
		}},
		{"bridge MTU set by the user", func(t *testing.T, f *fixture) {
			f.ip(t, "link", "set", testBridge, "mtu", "9000")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			f := newFixture(t, nil)
			tt.prepare(t, f)
			if got := f.link(t, testBridge).MTU; got != 9000 {
				t.Fatalf("bridge MTU after setup = %d, want 9000", got)
			}
			recs := f.config(t, "vm-mtu", 3, &types.VMConfig{CPU: 2})
			for _, r := range recs {
				if got := f.link(t, r.Tap).MTU; got != 9000 {
					t.Errorf("TAP %s MTU = %d, want the bridge's 9000", r.Tap, got)
				}
			}
			if got := f.link(t, testBridge).MTU; got != 9000 {
				t.Errorf("bridge MTU after Config = %d, want 9000 (it must not drop)", got)
			}
			f.checkNICs(t, "vm-mtu", recs, true)
		})
	}
}

func TestIntegrationConfigPortOptions(t *testing.T) {
	for _, c := range []config.Config{{Isolated: true}, {Locked: true}, {Isolated: true, Locked: true}} {
		t.Run(fmt.Sprintf("isolated=%v,locked=%v", c.Isolated, c.Locked), func(t *testing.T) {
			f := newFixture(t, &c)
			recs := f.config(t, "vm-port", 2, nil)
			f.checkNICs(t, "vm-port", recs, false)
		})
	}
}

func TestIntegrationConfigRecovery(t *testing.T) {
	f := newFixture(t, nil)
	// vm-000002 shares vm-000001's first 8 bytes: its TAP names are hashed
	// candidates, which recovery must keep too.
	ids := []string{"vm-000001", "vm-000002", "vm-other"}
	saved := map[string][]byte{}
	for _, id := range ids {
		recs := f.config(t, id, 3, &types.VMConfig{CPU: 2})
		b, err := json.Marshal(recs)
		if err != nil {
			t.Fatal(err)
		}
		saved[id] = b
	}
	// A reboot: every TAP is gone.
	for _, id := range ids {
		for _, l := range f.taps(t, id) {
			f.ip(t, "link", "del", l.Name)
		}
		f.checkNoTAPs(t, id)
	}
	// Recover in another order than creation: the second VM of the pair
	// first, so its hinted name is free but its plain candidate too.
	for _, id := range []string{"vm-000002", "vm-other", "vm-000001"} {
		var existing []*types.NetworkConfig
		if err := json.Unmarshal(saved[id], &existing); err != nil {
			t.Fatal(err)
		}
		recs := f.config(t, id, 3, &types.VMConfig{CPU: 2}, existing...)
		for i := range recs {
			if *recs[i] != *existing[i] {
				t.Errorf("recovered Config(%s) nic %d = %+v, want %+v", id, i, *recs[i], *existing[i])
			}
		}
		f.checkNICs(t, id, recs, true)
	}

	// Partial records: NIC 0 keeps its MAC, NIC 1 gets a new one.
	for _, l := range f.taps(t, "vm-other") {
		f.ip(t, "link", "del", l.Name)
	}
	var old []*types.NetworkConfig
	json.Unmarshal(saved["vm-other"], &old)
	recs := f.config(t, "vm-other", 2, nil, old[0])
	if recs[0].Mac != old[0].Mac || recs[0].Tap != old[0].Tap {
		t.Errorf("Config(vm-other, 2, existing[0]) nic 0 = %+v, want MAC %s on %s", *recs[0], old[0].Mac, old[0].Tap)
	}
	if recs[1].Mac == recs[0].Mac {
		t.Errorf("Config(vm-other, 2, existing[0]) gave nic 1 nic 0's MAC %s", recs[1].Mac)
	}

	// Recovery onto TAPs that still exist (no reboot) changes a NIC's MAC
	// when the record says so, and moves the FDB entry.
	moved := *recs[1]
	moved.Mac = "02:aa:bb:cc:dd:ee"
	got := f.config(t, "vm-other", 2, nil, recs[0], &moved)
	if *got[1] != moved {
		t.Errorf("Config(vm-other) with a new MAC for nic 1 = %+v, want %+v", *got[1], moved)
	}
	if e := f.fdbFor(t, recs[1].Mac); len(e) != 0 {
		t.Errorf("FDB still has the old MAC %s: %+v", recs[1].Mac, e)
	}
	f.checkNICs(t, "vm-other", got, false)
}

func TestIntegrationConfigSharedPrefix(t *testing.T) {
	f := newFixture(t, &config.Config{SyncDelete: true})
	a := f.config(t, "vm-000001", 2, nil)
	b := f.config(t, "vm-000002", 2, nil)
	for nic := range 2 {
		if want := owner.Name("vm-000001", nic, 0); a[nic].Tap != want {
			t.Errorf("vm-000001 nic %d TAP = %s, want %s", nic, a[nic].Tap, want)
		}
		// Deterministic: the first hashed candidate.
		if want := owner.Name("vm-000002", nic, 1); b[nic].Tap != want {
			t.Errorf("vm-000002 nic %d TAP = %s, want %s", nic, b[nic].Tap, want)
		}
	}
	f.checkNICs(t, "vm-000001", a, false)
	f.checkNICs(t, "vm-000002", b, false)
	for _, id := range []string{"vm-000001", "vm-000002"} {
		if err := f.b.Verify(t.Context(), id); err != nil {
			t.Errorf("Verify(%s) = %v, want nil", id, err)
		}
	}
	n, err := f.b.Inspect(t.Context(), "vm-000002")
	if err != nil {
		t.Fatalf("Inspect(vm-000002) = %v", err)
	}
	if len(n.NICs) != 2 || *n.NICs[0] != *b[0] || *n.NICs[1] != *b[1] {
		t.Errorf("Inspect(vm-000002) NICs = %v, want %v", n.NICs, b)
	}
	// Config of the first again is idempotent and does not take over the
	// second's TAPs.
	if again := f.config(t, "vm-000001", 2, nil); *again[0] != *a[0] || *again[1] != *a[1] {
		t.Errorf("Config(vm-000001) again = %v, want %v", again, a)
	}
	if got, err := f.b.Delete(t.Context(), []string{"vm-000001"}); err != nil || !slices.Equal(got, []string{"vm-000001"}) {
		t.Fatalf("Delete(vm-000001) = %v, %v; want [vm-000001], nil", got, err)
	}
	f.checkNoTAPs(t, "vm-000001")
	f.checkNICs(t, "vm-000002", b, false)
	if err := f.b.Verify(t.Context(), "vm-000002"); err != nil {
		t.Errorf("Verify(vm-000002) after deleting vm-000001 = %v, want nil", err)
	}
	errIs(t, "Verify(vm-000001) after its Delete", f.b.Verify(t.Context(), "vm-000001"), network.ErrNotFound)
	// vm-000001 comes back: its plain name is free again.
	a2 := f.config(t, "vm-000001", 1, nil)
	if a2[0].Tap != owner.Name("vm-000001", 0, 0) {
		t.Errorf("vm-000001 re-made on %s, want %s", a2[0].Tap, owner.Name("vm-000001", 0, 0))
	}
}

// foreignState is what must not change on a device Config did not make.
func foreignState(l *testutil.IPLink) string {
	c := *l
	c.OperState = "" // may follow the carrier of a veth peer
	// Bridge and bridge-port timers tick.
	c.LinkInfo.Data = withoutTimers(c.LinkInfo.Data)
	c.LinkInfo.SlaveData = withoutTimers(c.LinkInfo.SlaveData)
	b, _ := json.Marshal(c)
	return string(b)
}

func withoutTimers(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := maps.Clone(m)
	maps.DeleteFunc(c, func(k string, _ any) bool { return strings.HasSuffix(k, "_timer") })
	return c
}

func TestIntegrationConfigForeignDevices(t *testing.T) {
	const vm = "vm-foreign"
	cand0 := owner.Name(vm, 0, 0)
	t.Run("foreign TAP or veth holds candidate 0", func(t *testing.T) {
		for _, kind := range []string{"tap", "veth"} {
			t.Run(kind, func(t *testing.T) {
				f := newFixture(t, nil)
				if kind == "tap" {
					f.addForeignTAP(t, cand0)
				} else {
					f.addVeth(t, cand0, "peer0", false)
				}
				f.ip(t, "link", "set", cand0, "up")
				before := foreignState(f.link(t, cand0))
				recs := f.config(t, vm, 1, &types.VMConfig{CPU: 2})
				if want := owner.Name(vm, 0, 1); recs[0].Tap != want {
					t.Errorf("Config(%s) TAP = %s, want the next candidate %s", vm, recs[0].Tap, want)
				}
				if after := foreignState(f.link(t, cand0)); after != before {
					t.Errorf("foreign %s %s changed:\n got %s\nwant %s", kind, cand0, after, before)
				}
				f.checkNICs(t, vm, recs, true)
				// Idempotent, and Delete leaves the foreign device alone.
				if again := f.config(t, vm, 1, &types.VMConfig{CPU: 2}); *again[0] != *recs[0] {
					t.Errorf("Config(%s) again = %+v, want %+v", vm, *again[0], *recs[0])
				}
				if _, err := f.b.Delete(t.Context(), []string{vm}); err != nil {
					t.Fatalf("Delete(%s) = %v", vm, err)
				}
				if after := foreignState(f.link(t, cand0)); after != before {
					t.Errorf("foreign %s %s changed by Delete:\n got %s\nwant %s", kind, cand0, after, before)
				}
			})
		}
	})
	t.Run("foreign device holds the alternative name", func(t *testing.T) {
		f := newFixture(t, nil)
		f.addVeth(t, "squat0", "squat1", false)
		alt := owner.AltName(f.b.inst, vm, 1)
		f.ip(t, "link", "property", "add", "dev", "squat0", "altname", alt)
		before := f.links(t)
		fds := testutil.FDCountBusy(t)
		_, err := f.b.Config(t.Context(), vm, 2, nil)
		errIs(t, "Config with nic 1's alternative name held by squat0", err, ErrNameCollision)
		if err != nil && !strings.Contains(err.Error(), "squat0") {
			t.Errorf("Config error %q does not name the device squat0 holding the name", err)
		}
		f.checkLinks(t, slices.Collect(mapKeys(before)))
		if got, want := foreignState(f.link(t, "squat0")), foreignState(before["squat0"]); got != want {
			t.Errorf("squat0 changed:\n got %s\nwant %s", got, want)
		}
		checkFDs(t, fds, "Config with a collision")
	})
	t.Run("another instance's TAP holds the alternative name", func(t *testing.T) {
		// Only possible if instance identities collided; simulated by
		// retagging a TAP of another instance with our alternative name.
		f := newFixture(t, nil)
		other := f.newBridge(t, nil)
		recs := mustConfig(t, other, vm, 1, nil)
		f.ip(t, "link", "property", "add", "dev", recs[0].Tap, "altname", owner.AltName(f.b.inst, vm, 0))
		_, err := f.b.Config(t.Context(), vm, 1, nil)
		errIs(t, "Config with nic 0's alternative name held by another instance's TAP", err, ErrNameCollision)
		if err := other.Verify(t.Context(), vm); err != nil {
			t.Errorf("other instance's Verify(%s) = %v, want nil", vm, err)
		}
	})
	t.Run("every candidate taken", func(t *testing.T) {
		f := newFixture(t, nil)
		for k := range owner.Candidates {
			if k%2 == 0 {
				f.addForeignTAP(t, owner.Name(vm, 0, k))
			} else {
				f.addVeth(t, owner.Name(vm, 0, k), fmt.Sprintf("peer%d", k), false)
			}
		}
		before := f.links(t)
		fds := testutil.FDCountBusy(t)
		_, err := f.b.Config(t.Context(), vm, 1, nil)
		errIs(t, "Config with every candidate name taken", err, ErrNameCollision)
		if err != nil && !strings.Contains(err.Error(), cand0) {
			t.Errorf("Config error %q does not list the names tried", err)
		}
		after := f.links(t)
		if len(after) != len(before) {
			t.Errorf("links after = %v, want %v", slices.Sorted(mapKeys(after)), slices.Sorted(mapKeys(before)))
		}
		for name, l := range before {
			if a := after[name]; a == nil || foreignState(a) != foreignState(l) {
				t.Errorf("device %s changed or vanished", name)
			}
		}
		checkFDs(t, fds, "Config with every name taken")
	})
}

// linkIndexes maps every link name of the namespace to its ifindex.
func (f *fixture) linkIndexes(t *testing.T) map[string]int {
	t.Helper()
	m := map[string]int{}
	for n, l := range f.links(t) {
		m[n] = l.Index
	}
	return m
}

func TestIntegrationConfigIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	const vm = "vm-idem"
	first := f.config(t, vm, 3, &types.VMConfig{CPU: 2})
	links := f.linkIndexes(t)
	fdb := f.fdb(t)
	second := f.config(t, vm, 3, &types.VMConfig{CPU: 2})
	for i := range first {
		if *first[i] != *second[i] {
			t.Errorf("second Config nic %d = %+v, want %+v", i, *second[i], *first[i])
		}
	}
	if got := f.linkIndexes(t); !maps.Equal(got, links) {
		t.Errorf("links after a second Config = %v, want the same devices %v", got, links)
	}
	if got := f.fdb(t); !reflect.DeepEqual(got, fdb) {
		t.Errorf("FDB after a second Config = %+v, want %+v", got, fdb)
	}
	f.checkNICs(t, vm, second, true)

	// More vCPUs with the same multi-queue setting: same TAPs, new tag.
	third := f.config(t, vm, 3, &types.VMConfig{CPU: 4})
	for i := range third {
		if third[i].Tap != first[i].Tap || third[i].Mac != first[i].Mac || third[i].NumQueues != 8 {
			t.Errorf("Config with 4 CPUs nic %d = %+v, want %s, %s, 8 queues", i, *third[i], first[i].Tap, first[i].Mac)
		}
	}
	if got := f.linkIndexes(t); !maps.Equal(got, links) {
		t.Errorf("links after Config with more CPUs = %v, want %v", got, links)
	}
	f.checkNICs(t, vm, third, true)

	// Fewer NICs: the extra TAP goes.
	fewer := f.config(t, vm, 2, &types.VMConfig{CPU: 4})
	if _, ok := f.links(t)[first[2].Tap]; ok {
		t.Errorf("Config with 2 NICs left nic 2's TAP %s", first[2].Tap)
	}
	f.checkNICs(t, vm, fewer, true)
	if err := f.b.Verify(t.Context(), vm); err != nil {
		t.Errorf("Verify after shrinking = %v, want nil", err)
	}

	// One vCPU: the TAPs must become single-queue, so they are replaced
	// under the same names.
	single := f.config(t, vm, 2, &types.VMConfig{CPU: 1})
	for i := range single {
		if single[i].Tap != first[i].Tap || single[i].Mac != first[i].Mac {
			t.Errorf("Config with 1 CPU nic %d = %+v, want %s, %s", i, *single[i], first[i].Tap, first[i].Mac)
		}
	}
	f.checkNICs(t, vm, single, false)
}

func TestIntegrationConfigRepairs(t *testing.T) {
	tests := []struct {
		desc   string
		break_ func(t *testing.T, f *fixture, rec *types.NetworkConfig)
		verify string // what Verify reports before the repair; "" if it cannot see it
	}{
		{"port detached", func(t *testing.T, f *fixture, r *types.NetworkConfig) {
			f.ip(t, "link", "set", r.Tap, "nomaster")
		}, "not a port of br0 (master: none)"},
		{"MAC rewritten", func(t *testing.T, f *fixture, r *types.NetworkConfig) {
			f.ip(t, "link", "set", r.Tap, "address", "02:00:00:00:00:01")
		}, "MAC 02:00:00:00:00:01, want fe:"},
		{"set down", func(t *testing.T, f *fixture, r *types.NetworkConfig) {
			f.ip(t, "link", "set", r.Tap, "down")
		}, "down"},
		{"learning turned on", func(t *testing.T, f *fixture, r *types.NetworkConfig) {
			f.run(t, "bridge", "link", "set", "dev", r.Tap, "learning", "on")
		}, "learning is on"},
		{"FDB entry deleted", func(t *testing.T, f *fixture, r *types.NetworkConfig) {
			f.run(t, "bridge", "fdb", "del", r.Mac, "dev", r.Tap, "master")
		}, ""},
		{"everything at once", func(t *testing.T, f *fixture, r *types.NetworkConfig) {
			f.run(t, "bridge", "fdb", "del", r.Mac, "dev", r.Tap, "master")
			f.run(t, "bridge", "link", "set", "dev", r.Tap, "learning", "on")
			f.ip(t, "link", "set", r.Tap, "nomaster")
			f.ip(t, "link", "set", r.Tap, "down", "address", "02:00:00:00:00:01")
		}, "not a port of br0"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			f := newFixture(t, nil)
			const vm = "vm-repair"
			recs := f.config(t, vm, 2, &types.VMConfig{CPU: 2})
			links := f.linkIndexes(t)
			tt.break_(t, f, recs[1])
			err := f.b.Verify(t.Context(), vm)
			if tt.verify != "" {
				errIs(t, "Verify after "+tt.desc, err, ErrMismatch)
				if err != nil && !strings.Contains(err.Error(), "nic 1 ("+recs[1].Tap+"): "+tt.verify) {
					t.Errorf("Verify after %s = %q, want it to say %q for nic 1", tt.desc, err, tt.verify)
				}
				if err != nil && strings.Contains(err.Error(), "nic 0") {
					t.Errorf("Verify after %s = %q, want nothing about the intact nic 0", tt.desc, err)
				}
			}
			got := f.config(t, vm, 2, &types.VMConfig{CPU: 2})
			for i := range got {
				if *got[i] != *recs[i] {
					t.Errorf("repairing Config nic %d = %+v, want %+v", i, *got[i], *recs[i])
				}
			}
			if after := f.linkIndexes(t); !maps.Equal(after, links) {
				t.Errorf("links after the repair = %v, want the same devices %v", after, links)
			}
			f.checkNICs(t, vm, got, true)
			if err := f.b.Verify(t.Context(), vm); err != nil {
				t.Errorf("Verify after the repair = %v, want nil", err)
			}
		})
	}
}

func TestIntegrationConfigRollback(t *testing.T) {
	f := newFixture(t, nil)
	f.addVeth(t, "up0", "up1", true)
	const vm = "vm-rollback"
	// A VM that exists must not be touched by another's failure.
	keep := f.config(t, "vm-keep", 1, nil)
	// Every candidate of NIC 2 is a foreign device.
	var foreign []string
	for k := range owner.Candidates {
		name := owner.Name(vm, 2, k)
		foreign = append(foreign, name)
		if k%2 == 0 {
			f.addForeignTAP(t, name)
		} else {
			f.addVeth(t, name, fmt.Sprintf("fpeer%d", k), false)
		}
	}
	before := f.links(t)
	fdb := f.fdb(t)
	fds := testutil.FDCountBusy(t)
	for _, cpu := range []int{1, 2} {
		_, err := f.b.Config(t.Context(), vm, 4, &types.VMConfig{CPU: cpu})
		errIs(t, fmt.Sprintf("Config(%s, 4 NICs, cpu %d) with nic 2's names taken", vm, cpu), err, ErrNameCollision)
		if err != nil && !strings.Contains(err.Error(), "nic 2") {
			t.Errorf("Config error %q does not name nic 2", err)
		}
		f.checkNoTAPs(t, vm)
		after := f.links(t)
		if got, want := slices.Sorted(mapKeys(after)), slices.Sorted(mapKeys(before)); !slices.Equal(got, want) {
			t.Errorf("links after the failed Config = %v, want %v", got, want)
		}
		for _, name := range foreign {
			if a, b := foreignState(after[name]), foreignState(before[name]); a != b {
				t.Errorf("foreign %s changed:\n got %s\nwant %s", name, a, b)
			}
		}
		if got := f.fdb(t); !reflect.DeepEqual(got, fdb) {
			t.Errorf("FDB after the failed Config = %+v, want %+v", got, fdb)
		}
		checkFDs(t, fds, "failed Config")
	}
	f.checkNICs(t, "vm-keep", keep, false)
}

func TestIntegrationConfigBadInput(t *testing.T) {
	f := newFixture(t, nil)
	good := func(mac string) *types.NetworkConfig { return &types.NetworkConfig{Mac: mac} }
	tests := []struct {
		desc     string
		vmID     string
		nics     int
		vmCfg    *types.VMConfig
		existing []*types.NetworkConfig
		want     error
	}{
		{desc: "empty VM ID", vmID: "", nics: 1},
		{desc: "200-byte VM ID", vmID: strings.Repeat("a", 200), nics: 1},
		{desc: "65-byte VM ID", vmID: strings.Repeat("a", owner.MaxVMIDLen+1), nics: 1},
		{desc: "unicode VM ID", vmID: "vm-é", nics: 1},
		{desc: "VM ID with slash", vmID: "vm/1", nics: 1},
		{desc: "VM ID with percent", vmID: "vm%d", nics: 1},
		{desc: "VM ID with colon", vmID: "vm:1", nics: 1},
		{desc: "VM ID with space", vmID: "vm 1", nics: 1},
		{desc: "VM ID with newline", vmID: "vm\n1", nics: 1},
		{desc: "VM ID ..", vmID: "..", nics: 1},
		{desc: "VM ID .", vmID: ".", nics: 1},
		{desc: "VM ID with NUL", vmID: "vm\x001", nics: 1},
		{desc: "0 NICs", vmID: "vm-1", nics: 0},
		{desc: "-1 NICs", vmID: "vm-1", nics: -1},
		{desc: "17 NICs", vmID: "vm-1", nics: owner.MaxNICs + 1},
		{desc: "CPU -1", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{CPU: -1}},
		{desc: "CPU 257", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{CPU: tap.MaxQueues + 1}},
		{desc: "CPU 1<<20", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{CPU: 1 << 20}},
		{desc: "CPU MaxInt", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{CPU: math.MaxInt}},
		{desc: "CPU MinInt", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{CPU: math.MinInt}},
		{desc: "NICs MaxInt", vmID: "vm-1", nics: math.MaxInt},
		{desc: "queue size 3", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{QueueSize: 3}},
		{desc: "queue size -1", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{QueueSize: -1}},
		{desc: "queue size 65536", vmID: "vm-1", nics: 1, vmCfg: &types.VMConfig{QueueSize: 65536}},
		{desc: "multicast MAC", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("01:00:5e:00:00:01")}},
		{desc: "broadcast MAC", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("ff:ff:ff:ff:ff:ff")}},
		{desc: "5-byte MAC", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("02:00:00:00:01")}},
		{desc: "8-byte MAC", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("02:00:00:00:00:00:00:01")}},
		{desc: "MAC zz", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("zz")}},
		{desc: "empty MAC", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("")}},
		{desc: "host-side MAC prefix", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("fe:00:00:00:00:01")}},
		{desc: "all-zero MAC", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("00:00:00:00:00:00")}},
		{desc: "wrong bridge_dev", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", BridgeDev: "br1"}}},
		{desc: "bridge_dev in other case", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", BridgeDev: "BR0"}}},
		{desc: "bridge_dev too long", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", BridgeDev: testBridge + "0123456789abcdef"}}},
		{desc: "wrong bridge_dev on the second record", vmID: "vm-1", nics: 2, existing: []*types.NetworkConfig{
			{Mac: "02:00:00:00:00:01", BridgeDev: testBridge}, {Mac: "02:00:00:00:00:02", BridgeDev: "br1"}}},
		{desc: "wrong backend", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", Backend: "cni"}}},
		{desc: "bad TAP name", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", Tap: "tap%d"}}},
		{desc: "duplicate MACs", vmID: "vm-1", nics: 2, existing: []*types.NetworkConfig{good("02:00:00:00:00:01"), good("02:00:00:00:00:01")}},
		{desc: "duplicate MACs in other case", vmID: "vm-1", nics: 2, existing: []*types.NetworkConfig{good("02:00:00:00:00:0a"), good("02:00:00:00:00:0A")}},
		{desc: "the same record twice", vmID: "vm-1", nics: 2, existing: func() []*types.NetworkConfig {
			r := &types.NetworkConfig{Mac: "02:00:00:00:00:01", Tap: owner.Name("vm-1", 0, 0), BridgeDev: testBridge, Backend: Backend}
			return []*types.NetworkConfig{r, r}
		}()},
		{desc: "duplicate TAP names", vmID: "vm-1", nics: 2, existing: []*types.NetworkConfig{
			{Mac: "02:00:00:00:00:01", Tap: owner.Name("vm-1", 0, 0)}, {Mac: "02:00:00:00:00:02", Tap: owner.Name("vm-1", 0, 0)}}},
		{desc: "more records than NICs", vmID: "vm-1", nics: 1, existing: []*types.NetworkConfig{good("02:00:00:00:00:01"), good("02:00:00:00:00:02")}},
		{desc: "nil record", vmID: "vm-1", nics: 2, existing: []*types.NetworkConfig{good("02:00:00:00:00:01"), nil}},
	}
	before := f.links(t)
	fds := testutil.FDCountBusy(t)
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			call := fmt.Sprintf("Config(%q, %d, %+v, %d records)", tt.vmID, tt.nics, tt.vmCfg, len(tt.existing))
			recs, err := f.b.Config(t.Context(), tt.vmID, tt.nics, tt.vmCfg, tt.existing...)
			if recs != nil {
				t.Errorf("%s = %v, want no records", call, recs)
			}
			errIs(t, call, err, ErrInvalidArgument)
			// Handoff validates the same way.
			h, err := f.b.ConfigHandoff(t.Context(), tt.vmID, tt.nics, tt.vmCfg, tt.existing...)
			if h != nil {
				t.Errorf("ConfigHandoff%s = %v, want nothing", strings.TrimPrefix(call, "Config"), h)
			}
			errIs(t, "ConfigHandoff"+strings.TrimPrefix(call, "Config"), err, ErrInvalidArgument)
		})
	}
	f.checkLinks(t, slices.Collect(mapKeys(before)))
	checkFDs(t, fds, "Config with bad input")
}

// TestIntegrationConfigDuplicateMAC recovers a VM with a MAC that another
// VM's NIC already has on the bridge: Config must refuse rather than steal
// the other port's FDB entry, and say why.
func TestIntegrationConfigDuplicateMAC(t *testing.T) {
	f := newFixture(t, nil)
	a := f.config(t, "vm-a", 1, nil)
	before := f.links(t)
	_, err := f.b.Config(t.Context(), "vm-b", 1, nil, &types.NetworkConfig{Mac: a[0].Mac})
	errIs(t, "Config(vm-b) with vm-a's MAC", err, ErrInvalidArgument)
	if err != nil && !strings.Contains(err.Error(), a[0].Mac) {
		t.Errorf("Config(vm-b) with vm-a's MAC = %q, want the message to name the MAC", err)
	}
	f.checkNoTAPs(t, "vm-b")
	f.checkLinks(t, slices.Collect(mapKeys(before)))
	f.checkStaticFDB(t, a[0].Mac, a[0].Tap)

	// The same onto vm-b's existing TAP, whose MAC the record changes.
	b := f.config(t, "vm-b", 1, nil)
	_, err = f.b.Config(t.Context(), "vm-b", 1, nil, &types.NetworkConfig{Mac: a[0].Mac})
	errIs(t, "Config(vm-b) changing its MAC to vm-a's", err, ErrInvalidArgument)
	f.checkStaticFDB(t, a[0].Mac, a[0].Tap)
	// vm-b is as it was before the failed call.
	f.checkNICs(t, "vm-b", b, false)
	if err := f.b.Verify(t.Context(), "vm-b"); err != nil {
		t.Errorf("Verify(vm-b) after the failed Config = %v, want nil", err)
	}
	// A Config with vm-b's own record repairs whatever the failed one did.
	got := f.config(t, "vm-b", 1, nil, b...)
	if *got[0] != *b[0] {
		t.Errorf("Config(vm-b) with its own record = %+v, want %+v", *got[0], *b[0])
	}
	f.checkNICs(t, "vm-a", a, false)
	f.checkNICs(t, "vm-b", b, false)
}

// fillBridge makes n persistent single-queue TAPs in f's namespace and
// enslaves them to testBridge with one batch.
func (f *fixture) fillBridge(t *testing.T, n int) {
	t.Helper()
	conn, err := rtnl.Dial(&rtnl.Config{NetNS: f.ns})
	if err != nil {
		t.Fatalf("rtnl.Dial = %v", err)
	}
	defer conn.Close()
	br, err := conn.LinkByName(t.Context(), testBridge)
	if err != nil {
		t.Fatal(err)
	}
	var batch rtnl.Batch
	for i := range n {
		name := fmt.Sprintf("fill%d", i)
		d, err := tap.Create(name, &tap.Options{Persist: true, NetNS: f.ns})
		if err != nil {
			t.Fatalf("tap.Create(%s) = %v", name, err)
		}
		d.Close()
		idx, err := conn.IndexByName(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		batch.SetLink(&rtnl.LinkChange{Index: idx, Master: &br.Index})
	}
	if _, err := conn.Exec(t.Context(), &batch); err != nil {
		t.Fatalf("enslave %d TAPs: %v", n, err)
	}
}

func TestIntegrationConfigBridgeFull(t *testing.T) {
	f := newFixture(t, nil)
	f.fillBridge(t, MaxPorts-1)
	if got := len(f.ports(t)); got != MaxPorts-1 {
		t.Fatalf("bridge has %d ports, want %d", got, MaxPorts-1)
	}
	before := f.links(t)
	fds := testutil.FDCountBusy(t)
	// Two NICs, one free port: NIC 0 would fit, NIC 1 not; both go.
	_, err := f.b.Config(t.Context(), "vm-full", 2, &types.VMConfig{CPU: 2})
	errIs(t, "Config(vm-full, 2 NICs) with one free port", err, ErrBridgeFull)
	f.checkNoTAPs(t, "vm-full")
	if got := len(f.links(t)); got != len(before) {
		t.Errorf("%d links after the failed Config, want %d", got, len(before))
	}
	checkFDs(t, fds, "Config on a full bridge")
	// One NIC takes the last port.
	recs := f.config(t, "vm-last", 1, &types.VMConfig{CPU: 2})
	f.checkNICs(t, "vm-last", recs, true)
	// Now the bridge is full.
	_, err = f.b.Config(t.Context(), "vm-full", 1, nil)
	errIs(t, "Config(vm-full, 1 NIC) on a full bridge", err, ErrBridgeFull)
	f.checkNoTAPs(t, "vm-full")
	if got := len(f.ports(t)); got != MaxPorts {
		t.Errorf("bridge has %d ports, want %d", got, MaxPorts)
	}
	// Idempotent Config of a VM on a full bridge still works.
	if again := f.config(t, "vm-last", 1, &types.VMConfig{CPU: 2}); *again[0] != *recs[0] {
		t.Errorf("Config(vm-last) again on a full bridge = %+v, want %+v", *again[0], *recs[0])
	}
	checkFDs(t, fds, "Config on a full bridge")
}

func TestIntegrationConfigHandoff(t *testing.T) {
	for _, hv := range []string{config.CloudHypervisor, config.QEMU, config.Firecracker} {
		for _, cpu := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("%s/cpu%d", hv, cpu), func(t *testing.T) {
				f := newFixture(t, &config.Config{Hypervisor: hv})
				const vm = "vm-handoff"
				mq := hv != config.Firecracker && cpu > 1
				fds := testutil.FDCountBusy(t)
				hs, err := f.b.ConfigHandoff(t.Context(), vm, 2, &types.VMConfig{CPU: cpu})
				if err != nil {
					t.Fatalf("ConfigHandoff(%s, 2, cpu %d) = %v", vm, cpu, err)
				}
				files := 1
				if mq {
					files = cpu
				}
				closed := false
				closeAll := func() {
					if closed {
						return
					}
					closed = true
					for _, h := range hs {
						for _, q := range h.Queues {
							if err := q.Close(); err != nil {
								t.Errorf("close queue file of %s: %v", h.Config.Tap, err)
							}
						}
					}
				}
				t.Cleanup(closeAll)
				if got := testutil.FDCountBusy(t) - fds; got != 2*files {
					t.Errorf("ConfigHandoff opened %d fds, want %d (one per queue pair per NIC)", got, 2*files)
				}
				links := f.links(t)
				for nic, h := range hs {
					c := h.Config
					if c.Tap != owner.Name(vm, nic, 0) || c.NumQueues != 2*cpu || c.QueueSize != DefaultQueueSize {
						t.Errorf("handoff nic %d record = %+v", nic, *c)
					}
					if len(h.Queues) != files {
						t.Errorf("handoff nic %d: %d queue files, want %d", nic, len(h.Queues), files)
					}
					l := links[c.Tap]
					if l == nil {
						t.Fatalf("TAP %s not in the namespace", c.Tap)
					}
					if tunFlag(t, l, "persist") || tunFlag(t, l, "multi_queue") != mq || !tunFlag(t, l, "vnet_hdr") {
						t.Errorf("ip -d link show %s: info_data %v, want persist off, multi_queue %v, vnet_hdr on", c.Tap, tunData(t, l), mq)
					}
					if mq && numQueues(t, l) != files {
						t.Errorf("ip -d link show %s: numqueues %d, want %d", c.Tap, numQueues(t, l), files)
					}
					checkTag(t, l, f.b, vm, nic, 2, c)
					if l.Master != testBridge || !l.HasFlag("UP") || l.AddrGen != "none" {
						t.Errorf("ip link show %s: master %q flags %v addrgenmode %q, want %s, UP, none", c.Tap, l.Master, l.Flags, l.AddrGen, testBridge)
					}
					f.checkStaticFDB(t, c.Mac, c.Tap)
				}
				if err := f.b.Verify(t.Context(), vm); err != nil {
					t.Errorf("Verify(%s) while the VMM holds the files = %v, want nil", vm, err)
				}
				// Closing the files, as a VMM's exit does, destroys the TAPs.
				closeAll()
				f.checkNoTAPs(t, vm)
				f.checkLinks(t, []string{"lo", testBridge})
				if e := f.fdb(t); len(e) != 0 {
					t.Errorf("FDB after the TAPs went = %+v, want empty", e)
				}
				checkFDs(t, fds, "ConfigHandoff and closing its files")
			})
		}
	}
}

// TestIntegrationConfigHandoffReplaces makes a persistent TAP for a VM and
// then hands it off: the persistent TAP, which nothing holds, is replaced.
func TestIntegrationConfigHandoffReplaces(t *testing.T) {
	f := newFixture(t, nil)
	const vm = "vm-replace"
	recs := f.config(t, vm, 1, &types.VMConfig{CPU: 2})
	hs, err := f.b.ConfigHandoff(t.Context(), vm, 1, &types.VMConfig{CPU: 2}, recs...)
	if err != nil {
		t.Fatalf("ConfigHandoff(%s) over its persistent TAP = %v", vm, err)
	}
	if *hs[0].Config != *recs[0] {
		t.Errorf("ConfigHandoff record = %+v, want %+v", *hs[0].Config, *recs[0])
	}
	if tunFlag(t, f.link(t, recs[0].Tap), "persist") {
		t.Errorf("TAP %s still persistent after ConfigHandoff", recs[0].Tap)
	}
	// A persistent Config cannot take the TAP while the VMM holds it.
	if _, err := f.b.Config(t.Context(), vm, 1, &types.VMConfig{CPU: 2}); err == nil {
		t.Errorf("Config(%s) while its handed-off TAP is open = nil error, want one", vm)
	}
	for _, q := range hs[0].Queues {
		q.Close()
	}
	f.checkNoTAPs(t, vm)
}

// TestIntegrationConfigInUse changes a running VM's profile: its TAP must
// be replaced (other multi-queue flag), but a VMM holds it open, so Config
// refuses and leaves it alone. Single-queue TAPs matter most here: the
// kernel reports no queue count for them.
func TestIntegrationConfigInUse(t *testing.T) {
	for _, mq := range []bool{false, true} {
		t.Run(fmt.Sprintf("held TAP multi-queue=%v", mq), func(t *testing.T) {
			made, wanted := config.Firecracker, config.QEMU
			if mq {
				made, wanted = wanted, made
			}
			f := newFixture(t, &config.Config{Hypervisor: made})
			by := f.newBridge(t, &config.Config{RootDir: f.dir, Hypervisor: wanted})
			const vm = "vm-running"
			recs := f.config(t, vm, 1, &types.VMConfig{CPU: 2})
			d, err := tap.Open(recs[0].Tap, &tap.Options{MultiQueue: mq, VnetHdr: true, NetNS: f.ns})
			if err != nil {
				t.Fatalf("tap.Open(%s) = %v", recs[0].Tap, err)
			}
			defer d.Close()
			index := f.link(t, recs[0].Tap).Index
			_, err = by.Config(t.Context(), vm, 1, &types.VMConfig{CPU: 2})
			if err == nil || !strings.Contains(err.Error(), "is open") {
				t.Errorf("%s Config(%s) of a TAP %s holds open = %v, want an error saying it is open", wanted, vm, made, err)
			}
			if l := f.links(t)[recs[0].Tap]; l == nil || l.Index != index {
				t.Fatalf("TAP %s replaced or deleted while a VMM holds it", recs[0].Tap)
			}
			n, err := f.b.Inspect(t.Context(), vm)
			if err != nil || n.Links[0].AttachedQueues != 1 {
				t.Errorf("Inspect(%s) = %+v, %v; want 1 attached queue", vm, n, err)
			}
			if mq {
				return
			}
			// Down, a single-queue TAP still reports its carrier
			// (IFLA_CARRIER): Config still sees that it is held.
			f.ip(t, "link", "set", recs[0].Tap, "down")
			_, err = by.Config(t.Context(), vm, 1, &types.VMConfig{CPU: 2})
			if err == nil || !strings.Contains(err.Error(), "is open") {
				t.Errorf("%s Config(%s) of a down single-queue TAP held open = %v, want an error saying it is open", wanted, vm, err)
			}
			if l := f.links(t)[recs[0].Tap]; l == nil || l.Index != index {
				t.Fatalf("down TAP %s replaced or deleted while a VMM may hold it", recs[0].Tap)
			}
			// Released and up again: replaced, keeping name and MAC.
			d.Close()
			f.ip(t, "link", "set", recs[0].Tap, "up")
			got := mustConfig(t, by, vm, 1, &types.VMConfig{CPU: 2})
			if *got[0] != *recs[0] {
				t.Errorf("%s Config(%s) of the released TAP = %+v, want %+v", wanted, vm, *got[0], *recs[0])
			}
			if err := by.Verify(t.Context(), vm); err != nil {
				t.Errorf("%s Verify(%s) = %v, want nil", wanted, vm, err)
			}
		})
	}
}

// injectOnNIC makes b's createTAP call fn instead of tap.Create for the
// names of NIC nic (of any VM); other NICs are created normally.
func injectOnNIC(t *testing.T, b *Bridge, nic int, fn func(name string, o *tap.Options) (*tap.Device, error)) {
	t.Helper()
	suffix := fmt.Sprintf("-%d", nic)
	b.createTAP = func(name string, o *tap.Options) (*tap.Device, error) {
		if strings.HasSuffix(name, suffix) {
			return fn(name, o)
		}
		return tap.Create(name, o)
	}
	t.Cleanup(func() { b.createTAP = tap.Create })
}

// TestIntegrationConfigRollbackInjected fails one NIC of a VM at the
// create and at the setup step, through the createTAP hook, and checks that
// every TAP this Config made is gone and nothing else changed.
func TestIntegrationConfigRollbackInjected(t *testing.T) {
	const vm = "vm-inject"
	t.Run("create fails on NIC 2 of 4", func(t *testing.T) {
		f := newFixture(t, nil)
		injectOnNIC(t, f.b, 2, func(name string, o *tap.Options) (*tap.Device, error) {
			return nil, fmt.Errorf("tap %s: injected: %w", name, unix.ENOSPC)
		})
		before := f.linkNames(t)
		fds := testutil.FDCountBusy(t)
		_, err := f.b.Config(t.Context(), vm, 4, &types.VMConfig{CPU: 2})
		errIs(t, "Config with NIC 2's create failing", err, unix.ENOSPC)
		f.checkNoTAPs(t, vm)
		f.checkLinks(t, before)
		if e := f.fdb(t); len(e) != 0 {
			t.Errorf("FDB after the failed Config = %+v, want empty", e)
		}
		checkFDs(t, fds, "failed Config")
	})
	t.Run("alternative name taken between probe and setup on NIC 3 of 4", func(t *testing.T) {
		f := newFixture(t, nil)
		f.addVeth(t, "racer0", "racer1", false)
		injectOnNIC(t, f.b, 3, func(name string, o *tap.Options) (*tap.Device, error) {
			// Someone takes the name after Config looked it up.
			f.ip(t, "link", "property", "add", "dev", "racer0", "altname", owner.AltName(f.b.inst, vm, 3))
			return tap.Create(name, o)
		})
		before := f.links(t)
		fds := testutil.FDCountBusy(t)
		_, err := f.b.Config(t.Context(), vm, 4, &types.VMConfig{CPU: 2})
		errIs(t, "Config with NIC 3's alternative name taken", err, ErrNameCollision, unix.EEXIST)
		f.checkNoTAPs(t, vm)
		f.checkLinks(t, slices.Collect(mapKeys(before)))
		if got, want := foreignState(f.link(t, "racer0")), foreignState(before["racer0"]); got == want {
			t.Errorf("racer0 unchanged, but the hook gave it an alternative name: test broken")
		}
		if e := f.fdb(t); len(e) != 0 {
			t.Errorf("FDB after the failed Config = %+v, want empty", e)
		}
		checkFDs(t, fds, "failed Config")
	})
	t.Run("growing a VM fails on the new NIC", func(t *testing.T) {
		f := newFixture(t, nil)
		recs := f.config(t, vm, 1, &types.VMConfig{CPU: 2})
		index := f.link(t, recs[0].Tap).Index
		injectOnNIC(t, f.b, 1, func(name string, o *tap.Options) (*tap.Device, error) {
			return nil, fmt.Errorf("tap %s: injected: %w", name, unix.ENOMEM)
		})
		_, err := f.b.Config(t.Context(), vm, 2, &types.VMConfig{CPU: 2})
		errIs(t, "Config growing the VM to 2 NICs", err, unix.ENOMEM)
		// NIC 0 existed before: it stays, as it was.
		if got := f.taps(t, vm); len(got) != 1 || got[0] == nil || got[0].Index != index {
			t.Errorf("TAPs of %s after the failed Config = %v, want only NIC 0's %s", vm, got, recs[0].Tap)
		}
		f.checkNICs(t, vm, recs, true)
		if err := f.b.Verify(t.Context(), vm); err != nil {
			t.Errorf("Verify(%s) after the failed Config = %v, want nil", vm, err)
		}
	})
	t.Run("growing a VM fails at setup on the new NIC", func(t *testing.T) {
		f := newFixture(t, nil)
		f.addVeth(t, "racer0", "racer1", false)
		recs := f.config(t, vm, 1, &types.VMConfig{CPU: 2})
		index := f.link(t, recs[0].Tap).Index
		injectOnNIC(t, f.b, 1, func(name string, o *tap.Options) (*tap.Device, error) {
			f.ip(t, "link", "property", "add", "dev", "racer0", "altname", owner.AltName(f.b.inst, vm, 1))
			return tap.Create(name, o)
		})
		_, err := f.b.Config(t.Context(), vm, 2, &types.VMConfig{CPU: 2})
		errIs(t, "Config growing the VM to 2 NICs", err, ErrNameCollision)
		if got := f.taps(t, vm); len(got) != 1 || got[0] == nil || got[0].Index != index {
			t.Errorf("TAPs of %s after the failed Config = %v, want only NIC 0's %s", vm, got, recs[0].Tap)
		}
		f.checkNICs(t, vm, recs, true)
		if err := f.b.Verify(t.Context(), vm); err != nil {
			t.Errorf("Verify(%s) after the failed Config = %v, want nil", vm, err)
		}
	})
}

// TestIntegrationConfigHandoffTwice hands a VM's TAPs off twice: the first
// files are still open (the VMM runs), so the second call must refuse, not
// hand out more queue files nor touch the TAPs.
func TestIntegrationConfigHandoffTwice(t *testing.T) {
	for _, cpu := range []int{1, 2} {
		t.Run(fmt.Sprintf("cpu%d", cpu), func(t *testing.T) {
			f := newFixture(t, nil)
			const vm = "vm-twice"
			hs, err := f.b.ConfigHandoff(t.Context(), vm, 2, &types.VMConfig{CPU: cpu})
			if err != nil {
				t.Fatalf("ConfigHandoff(%s) = %v", vm, err)
			}
			defer func() {
				for _, h := range hs {
					for _, q := range h.Queues {
						q.Close()
					}
				}
			}()
			before := f.links(t)
			fds := testutil.FDCountBusy(t)
			again, err := f.b.ConfigHandoff(t.Context(), vm, 2, &types.VMConfig{CPU: cpu})
			if err == nil {
				for _, h := range again {
					for _, q := range h.Queues {
						q.Close()
					}
				}
				t.Fatalf("second ConfigHandoff(%s) while the first's files are open = nil error, want one", vm)
			}
			if !strings.Contains(err.Error(), "open") {
				t.Errorf("second ConfigHandoff(%s) = %q, want it to say the TAP is open", vm, err)
			}
			after := f.links(t)
			for _, h := range hs {
				if a, b := after[h.Config.Tap], before[h.Config.Tap]; a == nil || a.Index != b.Index || numQueues(t, a) != numQueues(t, b) {
					t.Errorf("TAP %s changed by the refused ConfigHandoff", h.Config.Tap)
				}
			}
			checkFDs(t, fds, "refused ConfigHandoff")
		})
	}
}
