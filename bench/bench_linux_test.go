package bench_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bench/internal/floor"
	"github.com/tapbridge/tapbridge/bench/internal/ipbatch"
	"github.com/tapbridge/tapbridge/bench/internal/orig"
	"github.com/tapbridge/tapbridge/bench/internal/sysinfo"
	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/types"
)

// Settings shared by the contenders.
const (
	bridgeDev  = "br0"
	txQueueLen = 10000

	// floorGroup is the device group the floor retires links into.
	floorGroup = 4242

	// reapInterval and reapBatch are tapbridge's reaper defaults; the
	// floor's reaper uses the same.
	reapInterval = config.DefaultReapInterval
	reapBatch    = config.DefaultReapBatch
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		for _, l := range sysinfo.Lines() {
			fmt.Println(l)
		}
	}
	os.Exit(m.Run())
}

// env is one contender's throwaway network namespace with bridge br0.
type env struct {
	ns     int
	nsPath string
	br     uint32 // br0's ifindex
	mtu    uint32
	conn   *floor.Conn // a socket in ns for lookups and purges
}

// newEnv makes a fresh namespace with br0 up. It skips the benchmark
// without root, /dev/net/tun, ip or nsenter.
func newEnv(b testing.TB) *env {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("skipping: the benchmarks create network namespaces and TAPs: run as root")
	}
	for _, tool := range []string{"ip", "nsenter", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("skipping: %s (iproute2 or util-linux) is missing", tool)
		}
	}
	testutil.RequireTUN(b)
	ns := testutil.NetNS(b)
	testutil.AddBridge(b, ns, bridgeDev)
	conn, err := floor.DialAt(ns)
	if err != nil {
		b.Fatalf("floor.DialAt = %v", err)
	}
	e := &env{ns: ns, nsPath: testutil.NSPath(ns), mtu: 1500, conn: conn}
	b.Cleanup(func() {
		// Delete every TAP now, so that the namespace's teardown, which
		// the kernel does in the background, does not slow the next
		// benchmark down.
		if err := e.purgeAll(); err != nil {
			b.Errorf("purge namespace: %v", err)
		}
		conn.Close()
	})
	if e.br, err = conn.Index(bridgeDev); err != nil {
		b.Fatal(err)
	}
	return e
}

// purgeAll deletes every TUN/TAP device of the namespace with one group
// deletion.
func (e *env) purgeAll() error {
	var idx []uint32
	if err := e.conn.DumpTUN(func(l *floor.Link) { idx = append(idx, l.Index) }, func() { idx = idx[:0] }); err != nil {
		return err
	}
	var errs []error
	for _, i := range idx {
		if err := e.conn.Retire(i, floorGroup+1); !errors.Is(err, unix.ENODEV) {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, e.conn.DeleteGroup(floorGroup+1))...)
}

// enterNS locks the calling goroutine to its OS thread and moves the
// thread into e's namespace, for contenders that work in the calling
// thread's namespace (orig, floor). It is never unlocked: the runtime
// discards the thread when the benchmark's goroutine ends.
func enterNS(b *testing.B, e *env) {
	b.Helper()
	runtime.LockOSThread()
	if err := unix.Setns(e.ns, unix.CLONE_NEWNET); err != nil {
		b.Fatalf("setns = %v", err)
	}
}

// vmID returns the i'th VM ID: 8 hex digits, so that every contender's
// first TAP name candidate (bt<id>-<nic>) is unique.
func vmID(i int) string { return fmt.Sprintf("%08x", i) }

func tapName(id string, nic int) string { return owner.Name(id, nic, 0) }

// contender is one implementation under test, bound to a namespace, a NIC
// count and a CPU count.
type contender interface {
	// config creates VM id's NICs, on the bridge and up.
	config(id string) error
	// del deletes the VMs the contender's way (asynchronously when its
	// reaper is on).
	del(ids []string) error
	// flush waits until asynchronous deletions are done.
	flush() error
	// purge deletes the VMs quickly, outside timed regions.
	purge(ids []string) error
}

// contenderOpts selects a contender and its shape.
type contenderOpts struct {
	// impl is one of tapbridge (the default Bridge: guard l2, unbound
	// NICs, Delete in the background), tapbridge-sync (Config.SyncDelete),
	// tapbridge-bound (l2 with an IPv4 address bound to every NIC from its
	// record), guardoff (guard off), reaper (StartReaper called), floor,
	// floor-sync, thin (the thin floor), orig, ip.
	impl  string
	nics  int
	cpu   int
	grace time.Duration // tapbridge GC grace period; 0: default
	sync  bool          // tapbridge variants: SyncDelete whatever impl says
}

