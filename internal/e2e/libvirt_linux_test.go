package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/internal/vmmopen"
	"github.com/tapbridge/tapbridge/launch"
)

// libvirtd and virsh, from Debian's libvirt-daemon, libvirt-daemon-driver-qemu
// and libvirt-clients (.ci/deps installs them, without systemd).
const (
	libvirtdBin = "/usr/sbin/libvirtd"
	virshBin    = "virsh"
	// guestHold keeps the guest alive after its last marker (init sleeps
	// e2e_hold seconds before powering off), so that the test, not the
	// guest, ends the domain with virsh destroy.
	guestHold = 300
)

// qemuConf is the private libvirtd's qemu.conf: QEMU runs as root with no
// security driver, cgroups or per-domain mount namespace (none of which a
// throwaway test machine without systemd provides), and its output goes
// to a file rather than through virtlogd.
const qemuConf = `user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
`

var libvirtCases = []e2eCase{
	{name: "single-queue", vm: "e2e-lv-sq", cpus: 1, multi: false},
	{name: "multi-queue", vm: "e2e-lv-mq", cpus: 2, multi: true},
}

// TestE2ELibvirt boots the e2e guest under libvirt (9.0, QEMU under TCG)
// on a tapbridge TAP, single- and multi-queue: libvirt opens the TAP itself
// from the <interface> element package launch renders. The guest gets its
// lease from dnsmasq and pings the gateway; libvirt refuses a single-queue
// TAP someone holds (EBUSY) and a queue count that does not match the TAP
// (EINVAL); after virsh destroy the TAP, its port and FDB entry stay, and
// tapbridge down removes them.
func TestE2ELibvirt(t *testing.T) {
	rep := beginE2E(t)
	for _, p := range []string{libvirtdBin, "/usr/bin/" + virshBin} {
		if _, err := os.Stat(p); err != nil {
			rep.fatalf(t, "missing %s (make deps installs libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients)", p)
		}
	}

	dir := t.TempDir()
	rep.stage = "build tapbridge"
	drv := buildCLI(t, rep, dir)
	rep.stage = "guest artefacts"
	g := prepareGuest(t, rep, cacheDir(), dir)
	// libvirt's QEMU runs in a mount namespace where /var is private:
	// give it a kernel path outside the cache.
	kernel := filepath.Join(dir, "vmlinuz")
	if err := copyFile(g.Kernel, kernel); err != nil {
		rep.fatalf(t, "copy kernel: %v", err)
	}
	g.Kernel = kernel
	for _, tc := range libvirtCases {
		t.Run(tc.name, func(t *testing.T) {
			rep.stage = "libvirt " + tc.name
			runLibvirtCase(t, rep, drv, g, tc)
		})
	}
}

