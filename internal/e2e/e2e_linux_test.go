package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/launch"
	"github.com/tapbridge/tapbridge/types"
)

var (
	e2eFlag     = flag.Bool("e2e", false, "run the end-to-end test: boot real guests over tapbridge TAPs (root; QEMU, dnsmasq, apt)")
	cacheFlag   = flag.String("e2e.cache", "", "guest artefact cache (default $XDG_CACHE_HOME/tapbridge-e2e, else /var/cache/tapbridge-e2e)")
	accelFlag   = flag.String("e2e.accel", "tcg", "QEMU accelerator: tcg, or kvm (needs a working /dev/kvm)")
	bootTimeout = flag.Duration("e2e.boot-timeout", 240*time.Second, "how long one guest may take from QEMU start to power-off")
)

// The guest network. dnsmasq hands out leases from a range that excludes
// the gateway, which is the bridge's own address.
const (
	bridgeName  = "br0"
	gateway     = "10.99.0.1"
	gatewayCIDR = gateway + "/24"
	dhcpRange   = "10.99.0.50,10.99.0.150,12h"
)

// nic is one element of `tapbridge up --json`.
type nic struct {
	Tap       string `json:"tap"`
	Mac       string `json:"mac"`
	NumQueues int    `json:"num_queues"`
	QueueSize int    `json:"queue_size"`
	Backend   string `json:"backend"`
	BridgeDev string `json:"bridge_dev"`
}

// e2eCase is one guest boot.
type e2eCase struct {
	name  string
	vm    string
	cpus  int // vCPUs, and so queue pairs
	multi bool
}

var e2eCases = []e2eCase{
	{name: "single-queue", vm: "e2e-sq", cpus: 1, multi: false},
	{name: "multi-queue", vm: "e2e-mq", cpus: 2, multi: true},
}

// beginE2E skips t unless -e2e is given, checks the host has what every
// e2e test needs, and returns the report whose final line t prints.
func beginE2E(t *testing.T) *report {
	t.Helper()
	if !*e2eFlag {
		t.Skip("end-to-end test: run with -e2e (make e2e), as root")
	}
	start := time.Now()
	rep := &report{stage: "preflight"}
	t.Cleanup(func() { rep.final(t, time.Since(start)) })
	requireHost(t, rep)
	return rep
}

// TestE2E boots a real guest over a TAP that tapbridge made, once with a
// single-queue TAP and once with a multi-queue one, and checks that it got
// a DHCP lease from dnsmasq on the bridge and reached the gateway. Its last
// line is "E2E: PASS" or "E2E: FAIL <reason>".
func TestE2E(t *testing.T) {
	rep := beginE2E(t)

	dir := t.TempDir()
	rep.stage = "build tapbridge"
	drv := buildCLI(t, rep, dir)

	rep.stage = "guest artefacts"
	t0 := time.Now()
	g := prepareGuest(t, rep, cacheDir(), dir)
	t.Logf("guest: kernel %s (%s), %s, modules %s; ready in %v",
		g.KernelPkg, g.KernelRel, g.BusyboxPkg, strings.Join(g.Modules, " "), time.Since(t0).Round(time.Millisecond))

	accel := pickAccel(t, rep)
	for _, tc := range e2eCases {
		t.Run(tc.name, func(t *testing.T) {
			rep.stage = tc.name
			runCase(t, rep, drv, g, accel, tc)
		})
	}
}