func (o contenderOpts) async() bool {
	switch o.impl {
	case "tapbridge", "tapbridge-bound", "guardoff", "reaper", "floor":
		return true
	}
	return strings.HasPrefix(o.impl, "thin")
}

// newContender builds the contender in e. For orig, floor and thin it
// moves the calling goroutine's thread into e's namespace (see enterNS).
func newContender(b *testing.B, e *env, o contenderOpts) contender {
	b.Helper()
	switch o.impl {
	case "tapbridge", "tapbridge-sync", "tapbridge-bound", "guardoff", "reaper":
		return newTapbridge(b, e, o)
	case "floor", "floor-sync":
		enterNS(b, e)
		return newFloor(b, e, o)
	case "orig":
		enterNS(b, e)
		return newOrig(b, e, o)
	case "ip":
		return newIP(b, e, o)
	default:
		if strings.HasPrefix(o.impl, "thin") {
			enterNS(b, e)
			return newFloor(b, e, o)
		}
	}
	b.Fatalf("unknown contender %q", o.impl)
	return nil
}

// tapbridgeC is the library.
type tapbridgeC struct {
	br    *bridge.Bridge
	nics  int
	cfg   *types.VMConfig
	bound bool   // give every NIC a record with a MAC and a bound IPv4 address
	seq   uint32 // for bound: MACs and addresses
}

func newTapbridge(b *testing.B, e *env, o contenderOpts) *tapbridgeC {
	b.Helper()
	b.ReportAllocs()
	// tapbridge is the default Bridge (Delete in the background, no
	// StartReaper); tapbridge-sync sets SyncDelete; guardoff turns the
	// guard off.
	conf := &config.Config{RootDir: b.TempDir(), NetnsPath: e.nsPath, GCGrace: o.grace, SyncDelete: o.sync || !o.async()}
	if o.impl == "guardoff" {
		conf.Guard = guard.ModeOff
	}
	br, err := bridge.New(conf, bridgeDev)
	if err != nil {
		b.Fatalf("bridge.New = %v", err)
	}
	b.Cleanup(func() {
		if err := br.Close(); err != nil {
			b.Errorf("Bridge.Close = %v", err)
		}
	})
	if o.impl == "reaper" {
		br.StartReaper()
	}
	return &tapbridgeC{br: br, nics: o.nics, cfg: &types.VMConfig{CPU: o.cpu}, bound: o.impl == "tapbridge-bound"}
}

func (t *tapbridgeC) config(id string) error {
	if !t.bound {
		_, err := t.br.Config(context.Background(), id, t.nics, t.cfg)
		return err
	}
	recs := make([]*types.NetworkConfig, t.nics)
	for i := range recs {
		t.seq++
		s := t.seq
		recs[i] = &types.NetworkConfig{
			Mac: net.HardwareAddr{0x02, 0xbb, byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}.String(),
			Network: &types.Network{
				IP:      fmt.Sprintf("10.%d.%d.%d", byte(s>>16), byte(s>>8), byte(s)),
				Gateway: "10.255.255.254", Prefix: 8,
			},
		}
	}
	_, err := t.br.Config(context.Background(), id, t.nics, t.cfg, recs...)
	return err
}

func (t *tapbridgeC) del(ids []string) error {
	_, err := t.br.Delete(context.Background(), ids)
	return err
}

func (t *tapbridgeC) flush() error { return t.br.Flush(context.Background()) }

func (t *tapbridgeC) purge(ids []string) error {
	return errors.Join(t.del(ids), t.flush())
}

// floorC is the floor: the same kernel operations as tapbridge, one
// message at a time. Per NIC: create the TAP with one fd, then the noqueue
// qdisc, one setup message (MTU, txqueuelen, MAC, owner tag, IPv6 address
// generation off, master, up), the alternative name, learning off and the
// guest's static FDB entry, each acknowledged before the next; delete by
// ifindex, or (async) retire into a group that a reaper deletes.
//
// With thin set it is the thin floor (issue 13): bare syscalls doing less
// than tapbridge. Per NIC: open, TUNSETIFF, TUNSETPERSIST, close, a noqueue
// root, one RTM_NEWLINK with master, MTU, txqueuelen and up, learning off;
// nothing else (no owner tag, alternative name, host MAC, address
// generation, FDB entry or guard). It deletes as the async floor does.
type floorC struct {
	e      *env
	conn   *floor.Conn
	reaper *floor.Reaper // nil: synchronous deletes
	nics   int
	mq     bool
	thin   bool
	steps  map[string]bool // thin+STEP+STEP...: the thin floor plus these steps
	links  map[string][]uint32
	seq    uint32
	alias  string
}

