package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/netns"
)

// NetNS creates a fresh network namespace for the test (netns.New) and
// returns an fd referring to it; t.Cleanup closes the fd, and the
// namespace disappears with the last device and socket in it.
//
// NetNS skips the test when the process lacks the privilege to create
// namespaces, and fails it on any other error.
func NetNS(t testing.TB) int {
	t.Helper()
	fd, err := netns.New()
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("skipping: creating a network namespace needs CAP_SYS_ADMIN: %v", err)
		}
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// RequireTUN skips the test when /dev/net/tun cannot be opened for a
// privilege reason or does not exist.
func RequireTUN(t testing.TB) {
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		unix.Close(fd)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, unix.ENODEV):
		t.Skipf("skipping: /dev/net/tun is missing: %v", err)
	case errors.Is(err, os.ErrPermission):
		t.Skipf("skipping: /dev/net/tun is not accessible: %v", err)
	default:
		t.Fatalf("open /dev/net/tun: %v", err)
	}
}

// NSPath returns a path through which a child process can open the namespace
// behind fd.
func NSPath(fd int) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
}

// Run runs a command inside the namespace behind ns (through nsenter) and
// returns its standard output. The test fails if the command fails.
func Run(t testing.TB, ns int, name string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(ns, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

// RunErr is Run without the test: it returns the error, with standard error
// folded into it.
func RunErr(ns int, name string, args ...string) ([]byte, error) {
	argv := append([]string{"--net=" + NSPath(ns), "--", name}, args...)
	cmd := exec.Command("nsenter", argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// IPLink is the part of `ip -j -d link show` output that tests look at.
type IPLink struct {
	Index     int      `json:"ifindex"`
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	MTU       int      `json:"mtu"`
	Qdisc     string   `json:"qdisc"`
	Master    string   `json:"master"`
	OperState string   `json:"operstate"`
	Group     string   `json:"group"`
	TxQLen    int      `json:"txqlen"`
	Address   string   `json:"address"`
	Alias     string   `json:"ifalias"`
	AltNames  []string `json:"altnames"`
	NumTx     int      `json:"num_tx_queues"`
	AddrGen   string   `json:"inet6_addr_gen_mode"`
	LinkInfo  struct {
		Kind      string         `json:"info_kind"`
		Data      map[string]any `json:"info_data"`
		SlaveKind string         `json:"info_slave_kind"`
		SlaveData map[string]any `json:"info_slave_data"`
	} `json:"linkinfo"`
}

// HasFlag reports whether the link's flag list contains f (for example "UP").
func (l *IPLink) HasFlag(f string) bool {
	for _, g := range l.Flags {
		if g == f {
			return true
		}
	}
	return false
}

// IPLinks returns `ip -j -d link show` for the namespace, keyed by name.
func IPLinks(t testing.TB, ns int) map[string]*IPLink {
	t.Helper()
	var links []*IPLink
	if err := json.Unmarshal(Run(t, ns, "ip", "-j", "-d", "link", "show"), &links); err != nil {
		t.Fatalf("decode ip -j link: %v", err)
	}
	m := make(map[string]*IPLink, len(links))
	for _, l := range links {
		m[l.Name] = l
	}
	return m
}

// IPLinkByName returns one link as iproute2 sees it, or nil if it is absent.
func IPLinkByName(t testing.TB, ns int, name string) *IPLink {
	t.Helper()
	return IPLinks(t, ns)[name]
}

// AddBridge creates a bridge inside the namespace with iproute2 and brings it
// up; extra arguments are appended to `ip link add NAME type bridge`.
func AddBridge(t testing.TB, ns int, name string, extra ...string) {
	t.Helper()
	Run(t, ns, "ip", append([]string{"link", "add", name, "type", "bridge"}, extra...)...)
	Run(t, ns, "ip", "link", "set", name, "up")
}

// FDCountBusy is FDCount without the files of /dev/net/tun that hold no
// device (an empty "iff:" line in /proc/self/fdinfo: drivers/net/tun.c,
// tun_chr_show_fdinfo): the stock a bridge.Bridge keeps opened in its
// namespace varies between calls, and holds nothing.
func FDCountBusy(t testing.TB) int {
	t.Helper()
	return settledCount(t, true)
}

// FDCount returns the number of open file descriptors of the process.
//
// Both counts first let pending finalizers run: an *os.File that an earlier
// test dropped without closing is closed by its finalizer at some garbage
// collection, and that must not show up as a change in the code under test.
func FDCount(t testing.TB) int {
	t.Helper()
	return settledCount(t, false)
}

// settledCount counts the process's fds after garbage collections until
// two counts agree (at most a few rounds).
func settledCount(t testing.TB, skipIdleTUN bool) int {
	t.Helper()
	n := -1
	for range 5 {
		runtime.GC()
		time.Sleep(2 * time.Millisecond) // finalizers run on their own goroutine
		m := countFDs(t, skipIdleTUN)
		if m == n {
			break
		}
		n = m
	}
	return n
}

func countFDs(t testing.TB, skipIdleTUN bool) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	if !skipIdleTUN {
		return len(ents)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && target == "/dev/net/tun" {
			info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
			if err == nil && bytes.Contains(info, []byte("\niff:\t\n")) {
				continue
			}
		}
		n++
	}
	return n
}