// runCase is one boot, in its own namespace.
func runCase(t *testing.T, rep *report, drv cli, g *guest, accel string, tc e2eCase) {
	ns := testutil.NetNS(t)
	nsPath := testutil.NSPath(ns)
	dir := t.TempDir()

	testutil.Run(t, ns, "ip", "link", "set", "lo", "up")
	testutil.AddBridge(t, ns, bridgeName)
	testutil.Run(t, ns, "ip", "addr", "add", gatewayCIDR, "dev", bridgeName)
	brMAC := testutil.IPLinkByName(t, ns, bridgeName).Address

	leases := filepath.Join(dir, "leases")
	dns, err := startProc(t, "dnsmasq", "nsenter", "--net="+nsPath, "--",
		dnsmasqPath(), "--no-daemon", "--conf-file=/dev/null",
		"--interface="+bridgeName, "--bind-interfaces", "--port=0",
		"--dhcp-range="+dhcpRange, "--dhcp-option=option:router,"+gateway,
		"--dhcp-leasefile="+leases, "--no-ping", "--log-dhcp")
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", dns.out.String())
		}
	})
	// --no-daemon writes no pid file (we hold the pid anyway): its log
	// line says when the DHCP socket is bound.
	if err := dns.waitOutput("DHCP, IP range", 30*time.Second); err != nil {
		rep.fatalf(t, "dnsmasq: %v", err)
	}

	root := filepath.Join(dir, "root")
	nics, err := drv.up(t.Context(), nsPath, root, bridgeName, tc.vm, tc.cpus)
	if err != nil {
		rep.fatalf(t, "tapbridge up: %v", err)
	}
	n := checkNICs(t, rep, nics, tc)
	checkTAPBefore(t, rep, ns, n, tc)

	console := filepath.Join(dir, "console.log")
	t0 := time.Now()
	argv, err := qemuArgs(g, n, tc, accel, console)
	if err != nil {
		rep.fatalf(t, "launch arguments: %v", err)
	}
	qemu, err := startProc(t, "qemu", append([]string{"nsenter", "--net=" + nsPath, "--"}, argv...)...)
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(console)
			t.Logf("QEMU output:\n%s\nguest console:\n%s", qemu.out.String(), log)
		}
	})
	if !qemu.wait(*bootTimeout) {
		qemu.kill()
		rep.fatalf(t, "guest did not power off within %v (killed QEMU)", *bootTimeout)
	}
	boot := time.Since(t0)
	if qemu.err != nil {
		rep.errorf(t, "QEMU exited: %v", qemu.err)
	}
	log, err := os.ReadFile(console)
	if err != nil {
		rep.fatalf(t, "read guest console: %v", err)
	}
	m := parseMarkers(log)
	t.Logf("guest ran %v (%s, %d vCPU): %s", boot.Round(time.Millisecond), accel, tc.cpus, strings.Join(m.lines, " | "))

	// The guest's view.
	switch {
	case m.has("E2E-PING-OK"):
	case m.has("E2E-PING-FAIL"):
		rep.errorf(t, "guest got lease %s but could not ping %s (E2E-PING-FAIL)", m.val("E2E-LEASE"), gateway)
	case m.has("E2E-LEASE-FAIL"):
		rep.errorf(t, "guest got no DHCP lease (E2E-LEASE-FAIL)")
	default:
		rep.errorf(t, "guest console has no E2E-PING-OK (markers: %q)", m.lines)
	}
	if v := m.val("E2E-INSMOD-FAIL"); v != "" {
		rep.errorf(t, "guest could not load module %s", v)
	}
	if got, want := countPrefix(m.val("E2E-QUEUES"), "rx-"), tc.cpus; got != want {
		rep.errorf(t, "guest queues = %q: %d rx queues, want %d", m.val("E2E-QUEUES"), got, want)
	}
	if got := m.val("E2E-GATEWAY"); got != gateway {
		rep.errorf(t, "guest gateway = %q, want %s", got, gateway)
	}
	// Kernel fact 15: the bridge's MAC was pinned, so the gateway MAC the
	// guest resolved is the one the bridge had before it got any port.
	if got := m.val("E2E-GWMAC"); !strings.EqualFold(got, brMAC) {
		rep.errorf(t, "guest's gateway MAC = %q, want the bridge's MAC from before tapbridge up %s", got, brMAC)
	}

	if !m.has("E2E-LEASE") {
		t.FailNow() // nothing for the host to find
	}

	// The host's view.
	ip := m.val("E2E-LEASE")
	if err := waitLease(leases, n.Mac, ip, 15*time.Second); err != nil {
		rep.errorf(t, "lease file: %v", err)
	}
	rx, tx := tapStats(t, ns, n.Tap)
	if rx == 0 || tx == 0 {
		rep.errorf(t, "TAP %s counters: rx %d, tx %d packets, want both > 0", n.Tap, rx, tx)
	}
	checkTAPAfter(t, rep, ns, n)
	t.Logf("host: lease %s for %s in %s; TAP %s rx %d tx %d packets", ip, n.Mac, filepath.Base(leases), n.Tap, rx, tx)

	if err := drv.down(t.Context(), nsPath, root, tc.vm); err != nil {
		rep.fatalf(t, "tapbridge down: %v", err)
	}
	if l := testutil.IPLinkByName(t, ns, n.Tap); l != nil {
		rep.errorf(t, "after tapbridge down, TAP %s still exists (ip -j link)", n.Tap)
	}
}