func runLibvirtCase(t *testing.T, rep *report, drv cli, g *guest, tc e2eCase) {
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

	lv := startLibvirtd(t, rep, ns, dir)
	console := filepath.Join(dir, "console.log")
	domain := func(profile string) string {
		iface, err := launch.LibvirtInterface(launch.NIC{Config: n.record()}, &launch.Options{Profile: profile, VhostOff: true})
		if err != nil {
			rep.fatalf(t, "launch arguments: %v", err)
		}
		return domainXML(tc, g, console, iface)
	}

	// What libvirt refuses, before it starts QEMU.
	if tc.multi {
		// An <interface> for a single-queue TAP (the firecracker
		// profile's) on this multi-queue one: libvirt's TUNSETIFF without
		// IFF_MULTI_QUEUE gets EINVAL.
		if out, err := lv.virsh(t, "create", writeTemp(t, dir, "wrong.xml", domain(config.Firecracker))); err == nil || !strings.Contains(out, "Invalid argument") {
			rep.errorf(t, "virsh create with a single-queue <interface> on multi-queue %s = %v (%s), want EINVAL", n.Tap, err, out)
		}
	} else {
		// Someone holds the single-queue TAP (a VMM that did not exit,
		// say): libvirt's TUNSETIFF gets EBUSY.
		var held *vmmopen.Tap
		if err := vmmopen.Run(ns, func() error {
			var err error
			held, err = vmmopen.Firecracker(fmt.Appendf(nil, `{"iface_id":"x","host_dev_name":%q}`, n.Tap))
			return err
		}); err != nil {
			rep.fatalf(t, "hold %s: %v", n.Tap, err)
		}
		out, err := lv.virsh(t, "create", writeTemp(t, dir, "busy.xml", domain(config.QEMU)))
		held.Close()
		if err == nil || !strings.Contains(out, "Device or resource busy") {
			rep.errorf(t, "virsh create while %s is held = %v (%s), want EBUSY", n.Tap, err, out)
		}
	}

	t0 := time.Now()
	if out, err := lv.virsh(t, "create", writeTemp(t, dir, "domain.xml", domain(config.QEMU))); err != nil {
		rep.fatalf(t, "virsh create: %v: %s", err, out)
	}
	t.Cleanup(func() { lv.virsh(t, "destroy", tc.vm) })
	m := waitMarker(t, rep, console, "E2E-DONE", *bootTimeout)
	t.Logf("libvirt guest: virsh create to E2E-DONE %v (tcg, %d vCPU): %s", time.Since(t0).Round(time.Millisecond), tc.cpus, strings.Join(m.lines, " | "))

	switch {
	case m.has("E2E-PING-OK"):
	case m.has("E2E-LEASE-FAIL"):
		rep.errorf(t, "guest got no DHCP lease (E2E-LEASE-FAIL)")
	default:
		rep.errorf(t, "guest console has no E2E-PING-OK (markers: %q)", m.lines)
	}
	if got, want := countPrefix(m.val("E2E-QUEUES"), "rx-"), tc.cpus; got != want {
		rep.errorf(t, "guest queues = %q: %d rx queues, want %d", m.val("E2E-QUEUES"), got, want)
	}
	if got := m.val("E2E-GWMAC"); !strings.EqualFold(got, brMAC) {
		rep.errorf(t, "guest's gateway MAC = %q, want the bridge's %s", got, brMAC)
	}
	if ip := m.val("E2E-LEASE"); ip != "" {
		if err := waitLease(leases, n.Mac, ip, 15*time.Second); err != nil {
			rep.errorf(t, "lease file: %v", err)
		}
	}
	// libvirt opened the TAP as it was made, and changed nothing of it.
	if l := testutil.IPLinkByName(t, ns, n.Tap); l != nil {
		if q, _ := l.LinkInfo.Data["numqueues"].(float64); tc.multi && int(q) < 1 {
			rep.errorf(t, "TAP %s while libvirt runs: numqueues %v, want the guest's queues attached", n.Tap, l.LinkInfo.Data["numqueues"])
		}
	}
	if _, err := drv.run(t.Context(), "verify", "--vm", tc.vm, "--netns", nsPath, "--root", root); err != nil {
		rep.errorf(t, "tapbridge verify while libvirt runs the guest: %v", err)
	}

	// virsh destroy: libvirt does not manage the TAP, so it stays, on the
	// bridge, with its FDB entry.
	if out, err := lv.virsh(t, "destroy", tc.vm); err != nil {
		rep.errorf(t, "virsh destroy: %v: %s", err, out)
	}
	l := testutil.IPLinkByName(t, ns, n.Tap)
	if l == nil || l.Master != bridgeName {
		rep.fatalf(t, "after virsh destroy, TAP %s = %+v, want it on %s", n.Tap, l, bridgeName)
	}
	checkTAPAfter(t, rep, ns, n)
	rx, tx := tapStats(t, ns, n.Tap)
	if rx == 0 || tx == 0 {
		rep.errorf(t, "TAP %s counters: rx %d, tx %d packets, want both > 0", n.Tap, rx, tx)
	}
	if err := drv.down(t.Context(), nsPath, root, tc.vm); err != nil {
		rep.fatalf(t, "tapbridge down: %v", err)
	}
	if l := testutil.IPLinkByName(t, ns, n.Tap); l != nil {
		rep.errorf(t, "after tapbridge down, TAP %s still exists", n.Tap)
	}
	lv.stop(t)
}

// domainXML is a transient domain booting the e2e guest under TCG on a q35
// machine, its serial console in a file, and the <interface> element
// iface (from package launch) as its only NIC.
func domainXML(tc e2eCase, g *guest, console, iface string) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>256</memory>
  <vcpu>%d</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet e2e_hold=%d</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='%s'/>
      <target port='0'/>
    </serial>
    %s
    <memballoon model='none'/>
  </devices>
