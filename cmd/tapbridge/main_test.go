package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/gc"
)

// mainEnv makes the test binary act as tapbridge itself: the tests that
// need a separate process (signals, another uid, demos side by side)
// re-execute it with this variable set.
const mainEnv = "TAPBRIDGE_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		return // not reached: main exits
	}
	os.Exit(m.Run())
}

// tb runs the command in-process and returns its exit status and output.
func tb(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return tbCtx(t.Context(), args...)
}

func tbCtx(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelp(t *testing.T) {
	cases := [][]string{
		{"--help"}, {"-h"}, {"-help"}, {"help"},
	}
	for _, c := range commands {
		cases = append(cases, []string{c.name, "--help"}, []string{c.name, "-h"}, []string{"help", c.name})
	}
	for _, args := range cases {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			code, stdout, stderr := tb(t, args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("run(%q) = %d, stderr %q; want 0 and no stderr", args, code, stderr)
			}
			want := "Usage: tapbridge "
			switch {
			case len(args) == 2 && args[0] == "help":
				want += args[1]
			case len(args) == 2:
				want += args[0]
			default:
				want += "COMMAND"
			}
			if !strings.HasPrefix(stdout, want) {
				t.Errorf("run(%q) stdout = %q..., want prefix %q", args, firstLine(stdout), want)
			}
			if !strings.Contains(stdout, "--help") {
				t.Errorf("run(%q) stdout does not mention --help", args)
			}
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestUsageErrors checks command lines that are wrong: exit 2, one line on
// stderr with a hint, nothing on stdout. None of them reaches the kernel,
// so they need no privilege.
func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	liveFile := filepath.Join(t.TempDir(), "live")
	if err := os.WriteFile(liveFile, []byte("vm-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := func(extra ...string) []string {
		return append([]string{"up", "--bridge", "br0", "--vm", "vm-1", "--root", root}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want string // in the message
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"flag before command", []string{"--json", "ls"}, "before the command"},
		{"unknown flag", []string{"ls", "--frob"}, "flag provided but not defined"},
		{"positional", []string{"version", "extra"}, `unexpected argument "extra"`},
		{"up without bridge", []string{"up", "--vm", "vm-1", "--root", root}, "--bridge is required"},
		{"up without vm", []string{"up", "--bridge", "br0", "--root", root}, "--vm is required"},
		{"activate without vm", []string{"activate", "--root", root}, "--vm is required"},
		{"activate bad vm", []string{"activate", "--vm", "vm/1", "--root", root}, "invalid VM ID"},
		{"up bad vm", []string{"up", "--bridge", "br0", "--vm", "vm/1", "--root", root}, "invalid VM ID"},
		{"up long vm", []string{"up", "--bridge", "br0", "--vm", strings.Repeat("a", 65), "--root", root}, "invalid VM ID"},
		{"up bad bridge name", []string{"up", "--bridge", "br%d", "--vm", "vm-1", "--root", root}, `bridge device: invalid interface name "br%d"`},
		{"up nics 0", up("--nics", "0"), "0 NICs, want 1..16"},
		{"up nics 17", up("--nics", "17"), "17 NICs, want 1..16"},
		{"up nics not a number", up("--nics", "two"), "invalid value"},
		{"up cpus -1", up("--cpus", "-1"), "-1 CPUs"},
		{"up cpus 257", up("--cpus", "257"), "257 CPUs"},
		{"up queue size 3", up("--queue-size", "3"), "queue size 3"},
		{"up hypervisor", up("--hypervisor", "xen"), `hypervisor "xen"`},
		{"up bad mac", up("--mac", "zz:00"), `MAC "zz:00"`},
		{"up too many macs", up("--mac", "02:00:00:00:00:01", "--mac", "02:00:00:00:00:02"), "2 existing records for 1 NICs"},
		{"down without vm", []string{"down", "--root", root}, "--vm is required"},
		{"down bad vm", []string{"down", "--vm", "ok", "--vm", "not ok", "--root", root}, "invalid VM ID"},
		{"ls nothing recorded", []string{"ls", "--root", root}, "--bridge is required"},
		{"verify without vm", []string{"verify", "--root", root}, "--vm is required"},
		{"verify hypervisor", []string{"verify", "--vm", "vm-1", "--hypervisor", "kvm", "--root", root}, "--hypervisor"},
		{"gc without live set", []string{"gc", "--root", root}, "a live set is required"},
		{"gc dry run without live set", []string{"gc", "--dry-run", "--root", root}, "a live set is required"},
		{"gc both live sets", []string{"gc", "--live", "vm-1", "--live-file", liveFile, "--root", root}, "not both"},
		{"gc bad live id", []string{"gc", "--live", "vm-1,bad id", "--root", root}, "invalid VM ID"},
		{"gc bad grace", []string{"gc", "--live", "", "--grace", "soon", "--root", root}, "invalid value"},
		{"up bad guard", up("--guard", "paranoid"), "--guard"},
		{"bind without vm", []string{"bind", "--root", root}, "--vm is required"},
		{"bind bad ip", []string{"bind", "--vm", "vm-1", "--ip", "10.0.0.300", "--root", root}, `--ip "10.0.0.300"`},
		{"bind ip with zone", []string{"bind", "--vm", "vm-1", "--ip", "fe80::1%eth0", "--root", root}, "zone"},
		{"bind bad prefix", []string{"bind", "--vm", "vm-1", "--ip", "10.0.0.2/33", "--root", root}, "--ip"},
		{"dhcp-script no action", []string{"dhcp-script", "--root", root}, "no action"},
		{"dhcp-script bad mac", []string{"dhcp-script", "--root", root, "add", "zz", "10.0.0.2"}, `MAC "zz"`},
		{"dhcp-script unknown action", []string{"dhcp-script", "--root", root, "renew", "52:54:00:12:34:56", "10.0.0.2"}, "unknown action"},
		{"demo vms 0", []string{"demo", "--vms", "0"}, "--vms 0"},
		{"demo crash too many", []string{"demo", "--vms", "10", "--crash", "11"}, "--crash 11"},
		{"demo too many ports", []string{"demo", "--vms", "600", "--nics", "2"}, "at most 1023 ports"},
		{"demo nics 0", []string{"demo", "--nics", "0"}, "0 NICs, want 1..16"},
		{"demo workers 0", []string{"demo", "--workers", "0"}, "--workers 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := tb(t, c.args...)
			if code != exitUsage {
				t.Errorf("run(%q) = %d, want %d (stderr %q)", c.args, code, exitUsage, stderr)
			}
			if stdout != "" {
				t.Errorf("run(%q) stdout = %q, want none", c.args, stdout)
			}
			if n := strings.Count(stderr, "\n"); n != 1 || !strings.HasPrefix(stderr, "tapbridge") {
				t.Errorf("run(%q) stderr = %q, want one line starting with tapbridge", c.args, stderr)
			}
			if !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "--help") {
				t.Errorf("run(%q) stderr = %q, want it to contain %q and a --help hint", c.args, stderr, c.want)
			}
		})
	}
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 0 {
		t.Errorf("root dir after usage errors: %d entries (%v), want none", len(ents), err)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := tb(t, "version")
	if code != exitOK || stderr != "" {
		t.Fatalf("run(version) = %d, stderr %q; want 0", code, stderr)
	}
	for _, want := range []string{"tapbridge " + Version, runtime.Version()} {
		if !strings.Contains(stdout, want) {
			t.Errorf("run(version) stdout = %q, want it to contain %q", stdout, want)
		}
	}
}

func TestNetnsPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"blue", "/run/netns/blue"},
		{"/proc/1/ns/net", "/proc/1/ns/net"},
		{"./rel/ns", "./rel/ns"},
	}
	for _, c := range cases {
		if got := netnsPath(c.in); got != c.want {
			t.Errorf("netnsPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestReadLiveFile(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    []string
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# live VMs\nvm-1\n\n  vm-2  # the second\n#vm-3\n", []string{"vm-1", "vm-2"}, ""},
		{"duplicates", "vm-1\nvm-1\n", []string{"vm-1"}, ""},
		{"invalid", "vm-1\nvm 2\n", nil, ":2: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "live")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			live, err := readLiveFile(path)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("readLiveFile(%q) = %v, want error containing %q", c.content, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readLiveFile(%q) = %v, want nil error", c.content, err)
			}
			got := slices.Sorted(func(yield func(string) bool) {
				for id := range live {
					if !yield(id) {
						return
					}
				}
			})
			if !slices.Equal(got, c.want) || live == nil {
				t.Errorf("readLiveFile(%q) = %v, want %v (non-nil)", c.content, got, c.want)
			}
		})
	}
	if _, err := readLiveFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("readLiveFile(missing) = nil error, want one")
	}
}

// TestReasons checks that the dry-run list follows the library's reasons,
// sorted by TAP.
func TestReasons(t *testing.T) {
	got := reasons(map[string]gc.Reason{
		"btb-0": {Owner: "b", Reclaim: true, Code: "not-live", Detail: "owner b is not live"},
		"bta-0": {Owner: "a", Code: "live", Detail: "owner a is live"},
	})
	want := []gcReason{
		{Tap: "bta-0", VMID: "a", Reason: "live", Detail: "owner a is live"},
		{Tap: "btb-0", VMID: "b", Reclaim: true, Reason: "not-live", Detail: "owner b is not live"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("reasons() = %+v, want %+v", got, want)
	}
	if got := reasons(nil); got == nil || len(got) != 0 {
		t.Errorf("reasons(nil) = %#v, want an empty, non-nil list", got)
	}
}

func TestPrintErr(t *testing.T) {
	var b bytes.Buffer
	printErr(&b, "verify vm x: differs:\nnic 0: down\n\nnic 1: MTU 1400\n")
	want := "tapbridge: verify vm x: differs:\n  nic 0: down\n  nic 1: MTU 1400\n"
	if b.String() != want {
		t.Errorf("printErr() wrote %q, want %q", b.String(), want)
	}
}