// cli drives the tapbridge binary, as an operator or a shell-script VMM
// integration would.
type cli struct{ bin string }

// buildCLI builds cmd/tapbridge into dir.
func buildCLI(t *testing.T, rep *report, dir string) cli {
	t.Helper()
	bin := filepath.Join(dir, "tapbridge")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/tapbridge/tapbridge/cmd/tapbridge")
	// Build inside the module even when the test binary runs elsewhere
	// (go test -c): this file's directory is in it.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		cmd.Dir = filepath.Dir(file)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		rep.fatalf(t, "go build cmd/tapbridge: %v\n%s", err, out)
	}
	return cli{bin: bin}
}

// run runs the CLI and returns its standard output; the error carries its
// exit status and standard error.
func (c cli) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("tapbridge %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func (c cli) up(ctx context.Context, nsPath, root, bridge, vm string, cpus int) ([]nic, error) {
	out, err := c.run(ctx, "up", "--bridge", bridge, "--vm", vm, "--hypervisor", "qemu",
		"--cpus", strconv.Itoa(cpus), "--netns", nsPath, "--root", root, "--json")
	if err != nil {
		return nil, err
	}
	var nics []nic
	if err := json.Unmarshal(out, &nics); err != nil {
		return nil, fmt.Errorf("tapbridge up --json: %w in %q", err, out)
	}
	return nics, nil
}

func (c cli) down(ctx context.Context, nsPath, root, vm string) error {
	_, err := c.run(ctx, "down", "--vm", vm, "--netns", nsPath, "--root", root)
	return err
}

// checkNICs checks the `tapbridge up` records and returns the one NIC.
func checkNICs(t *testing.T, rep *report, nics []nic, tc e2eCase) nic {
	t.Helper()
	if len(nics) != 1 {
		rep.fatalf(t, "tapbridge up returned %d NICs %+v, want 1", len(nics), nics)
	}
	n := nics[0]
	mac, err := net.ParseMAC(n.Mac)
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 || mac[0]&2 == 0 {
		rep.fatalf(t, "tapbridge up: guest MAC %q, want a locally administered unicast MAC (%v)", n.Mac, err)
	}
	if n.Tap == "" || n.Backend != "bridge" || n.BridgeDev != bridgeName || n.NumQueues != 2*tc.cpus || n.QueueSize <= 0 {
		rep.fatalf(t, "tapbridge up = %+v, want a TAP, backend bridge, bridge_dev %s, num_queues %d, a queue size", n, bridgeName, 2*tc.cpus)
	}
	return n
}

// checkTAPBefore checks the TAP as the VMM will find it: on the bridge,
// multi-queue exactly when QEMU will open it so (kernel fact 2: a mismatch
// makes QEMU's TUNSETIFF fail with EINVAL), with a noqueue root qdisc
// (fact 13).
func checkTAPBefore(t *testing.T, rep *report, ns int, n nic, tc e2eCase) {
	t.Helper()
	l := testutil.IPLinkByName(t, ns, n.Tap)
	if l == nil {
		rep.fatalf(t, "tapbridge up: TAP %s not in ip -j link", n.Tap)
	}
	if l.LinkInfo.Kind != "tun" || l.Master != bridgeName {
		rep.errorf(t, "TAP %s: kind %q master %q, want tun on %s", n.Tap, l.LinkInfo.Kind, l.Master, bridgeName)
	}
	if mq, _ := l.LinkInfo.Data["multi_queue"].(bool); mq != tc.multi {
		rep.errorf(t, "TAP %s: multi_queue %v, want %v", n.Tap, mq, tc.multi)
	}
	if l.Qdisc != "noqueue" {
		rep.errorf(t, "TAP %s: qdisc %q, want noqueue", n.Tap, l.Qdisc)
	}
}