</domain>
`, tc.vm, tc.cpus, g.Kernel, g.Initramfs, guestHold, console, strings.ReplaceAll(iface, "\n", "\n    "))
}

// waitMarker waits until the console file has marker, and returns the
// markers.
func waitMarker(t *testing.T, rep *report, console, marker string, timeout time.Duration) markers {
	t.Helper()
	t0 := time.Now()
	for {
		log, _ := os.ReadFile(console)
		m := parseMarkers(log)
		if m.has(marker) {
			return m
		}
		if time.Since(t0) > timeout {
			rep.fatalf(t, "no %s on the guest console within %v:\n%s", marker, timeout, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// libvirtd is the test's own libvirtd: in the test's network namespace and
// in a mount namespace of its own, where /etc/libvirt is a private config
// directory and /run, /var/lib, /var/log and /var/cache are empty tmpfs
// (libvirt's privileged paths are fixed, src/qemu/qemu_conf.c
// virQEMUDriverConfigNew: nothing is shared with a libvirtd the host may
// run), and /etc/passwd and /etc/group add the libvirt-qemu user and group
// that the QEMU driver looks up before it reads qemu.conf (the host's are
// not changed). Its sockets and pid file are in the test's directory.
type libvirtd struct {
	proc *proc
	uri  string
	sock string
}

func startLibvirtd(t *testing.T, rep *report, netNS int, dir string) *libvirtd {
	t.Helper()
	etc := filepath.Join(dir, "etc-libvirt")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{etc, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			rep.fatalf(t, "%v", err)
		}
	}
	conf := filepath.Join(dir, "libvirtd.conf")
	files := map[string]string{
		filepath.Join(etc, "qemu.conf"): qemuConf,
		conf:                            fmt.Sprintf("unix_sock_dir = %q\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\nlog_outputs = \"3:stderr\"\n", sock),
	}
	for _, name := range []string{"passwd", "group"} {
		b, err := os.ReadFile("/etc/" + name)
		if err != nil {
			rep.fatalf(t, "%v", err)
		}
		if !hasPasswdEntry(b, "libvirt-qemu") {
			line := "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
			if name == "group" {
				line = "libvirt-qemu:x:64055:\n"
			}
			b = append(b, line...)
		}
		files[filepath.Join(dir, name)] = string(b)
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			rep.fatalf(t, "%v", err)
		}
	}
	mnt, err := privateMounts(map[string]string{
		"/etc/libvirt": etc,
		"/etc/passwd":  filepath.Join(dir, "passwd"),
		"/etc/group":   filepath.Join(dir, "group"),
	}, []string{"/run", "/var/lib", "/var/log", "/var/cache"})
	if err != nil {
		rep.fatalf(t, "libvirtd mount namespace: %v", err)
	}
	t.Cleanup(func() { unix.Close(mnt) })
	p, err := startProc(t, "libvirtd", "nsenter", "--mount="+testutil.NSPath(mnt), "--net="+testutil.NSPath(netNS), "--",
		libvirtdBin, "-f", conf, "-p", filepath.Join(dir, "libvirtd.pid"))
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	lv := &libvirtd{proc: p, sock: sock, uri: "qemu:///system?socket=" + filepath.Join(sock, "libvirt-sock")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("libvirtd output:\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := lv.virsh(t, "version")
		if err == nil {
			t.Logf("libvirtd %d ready: %s", p.cmd.Process.Pid, strings.Join(strings.Fields(out), " "))
			return lv
		}
		if p.exited() || time.Now().After(deadline) {
			rep.fatalf(t, "libvirtd not ready (exited %v): %v: %s\n%s", p.exited(), err, out, p.out.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// virsh runs virsh against the test's libvirtd and returns its combined
// output.
func (l *libvirtd) virsh(t *testing.T, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, virshBin, append([]string{"-c", l.uri}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// stop ends libvirtd by its pid (SIGTERM, then SIGKILL) and waits for it.
func (l *libvirtd) stop(t *testing.T) {
	if err := l.proc.cmd.Process.Signal(unix.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SIGTERM libvirtd: %v", err)
	}
	if !l.proc.wait(30 * time.Second) {
		l.proc.kill()
	}
}

// privateMounts makes a mount namespace where each key of binds is
// bind-mounted from its value and each of tmpfs is an empty tmpfs, and
// returns an fd of it. The host's mounts are untouched: / is made private
// first. The namespace is made on a thread that is never unlocked (see
// testutil.NetNS), so no other goroutine runs in it.
func privateMounts(binds map[string]string, tmpfs []string) (int, error) {
	type result struct {
		fd  int
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: this thread ends in the new namespace.
		c <- func() result {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return result{-1, os.NewSyscallError("unshare CLONE_NEWNS", err)}
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return result{-1, fmt.Errorf("make / private: %w", err)}
			}
			for target, src := range binds {
				if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
					return result{-1, fmt.Errorf("bind %s on %s: %w", src, target, err)}
				}
			}
			for _, target := range tmpfs {
				if err := unix.Mount("tmpfs", target, "tmpfs", 0, "mode=0755"); err != nil {
					return result{-1, fmt.Errorf("tmpfs on %s: %w", target, err)}
				}
			}
			fd, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			return result{fd, err}
		}()
	}()
	r := <-c
	return r.fd, r.err
}

func hasPasswdEntry(b []byte, name string) bool {
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+":") {
			return true
		}
	}
	return false
}

func writeTemp(t *testing.T, dir, name, s string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
