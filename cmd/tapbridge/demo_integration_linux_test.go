package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/tapbridge/tapbridge/internal/testutil"
)

// requireDemoPrivileges skips the test unless the process can make network
// namespaces and TAPs, as the demo does.
func requireDemoPrivileges(t *testing.T) {
	t.Helper()
	testutil.RequireTUN(t)
	testutil.NetNS(t) // skips without CAP_SYS_ADMIN; the namespace goes at cleanup
}

var (
	rootDirRE = regexp.MustCompile(`root dir (\S+)`)
	netnsRE   = regexp.MustCompile(`net:\[(\d+)\]`)
)

// demoReport is what the tests read from a demo's output.
type demoReport struct {
	rootDir string
	netns   string // inode number
}

// checkDemoOutput checks a finished demo's report for vms VMs with nics
// NICs, crash of them crashed, and returns its root dir and namespace.
func checkDemoOutput(t *testing.T, out string, vms, nics, crash int) demoReport {
	t.Helper()
	live := vms - crash
	want := []string{
		fmt.Sprintf("tapbridge demo: %d VMs x %d NICs", vms, nics),
		"  setup      throwaway network namespace net:[",
		fmt.Sprintf("  provision  %d VMs, %d TAPs in ", vms, vms*nics),
		fmt.Sprintf("  kernel     %d TAPs (%d multi-queue), %d bridge ports", vms*nics, vms*nics, vms*nics),
		fmt.Sprintf("  crash      %d VMs forgotten: their %d TAPs stay", crash, crash*nics),
		fmt.Sprintf("  gc         reclaimed %d of %d TAPs (%d crashed VMs) in ", crash*nics, vms*nics, crash),
		fmt.Sprintf("  verify     %d live VMs intact (%d TAPs)", live, live*nics),
		fmt.Sprintf("  delete     %d VMs in ", live),
		"  left       0 TAPs, 0 bridge ports",
		"  rates      create ",
	}
	for _, w := range want {
		if !strings.Contains(out, "\n"+w) && !strings.HasPrefix(out, w) {
			t.Errorf("demo output lacks a line starting %q:\n%s", w, out)
		}
	}
	if !strings.HasSuffix(out, "\ndemo: OK, nothing left behind\n") {
		t.Errorf("demo output does not end with the OK line:\n%s", out)
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
		t.Errorf("demo output to a non-terminal has progress escapes: %q", out)
	}
	var r demoReport
	if m := rootDirRE.FindStringSubmatch(out); m != nil {
		r.rootDir = m[1]
	}
	if m := netnsRE.FindStringSubmatch(out); m != nil {
		r.netns = m[1]
	}
	if r.rootDir == "" || r.netns == "" {
		t.Fatalf("demo output names no root dir or namespace:\n%s", out)
	}
	return r
}

// checkNothingLeft checks that the demo's root dir is gone, that no process
// holds its namespace any more (so the kernel destroys it and every device
// in it), and that the host namespace has no TAP named like ours. The host
// is only read.
func checkNothingLeft(t *testing.T, r demoReport) {
	t.Helper()
	if _, err := os.Stat(r.rootDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("demo root dir %s: Stat = %v, want it removed", r.rootDir, err)
	}
	if holders := netnsHolders(t, r.netns); len(holders) > 0 {
		t.Errorf("namespace net:[%s] still held by %v", r.netns, holders)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatalf("net.Interfaces() = %v", err)
	}
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "btvm-") {
			t.Errorf("host namespace has %s, want no demo TAP", i.Name)
		}
	}
}

// netnsHolders lists the /proc entries (a process's namespace or an open
// fd) that refer to the namespace with inode ino.
func netnsHolders(t *testing.T, ino string) []string {
	t.Helper()
	want := "net:[" + ino + "]"
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if l, err := os.Readlink(p + "/ns/net"); err == nil && l == want {
			out = append(out, p+"/ns/net")
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && l == want {
				out = append(out, fd)
			}
		}
	}
	return out
}

// mainCmd returns a command that runs the test binary as tapbridge.
func mainCmd(t *testing.T, exe string, args ...string) *exec.Cmd {
	t.Helper()
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), exe, args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	return cmd
}

func TestIntegrationDemo(t *testing.T) {
	requireDemoPrivileges(t)
	fds := testutil.FDCount(t)
	code, stdout, stderr := tb(t, "demo", "--vms", "10", "--crash", "3")
	if code != exitOK || stderr != "" {
		t.Fatalf("demo --vms 10 --crash 3 = %d, stderr %q; want 0 and no stderr\n%s", code, stderr, stdout)
	}
	r := checkDemoOutput(t, stdout, 10, 2, 3)
	checkNothingLeft(t, r)
	if got := testutil.FDCount(t); got != fds {
		t.Errorf("fd count after the demo = %d, want %d as before", got, fds)
	}
	t.Logf("demo output:\n%s", stdout)
}