// checkTAPAfter checks the TAP after its carrier was up while the guest ran:
// no IPv6 link-local address, which would make the host reachable from the
// guest (kernel fact 12), and the guest MAC pinned by a static, not
// permanent, FDB entry (fact 14: a permanent one would have kept the
// guest's frames from it, and the lease above would not exist).
func checkTAPAfter(t *testing.T, rep *report, ns int, n nic) {
	t.Helper()
	var addrs []struct {
		AddrInfo []struct {
			Family string `json:"family"`
			Local  string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(testutil.Run(t, ns, "ip", "-j", "addr", "show", "dev", n.Tap), &addrs); err != nil {
		rep.fatalf(t, "decode ip -j addr: %v", err)
	}
	for _, a := range addrs {
		for _, ai := range a.AddrInfo {
			rep.errorf(t, "TAP %s has address %s %s, want none", n.Tap, ai.Family, ai.Local)
		}
	}
	var fdb []struct {
		MAC   string `json:"mac"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(testutil.Run(t, ns, "bridge", "-j", "fdb", "show", "dev", n.Tap), &fdb); err != nil {
		rep.fatalf(t, "decode bridge -j fdb: %v", err)
	}
	var states []string
	for _, e := range fdb {
		if strings.EqualFold(e.MAC, n.Mac) {
			states = append(states, e.State)
		}
	}
	if len(states) != 1 || states[0] != "static" {
		rep.errorf(t, "FDB entries for guest MAC %s on %s: states %q, want one static", n.Mac, n.Tap, states)
	}
}

// qemuArgs is the QEMU command line: a q35 machine whose only device besides
// the serial port is virtio-net-pci on the TAP, with the -netdev and -device
// arguments package launch renders for the record and the qemu profile (no
// hand-written network arguments: a wrong snippet fails this test).
func qemuArgs(g *guest, n nic, tc e2eCase, accel, console string) ([]string, error) {
	args := []string{
		"qemu-system-x86_64",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-M", "q35", "-accel", accel, "-smp", strconv.Itoa(tc.cpus), "-m", "256",
		"-no-reboot",
		"-serial", "file:" + console,
		"-kernel", g.Kernel, "-initrd", g.Initramfs,
		"-append", "console=ttyS0 panic=-1 quiet",
	}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	// No /dev/vhost-net here: vhost=off says so rather than letting QEMU
	// probe.
	net, err := launch.QEMUArgs(launch.NIC{Config: n.record(), ID: "n0"}, &launch.Options{Profile: config.QEMU, VhostOff: true})
	if err != nil {
		return nil, err
	}
	return append(args, net...), nil
}

// record is the NIC as the library's type.
func (n nic) record() *types.NetworkConfig {
	return &types.NetworkConfig{Tap: n.Tap, Mac: n.Mac, NumQueues: n.NumQueues, QueueSize: n.QueueSize, Backend: n.Backend, BridgeDev: n.BridgeDev}
}

// markers are the E2E-* lines of a guest console.
type markers struct {
	lines []string
	vals  map[string]string
}

func parseMarkers(log []byte) markers {
	m := markers{vals: map[string]string{}}
	for _, l := range strings.Split(string(log), "\n") {
		l = strings.TrimSpace(l)
		i := strings.Index(l, "E2E-")
		if i < 0 {
			continue
		}
		l = l[i:]
		m.lines = append(m.lines, l)
		k, v, _ := strings.Cut(l, " ")
		m.vals[k] = strings.TrimSpace(v)
	}
	return m
}

func (m markers) has(k string) bool   { _, ok := m.vals[k]; return ok }
func (m markers) val(k string) string { return m.vals[k] }

func countPrefix(fields, prefix string) int {
	n := 0
	for _, f := range strings.Fields(fields) {
		if strings.HasPrefix(f, prefix) {
			n++
		}
	}
	return n
}

// waitLease waits until dnsmasq's lease file holds mac with ip ("expiry mac
// ip hostname client-id" lines); dnsmasq writes it from its main loop, so
// it may lag the guest's DHCPACK.
func waitLease(path, mac, ip string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				f := strings.Fields(l)
				if len(f) >= 3 && strings.EqualFold(f[1], mac) {
					if f[2] != ip {
						return fmt.Errorf("lease for %s is %s, guest said %q", mac, f[2], ip)
					}
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no lease for %s within %v (read: %v):\n%s", mac, timeout, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tapStats returns the TAP's packet counters as iproute2 reports them.
func tapStats(t *testing.T, ns int, dev string) (rx, tx uint64) {
	t.Helper()
	var links []struct {
		Stats struct {
			RX struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
			TX struct {
				Packets uint64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(testutil.Run(t, ns, "ip", "-j", "-s", "link", "show", "dev", dev), &links); err != nil || len(links) != 1 {
		t.Fatalf("decode ip -j -s link show dev %s: %v (%d links)", dev, err, len(links))
	}
	return links[0].Stats.RX.Packets, links[0].Stats.TX.Packets
}

// requireHost fails the test (it does not skip: -e2e asked for it) unless it
// runs as root with every tool it needs.
func requireHost(t *testing.T, rep *report) {
	t.Helper()
	if os.Geteuid() != 0 {
		rep.fatalf(t, "not root: the end-to-end test makes namespaces, TAPs and a bridge (run make e2e as root)")
	}
	var missing []string
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing = append(missing, "/dev/net/tun")
	}
	for _, tool := range []string{"qemu-system-x86_64", "nsenter", "ip", "bridge", "apt-get", "apt-cache", "dpkg-deb", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat(dnsmasqPath()); err != nil {
		missing = append(missing, "dnsmasq")
	}
	if len(missing) > 0 {
		rep.fatalf(t, "missing %s (make deps installs them)", strings.Join(missing, ", "))
	}
}

// dnsmasqPath finds dnsmasq, which is in /usr/sbin, not always on PATH.
func dnsmasqPath() string {
	if p, err := exec.LookPath("dnsmasq"); err == nil {
		return p
	}
	return "/usr/sbin/dnsmasq"
}

// pickAccel returns the QEMU accelerator. TCG is the default, not KVM when
// /dev/kvm exists: under nested virtualization /dev/kvm can open and still
// fail (on this project's Firecracker-hosted machines QEMU aborts with
// "failed to set MSR 0x10a" with -cpu host, and the guest hangs without
// it), while TCG boots this small guest in seconds.
func pickAccel(t *testing.T, rep *report) string {
	t.Helper()
	switch *accelFlag {
	case "tcg":
		return "tcg"
	case "kvm":
		fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			rep.fatalf(t, "-e2e.accel=kvm: %v", err)
		}
		unix.Close(fd)
		return "kvm"
	}
	rep.fatalf(t, "-e2e.accel=%q: want tcg or kvm", *accelFlag)
	return ""
}

// report tracks where the test is, so that its last line can say why it
// failed.
type report struct {
	stage  string
	reason string
}

func (r *report) note(msg string) {
	if r.reason == "" {
		r.reason = r.stage + ": " + msg
	}
}

// fatalf records the first failure and stops the (sub)test.
func (r *report) fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.note(msg)
	t.Fatal(msg)
}

// errorf records the first failure and lets the (sub)test go on.
func (r *report) errorf(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.note(msg)
	t.Error(msg)
}

// final logs the verdict line.
func (r *report) final(t *testing.T, took time.Duration) {
	if !t.Failed() {
		t.Logf("E2E: PASS (%v)", took.Round(time.Second))
		return
	}
	reason := r.reason
	if reason == "" {
		reason = r.stage + ": see the log above"
	}
	// One line, whatever the message held.
	reason, _, _ = strings.Cut(reason, "\n")
	t.Logf("E2E: FAIL %s", reason)
}
