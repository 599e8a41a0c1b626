package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/internal/testutil"
)

// The two-host harness: each host is a network namespace with br0 and a
// VXLAN port on it, and its own zebra and bgpd; the hosts reach each other
// over a veth pair (the underlay), and iBGP carries EVPN between them.
const (
	vxlanDev    = "vxlan100"
	vni         = "100"
	vxlanPort   = "4789"
	asn         = "65000"
	underlayNet = "10.98.0."
	frrDir      = "/usr/lib/frr" // Debian's frr package puts the daemons here
	// zlogTmpBase is where FRR 8.4's logging keeps per-thread buffers,
	// in <daemon>.<pid>/ (lib/zlog.c zlog_init; not configurable). A
	// daemon that exits cleanly removes its directory; one that did not
	// is removed by the harness, by the pid it started.
	zlogTmpBase = "/var/tmp/frr"
	zeroMAC     = "00:00:00:00:00:00"
)

// evpnHost is one host of the harness.
type evpnHost struct {
	name     string // "a", "b": used in process names and messages
	ns       int
	nsPath   string
	underlay string // the host's underlay address, its VTEP
	frr      string // FRR's files (config, sockets, pid files, logs); owned by the frr user
	root     string // the tapbridge instance's root dir
	zebra    *proc
	bgpd     *proc
}

// frrIDs returns the uid and gid of the frr user. FRR's daemons must run
// as it: run as root (-u root) they refuse to start because root is not in
// the vty group the package was built with (frrvty; lib/privs.c).
func frrIDs() (int, int, error) {
	u, err := user.Lookup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("user frr (the frr package makes it): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, err
	}
	return uid, gid, nil
}

// newEVPNHosts makes n hosts on one underlay segment (a veth pair for two
// hosts), each with br0 + vxlan100 and its own zebra and bgpd, and waits
// until every host has every other host's VTEP as a flood entry on its
// VXLAN port: the BGP sessions are up and the type-3 (IMET) routes went
// both ways. Everything is inside the test's namespaces and temp dirs and
// stopped in t.Cleanup.
func newEVPNHosts(t *testing.T, rep *report) []*evpnHost {
	t.Helper()
	uid, gid, err := frrIDs()
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	hosts := []*evpnHost{{name: "a"}, {name: "b"}}
	for i, h := range hosts {
		h.ns = testutil.NetNS(t)
		h.nsPath = testutil.NSPath(h.ns)
		h.underlay = underlayNet + strconv.Itoa(i+1)
		dir := t.TempDir()
		h.root = filepath.Join(dir, "root")
		h.frr = filepath.Join(dir, "frr")
		// The daemons drop to the frr user before they read their
		// config: they must be able to reach and write their directory.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			rep.fatalf(t, "%v", err)
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			rep.fatalf(t, "%v", err)
		}
		if err := os.Mkdir(h.frr, 0o700); err != nil {
			rep.fatalf(t, "%v", err)
		}
		if err := os.Chown(h.frr, uid, gid); err != nil {
			rep.fatalf(t, "%v", err)
		}
		testutil.Run(t, h.ns, "ip", "link", "set", "lo", "up")
	}
	a, b := hosts[0], hosts[1]
	testutil.Run(t, a.ns, "ip", "link", "add", "u0", "mtu", "1550", "type", "veth", "peer", "name", "u0", "mtu", "1550", "netns", b.nsPath)
	for _, h := range hosts {
		testutil.Run(t, h.ns, "ip", "addr", "add", h.underlay+"/24", "dev", "u0")
		testutil.Run(t, h.ns, "ip", "link", "set", "u0", "up")
		// The overlay: VXLAN with the kernel's learning off, since the
		// remote MACs come from BGP (zebra installs them as
		// extern_learn), and learning off on its bridge port too.
		testutil.AddBridge(t, h.ns, bridgeName)
		testutil.Run(t, h.ns, "ip", "link", "add", vxlanDev, "type", "vxlan", "id", vni,
			"local", h.underlay, "dstport", vxlanPort, "nolearning")
		testutil.Run(t, h.ns, "ip", "link", "set", vxlanDev, "master", bridgeName)
		testutil.Run(t, h.ns, "bridge", "link", "set", "dev", vxlanDev, "learning", "off")
		testutil.Run(t, h.ns, "ip", "link", "set", vxlanDev, "up")
	}
	for _, h := range hosts {
		var peers []string
		for _, o := range hosts {
			if o != h {
				peers = append(peers, o.underlay)
			}
		}
		h.startFRR(t, rep, uid, gid, peers)
	}
	for _, h := range hosts {
		for _, o := range hosts {
			if o == h {
				continue
			}
			if err := h.waitFDB(t, 60*time.Second, func(es []fdbEntry) bool {
				return hasEntry(es, func(e fdbEntry) bool { return e.MAC == zeroMAC && e.Dst == o.underlay })
			}); err != nil {
				rep.fatalf(t, "host %s: no flood entry for VTEP %s on %s (BGP EVPN session not up): %v\n%s", h.name, o.underlay, vxlanDev, err, h.vtysh(t, "show bgp l2vpn evpn summary"))
			}
		}
	}
	return hosts
}

