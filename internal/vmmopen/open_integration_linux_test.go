package vmmopen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/launch"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// The tables below make TAPs with bridge.Config and ConfigHandoff for every
// hypervisor profile and 1, 2, 4 and 8 vCPUs, in a throwaway namespace
// holding the bridge br0, and have each VMM open them the way it does:
// Cloud Hypervisor and Firecracker through the reproductions of this
// package, QEMU for real (qemu-system-x86_64 -S, which opens its -netdev
// and realizes its -device, then waits). Every VMM gets the arguments
// package launch renders: the ones it renders for the VMM's own profile
// (what an operator who configured that VMM alone would pass), and the
// ones it renders for the profile the TAP was made with.
//
// Tests here do not call t.Parallel: a child forked while another test
// holds a TAP queue file would keep it open a little longer.

var (
	profiles = []string{config.CloudHypervisor, config.Firecracker, config.QEMU}
	vcpus    = []int{1, 2, 4, 8}
)

// env is one test's namespace, bridge and instance.
type env struct {
	ns   int
	root string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireTUN(t)
	ns := testutil.NetNS(t)
	testutil.AddBridge(t, ns, "br0")
	return &env{ns: ns, root: t.TempDir()}
}

// bridge returns a Bridge of the env's instance with profile hv: New the
// first time (it pins the bridge MAC), Open afterwards.
func (e *env) bridge(t *testing.T, hv string, open bool) *bridge.Bridge {
	t.Helper()
	c := &config.Config{RootDir: e.root, NetnsPath: testutil.NSPath(e.ns), Hypervisor: hv, GCGrace: -1}
	mk := bridge.New
	if open {
		mk = bridge.Open
	}
	b, err := mk(c, "br0")
	if err != nil {
		t.Fatalf("bridge for %s: %v", hv, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// link returns the TAP as the kernel reports it.
func (e *env) link(t *testing.T, name string) *rtnl.Link {
	t.Helper()
	c, err := rtnl.Dial(&rtnl.Config{NetNS: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.LinkByName(t.Context(), name)
	if err != nil {
		t.Fatalf("LinkByName(%s) = %v", name, err)
	}
	return l
}

// opensMQ reports whether VMM vmm, configured for a VM with cpus vCPUs by
// an operator who knows only that VMM, opens a TAP multi-queue.
func opensMQ(vmm string, cpus int) bool { return config.MultiQueue(vmm, cpus) }

// openCH opens a --net argument as Cloud Hypervisor, in the env's
// namespace with its sysfs.
func (e *env) openCH(arg string, cpus int) (*Tap, error) {
	var tap *Tap
	err := Run(e.ns, func() error {
		var err error
		tap, err = CloudHypervisor(arg, cpus, "/sys")
		return err
	})
	return tap, err
}

// openFC opens a network-interface body as Firecracker, in the env's
// namespace.
func (e *env) openFC(ifc *launch.FirecrackerNetworkInterface) (*Tap, error) {
	body, err := json.Marshal(ifc)
	if err != nil {
		return nil, err
	}
	var tap *Tap
	err = Run(e.ns, func() error {
		var err error
		tap, err = Firecracker(body)
		return err
	})
	return tap, err
}

// qemuProc is a QEMU started in the env's namespace.
type qemuProc struct {
	cmd   *exec.Cmd
	stdin io.Closer
	mu    sync.Mutex
	out   bytes.Buffer
	done  chan struct{}
}

func (q *qemuProc) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.out.Write(p)
}

func (q *qemuProc) output() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return strings.TrimSpace(q.out.String())
}

// startQEMU starts QEMU, paused (-S) on a q35 machine with the launch
// arguments args; files become its fds 3, 4, ... Cleanup kills it by pid.
func (e *env) startQEMU(t *testing.T, args []string, files []*os.File) *qemuProc {
	t.Helper()
	argv := append([]string{"--net=" + testutil.NSPath(e.ns), "--", "qemu-system-x86_64",
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "stdio", "-S",
		"-M", "q35", "-accel", "tcg", "-m", "64"}, args...)
	q := &qemuProc{cmd: exec.Command("nsenter", argv...), done: make(chan struct{})}
	q.cmd.Stdout, q.cmd.Stderr = q, q
	q.cmd.ExtraFiles = files
	// The monitor's banner comes once the netdevs are open and the devices
	// realized; stdin stays open until stop, or the monitor would see EOF.
	stdin, err := q.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	q.stdin = stdin
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("start qemu (make deps installs it): %v", err)
	}
	go func() { q.cmd.Wait(); close(q.done) }()
	t.Cleanup(func() { q.stop() })
	return q
}

func (q *qemuProc) stop() {
	q.cmd.Process.Kill()
	<-q.done
	q.stdin.Close()
}

// qemuBanner is what QEMU's monitor prints when it starts, after machine
// creation.
const qemuBanner = "monitor - type 'help'"

// qemuOpens runs QEMU with args and reports whether it opened the TAP
// (QEMU finished creating the machine and still runs, and the TAP has
// want queue files, attached or disabled) or exited, with its output.
func (e *env) qemuOpens(t *testing.T, name string, args []string, files []*os.File, want int) (bool, string) {
	t.Helper()
	q := e.startQEMU(t, args, files)
	defer q.stop()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(q.output(), qemuBanner) {
		select {
		case <-q.done:
			return false, q.output()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu %q: no monitor banner after a minute: %s", args, q.output())
		}
	}
	if n := e.link(t, name).AttachedQueues(); n != want {
		t.Errorf("qemu %q runs, and %s has %d queue files, want %d", args, name, n, want)
	}
	return true, q.output()
}

// checkVerify checks that Verify with the VMM's own profile agrees with
// the VMM: nil where it opens the TAP, a multi-queue mismatch where not.
func checkVerify(t *testing.T, b *bridge.Bridge, vmm, vm string, ok bool) {
	t.Helper()
	err := b.Verify(t.Context(), vm)
	switch {
	case ok && err != nil:
		t.Errorf("Verify(%s) with the %s profile = %v, want nil: %s opens the TAP", vm, vmm, err, vmm)
	case !ok && (!errors.Is(err, bridge.ErrMismatch) || !strings.Contains(err.Error(), "multi-queue")):
		t.Errorf("Verify(%s) with the %s profile = %v, want ErrMismatch naming multi-queue: %s cannot open the TAP", vm, vmm, err, vmm)
	}
}

func TestIntegrationOpenTable(t *testing.T) {
	for _, made := range profiles {
		for _, cpus := range vcpus {
			t.Run(fmt.Sprintf("%s/cpu%d", made, cpus), func(t *testing.T) {
				e := newEnv(t)
				b := e.bridge(t, made, false)
				vm := "vm-open"
				recs, err := b.Config(t.Context(), vm, 1, &types.VMConfig{CPU: cpus})
				if err != nil {
					t.Fatal(err)
				}
				rec := recs[0]
				tapMQ := config.MultiQueue(made, cpus)
				before := e.link(t, rec.Tap)
				if before.Tun.MultiQueue != tapMQ {
					t.Fatalf("TAP %s multi-queue %v, want %v", rec.Tap, before.Tun.MultiQueue, tapMQ)
				}
				pairs := 1
				if tapMQ {
					pairs = cpus
				}
				nic := launch.NIC{Config: rec}
				own := func(vmm string) *launch.Options { return &launch.Options{Profile: vmm, VhostOff: true} }
				madeWith := &launch.Options{Profile: made, VhostOff: true}

				// Cloud Hypervisor, configured for its own profile.
				ok := opensMQ(config.CloudHypervisor, cpus) == tapMQ
				checkVerify(t, e.bridge(t, config.CloudHypervisor, true), config.CloudHypervisor, vm, ok)
				arg, err := launch.CloudHypervisorNet(nic, own(config.CloudHypervisor))
				if err != nil {
					t.Fatal(err)
				}
				tap, err := e.openCH(arg, cpus)
				checkCH(t, e, rec.Tap, arg, tap, err, ok, cpus)
				// ... and with the arguments for the TAP's profile.
				arg, err = launch.CloudHypervisorNet(nic, madeWith)
				if err != nil {
					t.Fatal(err)
				}
				tap, err = e.openCH(arg, cpus)
				checkCH(t, e, rec.Tap, arg, tap, err, true, pairs)

				// Firecracker: its own profile is single-queue.
				ok = !tapMQ
				checkVerify(t, e.bridge(t, config.Firecracker, true), config.Firecracker, vm, ok)
				ifc, err := launch.FirecrackerInterface(nic, own(config.Firecracker))
				if err != nil {
					t.Fatal(err)
				}
				tap, err = e.openFC(ifc)
				checkFC(t, e, rec.Tap, tap, err, ok)
				// For the TAP's profile, launch refuses exactly what fails.
				if _, err := launch.FirecrackerInterface(nic, madeWith); (err == nil) != ok || (err != nil && !errors.Is(err, launch.ErrIncompatible)) {
					t.Errorf("FirecrackerInterface(profile %s, %d cpus) = %v, want ErrIncompatible iff the TAP is multi-queue (%v)", made, cpus, err, tapMQ)
				}

				// QEMU, for real.
				ok = opensMQ(config.QEMU, cpus) == tapMQ
				checkVerify(t, e.bridge(t, config.QEMU, true), config.QEMU, vm, ok)
				args, err := launch.QEMUArgs(nic, own(config.QEMU))
				if err != nil {
					t.Fatal(err)
				}
				checkQEMU(t, e, rec.Tap, args, nil, ok, cpus)
				if !ok {
					args, err = launch.QEMUArgs(nic, madeWith)
					if err != nil {
						t.Fatal(err)
					}
					checkQEMU(t, e, rec.Tap, args, nil, true, pairs)
				}

				// Every open left the TAP as Config made it.
				if err := b.Verify(t.Context(), vm); err != nil {
					t.Errorf("Verify(%s) with the %s profile after the opens = %v, want nil", vm, made, err)
				}
				after := e.link(t, rec.Tap)
				if !bytes.Equal(after.Address, before.Address) || after.MTU != before.MTU || after.AttachedQueues() != 0 {
					t.Errorf("TAP after the VMMs closed it: MAC %s MTU %d, %d queues attached; want MAC %s MTU %d, none", after.Address, after.MTU, after.AttachedQueues(), before.Address, before.MTU)
				}
			})
		}
	}
}

// checkCH checks a Cloud Hypervisor open: on success, pairs queue files
// attached, nothing changed (the TAP was up: no SIOCSIFFLAGS; no MAC or
// MTU asked: none set); on failure, the tun_flags check named the
// mismatch before any TUNSETIFF.
func checkCH(t *testing.T, e *env, name, arg string, tap *Tap, err error, ok bool, pairs int) {
	t.Helper()
	if !ok {
		if !errors.Is(err, ErrMultiQueueNoTapSupport) && !errors.Is(err, ErrMultiQueueNoDeviceSupport) {
			t.Errorf("cloud-hypervisor --net %s = %v, want its multi-queue support error from tun_flags", arg, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "cloud-hypervisor: Cannot create virtio-net device: Failed to open taps: Error related to the multiqueue support") {
			t.Errorf("cloud-hypervisor error = %q, want Cloud Hypervisor's chain", err)
		}
		return
	}
	if err != nil {
		t.Errorf("cloud-hypervisor --net %s = %v, want it to open %s", arg, err, name)
		return
	}
	defer tap.Close()
	t.Logf("cloud-hypervisor --net %s:\n\t%s", arg, strings.Join(tap.Steps, "\n\t"))
	if len(tap.Files) != pairs {
		t.Errorf("cloud-hypervisor --net %s opened %d queue files, want %d", arg, len(tap.Files), pairs)
	}
	if n := e.link(t, name).AttachedQueues(); n != pairs {
		t.Errorf("after cloud-hypervisor --net %s, %s has %d queues attached, want %d", arg, name, n, pairs)
	}
	steps := strings.Join(tap.Steps, "\n")
	if !strings.Contains(steps, "SIOCGIFFLAGS: up, left as is") || strings.Contains(steps, "SIOCSIF") {
		t.Errorf("cloud-hypervisor steps:\n%s\nwant the TAP found up and nothing set", steps)
	}
	if !strings.Contains(steps, "tun_flags") || strings.Contains(steps, "check skipped") {
		t.Errorf("cloud-hypervisor steps:\n%s\nwant tun_flags read from the namespace's sysfs", steps)
	}
}

// checkFC checks a Firecracker open: on success it attaches, activates,
// and a second Firecracker open of the same TAP fails with EBUSY; on
// failure the kernel said EINVAL.
func checkFC(t *testing.T, e *env, name string, tap *Tap, err error, ok bool) {
	t.Helper()
	if !ok {
		if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "Invalid argument (os error 22). Invalid TUN/TAP Backend provided by "+name) {
			t.Errorf("firecracker open of multi-queue %s = %v, want Firecracker's EINVAL", name, err)
		}
		return
	}
	if err != nil {
		t.Errorf("firecracker open of %s = %v, want nil", name, err)
		return
	}
	defer tap.Close()
	if err := FirecrackerActivate(tap, FirecrackerOffload); err != nil {
		t.Errorf("firecracker activate = %v, want nil", err)
	}
	t.Logf("firecracker %s:\n\t%s", name, strings.Join(tap.Steps, "\n\t"))
	if n := e.link(t, name).AttachedQueues(); n != 1 {
		t.Errorf("after firecracker opened %s, %d queues attached, want 1", name, n)
	}
	second, err := e.openFC(&launch.FirecrackerNetworkInterface{IfaceID: "net1", HostDevName: name, GuestMAC: "02:00:00:00:00:09"})
	if err == nil {
		second.Close()
	}
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "Device or resource busy (os error 16)") {
		t.Errorf("second firecracker open of %s = %v, want EBUSY", name, err)
	}
}

func checkQEMU(t *testing.T, e *env, name string, args []string, files []*os.File, ok bool, pairs int) {
	t.Helper()
	opened, out := e.qemuOpens(t, name, args, files, pairs)
	switch {
	case ok && !opened:
		t.Errorf("qemu %q exited: %s; want it to open %s", args, out, name)
	case !ok && opened:
		t.Errorf("qemu %q opened %s, want EINVAL", args, name)
	case !ok && !strings.Contains(out, "Invalid argument"):
		t.Errorf("qemu %q failed with %q, want EINVAL", args, out)
	}
}

func TestIntegrationHandoffTable(t *testing.T) {
	for _, made := range profiles {
		for _, cpus := range vcpus {
			t.Run(fmt.Sprintf("%s/cpu%d", made, cpus), func(t *testing.T) {
				e := newEnv(t)
				b := e.bridge(t, made, false)
				vm := "vm-handoff"
				hs, err := b.ConfigHandoff(t.Context(), vm, 1, &types.VMConfig{CPU: cpus})
				if err != nil {
					t.Fatal(err)
				}
				h := hs[0]
				t.Cleanup(func() {
					for _, f := range h.Queues {
						f.Close()
					}
				})
				tapMQ := config.MultiQueue(made, cpus)
				pairs := 1
				if tapMQ {
					pairs = cpus
				}
				if len(h.Queues) != pairs {
					t.Fatalf("ConfigHandoff gave %d queue files, want %d", len(h.Queues), pairs)
				}
				if err := b.Verify(t.Context(), vm); err != nil {
					t.Errorf("Verify(%s) = %v, want nil", vm, err)
				}
				fds := make([]int, len(h.Queues))
				for i, f := range h.Queues {
					fds[i] = int(f.Fd())
				}
				opts := &launch.Options{Profile: made, VhostOff: true}

				// Cloud Hypervisor fd=: the snippet opens.
				arg, err := launch.CloudHypervisorNet(launch.NIC{Config: h.Config, FDs: fds}, opts)
				if err != nil {
					t.Fatal(err)
				}
				tap, err := e.openCH(arg, cpus)
				if err != nil {
					t.Errorf("cloud-hypervisor --net %s = %v, want nil", arg, err)
				} else {
					if tap.Name != h.Config.Tap || len(tap.Files) != pairs {
						t.Errorf("cloud-hypervisor --net %s opened %s with %d files, want %s with %d", arg, tap.Name, len(tap.Files), h.Config.Tap, pairs)
					}
					tap.Close()
				}
				// A Cloud Hypervisor configured with num_queues for every
				// vCPU: Cloud Hypervisor refuses the fd count, and launch
				// refuses it first.
				if pairs != cpus {
					wrong := strings.Replace(arg, "num_queues=2,", fmt.Sprintf("num_queues=%d,", 2*cpus), 1)
					if _, err := e.openCH(wrong, cpus); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), fmt.Sprintf("Number of queues (%d) to virtio_net does not match the number of FDs (2)", 2*cpus)) {
						t.Errorf("cloud-hypervisor --net %s = %v, want VnetQueueFdMismatch", wrong, err)
					}
					if _, err := launch.CloudHypervisorNet(launch.NIC{Config: h.Config, FDs: fds}, &launch.Options{Profile: config.CloudHypervisor}); !errors.Is(err, launch.ErrInvalid) {
						t.Errorf("CloudHypervisorNet(%d fds, cloud-hypervisor profile, %d cpus) = %v, want ErrInvalid", len(fds), cpus, err)
					}
				}

				// QEMU fd=/fds=: the files become QEMU's fds 3, 4, ...
				child := make([]int, len(fds))
				for i := range child {
					child[i] = 3 + i
				}
				args, err := launch.QEMUArgs(launch.NIC{Config: h.Config, FDs: child}, opts)
				if err != nil {
					t.Fatal(err)
				}
				// The test holds the queue files too: QEMU's copies are
				// attached while it runs, so count ours and its.
				checkQEMU(t, e, h.Config.Tap, args, h.Queues, true, pairs)

				// Firecracker takes no fds; opening the held TAP by name
				// fails: EBUSY on a single-queue TAP, EINVAL on a
				// multi-queue one.
				if _, err := launch.FirecrackerInterface(launch.NIC{Config: h.Config, FDs: fds}, opts); !errors.Is(err, launch.ErrIncompatible) {
					t.Errorf("FirecrackerInterface(fds) = %v, want ErrIncompatible", err)
				}
				want := unix.EBUSY
				if tapMQ {
					want = unix.EINVAL
				}
				if tap, err := e.openFC(&launch.FirecrackerNetworkInterface{IfaceID: "net0", HostDevName: h.Config.Tap, GuestMAC: h.Config.Mac}); !errors.Is(err, want) {
					if err == nil {
						tap.Close()
					}
					t.Errorf("firecracker open of the handed-off %s = %v, want %v", h.Config.Tap, err, want)
				}

				// The TAP lives and dies with its files.
				for _, f := range h.Queues {
					f.Close()
				}
				deadline := time.Now().Add(10 * time.Second)
				for testutil.IPLinkByName(t, e.ns, h.Config.Tap) != nil {
					if time.Now().After(deadline) {
						t.Fatalf("TAP %s still exists 10s after its files were closed", h.Config.Tap)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
}