func newFloor(b *testing.B, e *env, o contenderOpts) *floorC {
	b.Helper()
	conn, err := floor.Dial() // on the thread enterNS moved
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	f := &floorC{
		e: e, conn: conn, nics: o.nics, mq: o.cpu > 1, links: make(map[string][]uint32),
		// An owner tag as long as tapbridge's.
		alias: "tb1 i=0123456789abcdef v=00000000 n=0/1 m=02:00:00:00:00:00 q=4/512 c=1700000000000",
	}
	if name, steps, ok := strings.Cut(o.impl, "+"); name == "thin" {
		f.thin = true
		if ok {
			f.steps = make(map[string]bool)
			for _, s := range strings.Split(steps, "+") {
				f.steps[s] = true
			}
		}
	}
	if o.async() {
		rc, err := floor.Dial()
		if err != nil {
			b.Fatal(err)
		}
		f.reaper = floor.StartReaper(rc, floorGroup, reapInterval, reapBatch)
		b.Cleanup(func() { f.reaper.Close() })
	}
	return f
}

func (f *floorC) config(id string) error {
	idx := make([]uint32, 0, f.nics)
	for nic := range f.nics {
		name := tapName(id, nic)
		if f.thin {
			i, err := f.configThin(id, nic)
			if err != nil {
				return err
			}
			idx = append(idx, i)
			continue
		}
		if err := floor.CreateTAP(name, f.mq); err != nil {
			return err
		}
		i, err := f.conn.Index(name)
		if err != nil {
			return err
		}
		idx = append(idx, i)
		f.seq++
		mac := net.HardwareAddr{0xfe, 0, byte(f.seq >> 24), byte(f.seq >> 16), byte(f.seq >> 8), byte(f.seq)}
		if err := f.conn.SetNoQueue(i); err != nil {
			return err
		}
		if err := f.conn.Setup(i, &floor.Setup{MTU: f.e.mtu, TxQLen: txQueueLen, Address: mac, Alias: f.alias, AddrGenOff: true, Master: f.e.br}); err != nil {
			return err
		}
		if err := f.conn.AddAltName(i, f.altName(id, nic)); err != nil {
			return err
		}
		if err := f.conn.SetLearning(i, false); err != nil {
			return err
		}
		guest := net.HardwareAddr{0x02, 0, byte(f.seq >> 24), byte(f.seq >> 16), byte(f.seq >> 8), byte(f.seq)}
		if err := f.conn.AddFDB(i, guest); err != nil {
			return err
		}
	}
	f.links[id] = idx
	return nil
}

func (f *floorC) altName(id string, nic int) string {
	return "tb.01234567." + strconv.Itoa(nic) + "." + id
}

// configThin makes NIC nic of VM id the thin floor's way, plus the steps
// of f.steps (see BenchmarkConfigSteps), and returns its ifindex.
func (f *floorC) configThin(id string, nic int) (uint32, error) {
	st := f.steps
	name := tapName(id, nic)
	if st["probe"] {
		// The look-up of an existing TAP by alternative name.
		if err := f.conn.ProbeAltName(f.altName(id, nic)); !errors.Is(err, unix.ENODEV) {
			return 0, fmt.Errorf("probe %s = %v, want ENODEV", name, err)
		}
	}
	fd, err := floor.OpenTAP(name, f.mq)
	if err != nil {
		return 0, err
	}
	if !st["upopen"] {
		unix.Close(fd)
		fd = -1
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	i, err := f.conn.Index(name)
	if err != nil {
		return 0, err
	}
	f.seq++
	seq := f.seq
	guest := net.HardwareAddr{0x02, 0, byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)}
	if err := f.conn.SetNoQueue(i); err != nil {
		return 0, err
	}
	if st["guard"] {
		prog, err := guard.Program(&guard.Policy{Mode: guard.ModeL2, MAC: [6]byte(guest)})
		if err != nil {
			return 0, err
		}
		insns := make([]floor.Insn, len(prog))
		for j, in := range prog {
			insns[j] = floor.Insn{Op: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
		}
		if err := f.conn.SetGuard(i, insns); err != nil {
			return 0, err
		}
	}
	s := &floor.Setup{MTU: f.e.mtu, TxQLen: txQueueLen, Master: f.e.br, Down: st["upsplit"], AddrGenOff: st["addrgen"]}
	if st["mac"] {
		s.Address = net.HardwareAddr{0xfe, 0, byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)}
	}
	if st["alias"] {
		s.Alias = f.alias
	}
	if err := f.conn.Setup(i, s); err != nil {
		return 0, err
	}
	if st["altname"] {
		if err := f.conn.AddAltName(i, f.altName(id, nic)); err != nil {
			return 0, err
		}
	}
	if st["locked"] {
		err = f.conn.SetPortGuarded(i)
	} else {
		err = f.conn.SetLearning(i, false)
	}
	if err != nil {
		return 0, err
	}
	if st["fdb"] {
		if err := f.conn.AddFDB(i, guest); err != nil {
			return 0, err
		}
	}
	if st["upopen"] {
		// Close with the port up: the carrier goes, and the bridge
		// disables the port.
		unix.Close(fd)
		fd = -1
	}
	if st["upsplit"] {
		if err := f.conn.SetUp(i); err != nil {
			return 0, err
		}
	}
	return i, nil
}