func TestIntegrationDemoOptions(t *testing.T) {
	requireDemoPrivileges(t)
	// One NIC, one vCPU (single-queue TAPs), nothing crashed.
	code, stdout, stderr := tb(t, "demo", "--vms", "4", "--nics", "1", "--cpus", "1", "--crash", "0", "--workers", "1")
	if code != exitOK || stderr != "" {
		t.Fatalf("demo = %d, stderr %q; want 0\n%s", code, stderr, stdout)
	}
	for _, want := range []string{"4 TAPs (0 multi-queue), 4 bridge ports", "reclaimed 0 of 4 TAPs", "demo: OK, nothing left behind"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestIntegrationDemoConcurrent runs two demos at once, as separate
// processes: each has its own namespace and root dir.
func TestIntegrationDemoConcurrent(t *testing.T) {
	requireDemoPrivileges(t)
	type result struct {
		out, errOut bytes.Buffer
		cmd         *exec.Cmd
	}
	var rs [2]*result
	for i := range rs {
		r := &result{cmd: mainCmd(t, "", "demo", "--vms", "10", "--crash", "3")}
		r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errOut
		if err := r.cmd.Start(); err != nil {
			t.Fatalf("start demo %d: %v", i, err)
		}
		rs[i] = r
	}
	var reports [2]demoReport
	for i, r := range rs {
		if err := r.cmd.Wait(); err != nil || r.errOut.Len() > 0 {
			t.Fatalf("demo %d: %v, stderr %q\n%s", i, err, r.errOut.String(), r.out.String())
		}
		reports[i] = checkDemoOutput(t, r.out.String(), 10, 2, 3)
		checkNothingLeft(t, reports[i])
	}
	if reports[0].netns == reports[1].netns || reports[0].rootDir == reports[1].rootDir {
		t.Errorf("concurrent demos shared a namespace or root dir: %+v", reports)
	}
}

// TestIntegrationDemoInterrupt interrupts a demo (SIGINT, as Ctrl-C does)
// once it has set up, and checks that it cleans up and that its namespace,
// with its TAPs, is gone.
func TestIntegrationDemoInterrupt(t *testing.T) {
	requireDemoPrivileges(t)
	cmd := mainCmd(t, "", "demo", "--vms", "400", "--crash", "100")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(pipe)
	signalled := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !signalled && strings.Contains(sc.Text(), "root dir ") {
			// The demo provisions next: interrupt it there.
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	_, _ = io.Copy(io.Discard, pipe)
	werr := cmd.Wait()
	if !signalled {
		t.Fatalf("demo never printed its root dir:\n%s\nstderr %q", out.String(), errOut.String())
	}
	var exit *exec.ExitError
	switch {
	case werr == nil:
		// It finished before the signal arrived; still nothing may remain.
		t.Logf("demo finished before the interrupt:\n%s", out.String())
	case errors.As(werr, &exit) && exit.ExitCode() == exitFail:
		if s := errOut.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "tapbridge: demo: interrupted") {
			t.Errorf("interrupted demo stderr = %q, want one line saying it was interrupted", s)
		}
		t.Logf("interrupted demo:\n%sstderr: %s", out.String(), errOut.String())
	default:
		t.Fatalf("interrupted demo: %v, want exit status %d; stderr %q", werr, exitFail, errOut.String())
	}
	var r demoReport
	if m := rootDirRE.FindStringSubmatch(out.String()); m != nil {
		r.rootDir = m[1]
	}
	if m := netnsRE.FindStringSubmatch(out.String()); m != nil {
		r.netns = m[1]
	}
	checkNothingLeft(t, r)
}

// TestIntegrationNotRoot runs the command as an unprivileged user: one
// clear line, exit 1.
func TestIntegrationNotRoot(t *testing.T) {
	requireDemoPrivileges(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: changing to another uid needs root")
	}
	// A copy of the test binary that the other user can run.
	dir, err := os.MkdirTemp("", "tapbridge-notroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "tapbridge")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := testutil.NetNS(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--vms", "2", "--crash", "1"}, "tapbridge: demo: needs root (CAP_SYS_ADMIN"},
		{[]string{"up", "--bridge", "br0", "--vm", "vm-1", "--netns", testutil.NSPath(ns), "--root", filepath.Join(dir, "root")},
			"(tapbridge needs root, or CAP_NET_ADMIN)"},
	}
	for _, c := range cases {
		cmd := mainCmd(t, exe, c.args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitFail {
			t.Errorf("tapbridge %q as uid 65534: %v, want exit status %d (stderr %q)", c.args, err, exitFail, stderr.String())
		}
		if s := stderr.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, c.want) {
			t.Errorf("tapbridge %q as uid 65534 stderr = %q, want one line containing %q", c.args, s, c.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("tapbridge %q as uid 65534 stdout = %q, want none", c.args, stdout.String())
		}
	}
}