// startFRR writes zebra's and bgpd's configs and starts both in the host's
// namespace, with every path they use (config, pid file, zserv socket, vty
// socket dir, log) in h.frr; TCP vty is off (-P 0). Neither /etc/frr nor
// /var/run/frr is read or written.
func (h *evpnHost) startFRR(t *testing.T, rep *report, uid, gid int, peers []string) {
	t.Helper()
	zebraConf := "hostname " + h.name + "\n"
	var bgp strings.Builder
	fmt.Fprintf(&bgp, "hostname %s\nrouter bgp %s\n bgp router-id %s\n no bgp default ipv4-unicast\n", h.name, asn, h.underlay)
	for _, p := range peers {
		// timers connect 1: the peer may not listen yet when this bgpd
		// first tries, and the default retry is 120 s.
		fmt.Fprintf(&bgp, " neighbor %s remote-as %s\n neighbor %s timers 3 9\n neighbor %s timers connect 1\n", p, asn, p, p)
	}
	bgp.WriteString(" address-family l2vpn evpn\n")
	for _, p := range peers {
		fmt.Fprintf(&bgp, "  neighbor %s activate\n", p)
	}
	bgp.WriteString("  advertise-all-vni\n exit-address-family\n")
	// vtysh.conf only so that vtysh --config_dir finds one and says
	// nothing: it never reads /etc/frr.
	for name, conf := range map[string]string{"zebra.conf": zebraConf, "bgpd.conf": bgp.String(), "vtysh.conf": ""} {
		p := filepath.Join(h.frr, name)
		if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
			rep.fatalf(t, "%v", err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			rep.fatalf(t, "%v", err)
		}
	}
	zserv := filepath.Join(h.frr, "zserv.api")
	h.zebra = h.startDaemon(t, rep, "zebra", "-z", zserv)
	// bgpd retries its zserv connection, but starting it once zebra
	// listens makes the start order deterministic.
	if err := waitPath(zserv, h.zebra, 30*time.Second); err != nil {
		rep.fatalf(t, "host %s: %v\n%s", h.name, err, h.zebra.out.String())
	}
	h.bgpd = h.startDaemon(t, rep, "bgpd", "-z", zserv)
	if err := waitPath(filepath.Join(h.frr, "bgpd.vty"), h.bgpd, 30*time.Second); err != nil {
		rep.fatalf(t, "host %s: %v\n%s", h.name, err, h.bgpd.out.String())
	}
}

// startDaemon starts one FRR daemon in the host's namespace. nsenter execs
// the daemon in place, so the pid startProc holds is the daemon's.
func (h *evpnHost) startDaemon(t *testing.T, rep *report, daemon string, extra ...string) *proc {
	t.Helper()
	argv := []string{"nsenter", "--net=" + h.nsPath, "--", filepath.Join(frrDir, daemon),
		"-f", filepath.Join(h.frr, daemon+".conf"),
		"-i", filepath.Join(h.frr, daemon+".pid"),
		"--vty_socket", h.frr, "-P", "0",
		"--log", "file:" + filepath.Join(h.frr, daemon+".log")}
	p, err := startProc(t, daemon+"-"+h.name, append(argv, extra...)...)
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	log := filepath.Join(h.frr, daemon+".log")
	// Registered after startProc's kill, so it runs first: a clean
	// SIGTERM lets the daemon withdraw its routes and remove its zlog
	// directory. The daemon changes its credentials (to the frr user),
	// which clears the parent-death signal (prctl(2) PR_SET_PDEATHSIG):
	// only this cleanup stops it.
	t.Cleanup(func() {
		p.terminate(5 * time.Second)
		os.RemoveAll(filepath.Join(zlogTmpBase, daemon+"."+strconv.Itoa(p.cmd.Process.Pid)))
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("host %s %s output:\n%s\nlog:\n%s", h.name, daemon, p.out.String(), tail(b, 4000))
		}
	})
	return p
}