func (f *floorC) del(ids []string) error {
	var errs []error
	for _, id := range ids {
		for _, i := range f.links[id] {
			if f.reaper != nil {
				errs = append(errs, f.conn.Retire(i, floorGroup))
			} else {
				errs = append(errs, f.conn.DeleteLink(i))
			}
		}
		if f.reaper != nil {
			f.reaper.Add(len(f.links[id]))
		}
		delete(f.links, id)
	}
	return errors.Join(errs...)
}

func (f *floorC) flush() error {
	if f.reaper == nil {
		return nil
	}
	return f.reaper.Flush()
}

func (f *floorC) purge(ids []string) error {
	for _, id := range ids {
		delete(f.links, id)
	}
	return purgeByName(f.e, ids, f.nics)
}

// purgeByName deletes the VMs' TAPs (first name candidates) with one
// group deletion.
func purgeByName(e *env, ids []string, nics int) error {
	var errs []error
	for _, id := range ids {
		for nic := range nics {
			i, err := e.conn.Index(tapName(id, nic))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, e.conn.Retire(i, floorGroup+1))
		}
	}
	return errors.Join(append(errs, e.conn.DeleteGroup(floorGroup+1))...)
}

// origC is the original call sequence on vishvananda/netlink.
type origC struct {
	e    *env
	br   netlink.Link
	nics int
	cpu  int
}

func newOrig(b *testing.B, e *env, o contenderOpts) *origC {
	b.Helper()
	br, err := netlink.LinkByName(bridgeDev)
	if err != nil {
		b.Fatal(err)
	}
	return &origC{e: e, br: br, nics: o.nics, cpu: o.cpu}
}

func (c *origC) config(id string) error {
	for nic := range c.nics {
		if err := orig.ConfigNIC(tapName(id, nic), c.cpu, c.br); err != nil {
			return err
		}
	}
	return nil
}

func (c *origC) del(ids []string) error {
	var errs []error
	for _, id := range ids {
		errs = append(errs, orig.Cleanup(func(nic int) string { return tapName(id, nic) }))
	}
	return errors.Join(errs...)
}

func (c *origC) flush() error { return nil }

func (c *origC) purge(ids []string) error { return purgeByName(c.e, ids, c.nics) }

// ipC is iproute2 through one `ip -batch` process.
type ipC struct {
	e     *env
	p     *ipbatch.Proc
	nics  int
	flags string
}

func newIP(b *testing.B, e *env, o contenderOpts) *ipC {
	b.Helper()
	p, err := ipbatch.Start(e.nsPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	flags := "one_queue"
	if o.cpu > 1 {
		flags = "multi_queue"
	}
	return &ipC{e: e, p: p, nics: o.nics, flags: flags}
}

func (c *ipC) config(id string) error {
	cmds := make([]string, 0, 3*c.nics)
	for nic := range c.nics {
		n := tapName(id, nic)
		cmds = append(cmds,
			fmt.Sprintf("tuntap add dev %s mode tap vnet_hdr %s", n, c.flags),
			fmt.Sprintf("link set dev %s mtu %d txqueuelen %d gro_max_size %d master %s up", n, c.e.mtu, txQueueLen, orig.GROMaxSize, bridgeDev),
			fmt.Sprintf("link set dev %s type bridge_slave learning off", n))
	}
	return c.p.Run(cmds...)
}

func (c *ipC) del(ids []string) error {
	cmds := make([]string, 0, len(ids)*c.nics)
	for _, id := range ids {
		for nic := range c.nics {
			cmds = append(cmds, "link del dev "+tapName(id, nic))
		}
	}
	return c.p.Run(cmds...)
}

func (c *ipC) flush() error { return nil }

func (c *ipC) purge(ids []string) error { return purgeByName(c.e, ids, c.nics) }

// defaultQdisc reports whether the contender brings its TAPs up with the
// default qdisc: a multi-queue one then costs about 96 MB of kernel memory.
func defaultQdisc(impl string) bool { return impl == "orig" || impl == "ip" }

// reportLatency reports the p50 and p99 of d in milliseconds.
func reportLatency(b *testing.B, d []time.Duration) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	b.ReportMetric(ms(quantile(s, 0.50)), "p50-ms")
	b.ReportMetric(ms(quantile(s, 0.99)), "p99-ms")
}

// quantile returns the q-quantile of sorted s (nearest rank).
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