// terminate sends SIGTERM and waits up to timeout for the process to exit,
// then kills it.
func (p *proc) terminate(timeout time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.wait(timeout) {
		p.kill()
	}
}

// waitPath waits until path exists, failing early if p exits.
func waitPath(path string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before %s existed", p.name, p.err, path)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %v", p.name, path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vtysh runs one command on the host's FRR through its private vty socket
// directory. --config_dir keeps vtysh from reading /etc/frr/vtysh.conf.
// It returns the output, or the error text: it is for logs and
// assertions on state, never fatal by itself.
func (h *evpnHost) vtysh(t testing.TB, cmd string) string {
	t.Helper()
	out, err := exec.Command("vtysh", "--vty_socket", h.frr, "--config_dir", h.frr, "-c", cmd).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("vtysh -c %q: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// evpnMAC is one MAC of `show evpn mac vni 100 json`.
type evpnMAC struct {
	Type       string `json:"type"` // local or remote
	Intf       string `json:"intf"`
	RemoteVTEP string `json:"remoteVtep"`
	LocalSeq   int    `json:"localSequence"`
	RemoteSeq  int    `json:"remoteSequence"`
	Duplicate  bool   `json:"isDuplicate"`
	Sticky     bool   `json:"isSticky"`
}

// evpnMACs returns zebra's view of the VNI's MACs.
func (h *evpnHost) evpnMACs(t testing.TB) (map[string]evpnMAC, error) {
	t.Helper()
	out, err := exec.Command("vtysh", "--vty_socket", h.frr, "--config_dir", h.frr, "-c", "show evpn mac vni "+vni+" json").Output()
	if err != nil {
		return nil, fmt.Errorf("vtysh show evpn mac: %w", err)
	}
	var v struct {
		MACs map[string]evpnMAC `json:"macs"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("decode show evpn mac: %w in %q", err, out)
	}
	return v.MACs, nil
}

// fdbEntry is one element of `bridge -j fdb show`.
type fdbEntry struct {
	MAC    string   `json:"mac"`
	Dev    string   `json:"ifname"`
	Dst    string   `json:"dst"`
	Master string   `json:"master"`
	State  string   `json:"state"`
	Flags  []string `json:"flags"`
}

func (e fdbEntry) has(flag string) bool {
	for _, f := range e.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

func (e fdbEntry) String() string {
	s := e.MAC + " dev " + e.Dev
	if e.Dst != "" {
		s += " dst " + e.Dst
	}
	if e.Master != "" {
		s += " master " + e.Master
	}
	if len(e.Flags) > 0 {
		s += " " + strings.Join(e.Flags, " ")
	}
	if e.State != "" {
		s += " " + e.State
	}
	return s
}

func hasEntry(es []fdbEntry, f func(fdbEntry) bool) bool {
	for _, e := range es {
		if f(e) {
			return true
		}
	}
	return false
}

// fdb returns the host's forwarding entries on br0's ports and the VXLAN
// device (`bridge -j fdb show br br0` lists both the bridge's entries and
// the VXLAN device's own).
func (h *evpnHost) fdb(t testing.TB) []fdbEntry {
	t.Helper()
	var es []fdbEntry
	out, err := testutil.RunErr(h.ns, "bridge", "-j", "fdb", "show", "br", bridgeName)
	if err == nil {
		err = json.Unmarshal(out, &es)
	}
	if err != nil {
		t.Fatalf("host %s: bridge -j fdb show: %v", h.name, err)
	}
	return es
}

// macEntries returns the host's entries for mac.
func (h *evpnHost) macEntries(t testing.TB, mac string) []fdbEntry {
	t.Helper()
	var out []fdbEntry
	for _, e := range h.fdb(t) {
		if strings.EqualFold(e.MAC, mac) {
			out = append(out, e)
		}
	}
	return out
}

// waitFDB polls the host's FDB until ok holds, for at most timeout.
func (h *evpnHost) waitFDB(t testing.TB, timeout time.Duration, ok func([]fdbEntry) bool) error {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		es := h.fdb(t)
		if ok(es) {
			return nil
		}
		if time.Now().After(deadline) {
			var s []string
			for _, e := range es {
				s = append(s, e.String())
			}
			return fmt.Errorf("not within %v; FDB:\n  %s", timeout, strings.Join(s, "\n  "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// remoteOn reports whether es has mac as a remote (BGP-learned) entry on
// the VXLAN port: the bridge entry zebra installs with extern_learn.
func remoteOn(es []fdbEntry, mac string) bool {
	return hasEntry(es, func(e fdbEntry) bool {
		return strings.EqualFold(e.MAC, mac) && e.Dev == vxlanDev && e.Master == bridgeName && e.has("extern_learn")
	})
}

// anyOf reports whether es has any entry for mac.
func anyOf(es []fdbEntry, mac string) bool {
	return hasEntry(es, func(e fdbEntry) bool { return strings.EqualFold(e.MAC, mac) })
}

// fdbMonitor is `bridge -timestamp monitor fdb` in a host's namespace:
// iproute2 stamps each notification as it reads it, so the time a remote
// entry appeared is known to the microsecond, without polling.
type fdbMonitor struct {
	p *proc
}

func (h *evpnHost) monitorFDB(t *testing.T, rep *report) *fdbMonitor {
	t.Helper()
	p, err := startProc(t, "bridge-monitor-"+h.name, "nsenter", "--net="+h.nsPath, "--", "bridge", "-timestamp", "monitor", "fdb")
	if err != nil {
		rep.fatalf(t, "%v", err)
	}
	return &fdbMonitor{p: p}
}

// fdbEvent is one notification the monitor printed.
type fdbEvent struct {
	at      time.Time
	deleted bool
	line    string
}

// events parses what the monitor printed so far: "Timestamp: Mon Dec  7
// 23:32:22 2026 734936 usec" lines, each followed by the notification.
func (m *fdbMonitor) events() []fdbEvent {
	return parseMonitor(m.p.out.String(), time.Local)
}

func parseMonitor(out string, loc *time.Location) []fdbEvent {
	var evs []fdbEvent
	var at time.Time
	for _, l := range strings.Split(out, "\n") {
		if ts, ok := strings.CutPrefix(l, "Timestamp: "); ok {
			f := strings.Fields(ts)
			// Mon Dec 7 23:32:22 2026 734936 usec
			if len(f) == 7 {
				t0, err := time.ParseInLocation("Mon Jan 2 15:04:05 2006", strings.Join(f[:5], " "), loc)
				us, uerr := strconv.Atoi(f[5])
				if err == nil && uerr == nil {
					at = t0.Add(time.Duration(us) * time.Microsecond)
					continue
				}
			}
			at = time.Time{}
			continue
		}
		if strings.TrimSpace(l) == "" || at.IsZero() {
			continue
		}
		d, deleted := strings.CutPrefix(l, "Deleted ")
		evs = append(evs, fdbEvent{at: at, deleted: deleted, line: strings.TrimSpace(d)})
		at = time.Time{}
	}
	return evs
}

// waitRemote waits until the monitor saw mac appear (or, with deleted,
// go) as a remote entry on br0's VXLAN port after since, and returns when.
func (m *fdbMonitor) waitRemote(mac string, deleted bool, since time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	want := strings.ToLower(mac) + " dev " + vxlanDev + " "
	for {
		for _, e := range m.events() {
			if e.deleted == deleted && !e.at.Before(since) && strings.HasPrefix(strings.ToLower(e.line), want) &&
				strings.Contains(e.line, "master "+bridgeName) && strings.Contains(e.line, "extern_learn") {
				return e.at, nil
			}
		}
		if m.p.exited() {
			return time.Time{}, fmt.Errorf("bridge monitor exited: %v\n%s", m.p.err, m.p.out.String())
		}
		if time.Now().After(deadline) {
			return time.Time{}, errors.New("not within " + timeout.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
