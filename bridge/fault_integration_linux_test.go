package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// The fault tests run a scenario in a child process (this test binary
// again, running only TestIntegrationFaultHelperProcess) whose Bridge hook
// (hooks_linux.go) kills the child with SIGKILL at one point of the create,
// delete, reaper or GC path. The child records in a fileLiveSet the VMs
// whose Config returned (and forgets a VM before deleting it), as a control
// plane would. Afterwards the parent runs a normal GC with that live set
// and checks that the namespace holds exactly the live VMs' TAPs, intact.
//
// TestIntegrationGCAfterConfigCrash (gc_integration_linux_test.go) already
// kills a Config loop at random moments, and TestIntegrationGCAfterReaperCrash
// kills a process whose reaper has not run; these tests hit each point
// deterministically instead.

// The fault child's environment.
const (
	faultPointEnv    = "TAPBRIDGE_FAULT_POINT" // the hook point to die at
	faultScenarioEnv = "TAPBRIDGE_FAULT_SCENARIO"
	faultNetnsEnv    = "TAPBRIDGE_FAULT_NETNS"
	faultRootEnv     = "TAPBRIDGE_FAULT_ROOT"
	faultLiveEnv     = "TAPBRIDGE_FAULT_LIVE"
)

// Fault scenarios: what the child does once it has made its live VMs
// (vm-live0 with 2 NICs, vm-live1 with 1) and armed the hook.
const (
	faultNewVM   = "new-vm"   // Config of vm-victim, 3 multi-queue NICs
	faultRepair  = "repair"   // Config of vm-live0 again (all TAPs adopted)
	faultGrow    = "grow"     // Config of vm-live0 with 3 NICs instead of 2
	faultQueued  = "queued"   // Delete of vm-gone (2 NICs) with a reaper that waits an hour
	faultReaper  = "reaper"   // Delete of vm-gone with a reaper that runs at once
	faultSyncDel = "sync-del" // synchronous Delete of vm-gone
	faultGC      = "gc"       // a GC cycle that reclaims vm-dead0 (2 NICs) and vm-dead1 (1 NIC)
)

// hookDeleteMarked is the fault point between the two halves of a
// deletion batch: the TAPs moved into the reserved group, the group not
// yet deleted. Production sends both in one batch; a process dies between
// them only when the batch spans several sendmsg windows (more than rtnl's
// 128 requests) or its context ends there. The child reaches the point
// through splitConn, which runs the very batch production sends in two
// parts.
const hookDeleteMarked = "delete-marked"

// splitConn runs every batch that deletes a group in two parts, the
// requests before the deletion and the rest, and calls at in between.
type splitConn struct {
	conn
	at func()
}

func (c *splitConn) Exec(ctx context.Context, b *rtnl.Batch) ([]error, error) {
	for i := 1; i < b.Len(); i++ {
		if strings.HasPrefix(b.Op(i), "delete group ") {
			head, _ := c.conn.Exec(ctx, b.Slice(0, i))
			c.at()
			tail, _ := c.conn.Exec(ctx, b.Slice(i, b.Len()))
			res := append(head, tail...)
			return res, errors.Join(res...)
		}
	}
	return c.conn.Exec(ctx, b)
}

// faultConfig is the child's and the parent's instance configuration.
func faultConfig(root, nsPath, scenario string) *config.Config {
	c := &config.Config{RootDir: root, NetnsPath: nsPath, GCGrace: -1, Hypervisor: config.QEMU}
	switch scenario {
	case faultQueued:
		c.ReapInterval, c.ReapBatch = time.Hour, 1<<20
	case faultReaper:
		c.ReapInterval = time.Millisecond
	case faultSyncDel:
		c.SyncDelete = true
	}
	return c
}

// TestIntegrationFaultHelperProcess is the fault tests' child; run directly
// it does nothing. It says "hit POINT" just before it kills itself, and
// exits with status 3 if the point was never reached.
func TestIntegrationFaultHelperProcess(t *testing.T) {
	point := os.Getenv(faultPointEnv)
	if point == "" {
		return
	}
	scenario := os.Getenv(faultScenarioEnv)
	ctx := context.Background()
	live := newFileLiveSet(os.Getenv(faultLiveEnv))
	b, err := New(faultConfig(os.Getenv(faultRootEnv), os.Getenv(faultNetnsEnv), scenario), testBridge)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	var armed atomic.Bool
	b.hook = func(p string) {
		if armed.Load() && p == point {
			fmt.Printf("hit %s\n", p) // os.Stdout is not buffered
			unix.Kill(os.Getpid(), unix.SIGKILL)
			select {} // the signal is delivered on the way out of kill(2)
		}
	}
	b.setWrap(func(c conn) conn { return &splitConn{conn: c, at: func() { b.hook(hookDeleteMarked) }} })
	up := func(id string, nics int) {
		recs, err := b.Config(ctx, id, nics, &types.VMConfig{CPU: 2})
		if err != nil {
			t.Fatalf("Config(%s) = %v", id, err)
		}
		n, err := b.Inspect(ctx, id)
		if err != nil {
			t.Fatalf("Inspect(%s) = %v", id, err)
		}
		e := &liveEntry{State: liveUp, Proc: "c", Profile: config.QEMU, NICs: nics, CPU: 2}
		for k, r := range recs {
			e.TAPs, e.MACs, e.Index = append(e.TAPs, r.Tap), append(e.MACs, r.Mac), append(e.Index, n.Links[k].Index)
		}
		if err := live.update(ctx, true, func(m map[string]*liveEntry) error {
			m[id] = e
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	forget := func(id string) {
		if err := live.update(ctx, true, func(m map[string]*liveEntry) error {
			delete(m, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	up("vm-live0", 2)
	up("vm-live1", 1)
	if scenario == faultReaper || scenario == faultQueued {
		b.StartReaper()
	}
	switch scenario {
	case faultNewVM:
		armed.Store(true)
		b.Config(ctx, "vm-victim", 3, &types.VMConfig{CPU: 2})
	case faultRepair:
		armed.Store(true)
		b.Config(ctx, "vm-live0", 2, &types.VMConfig{CPU: 2})
	case faultGrow:
		armed.Store(true)
		b.Config(ctx, "vm-live0", 3, &types.VMConfig{CPU: 2})
	case faultQueued, faultReaper, faultSyncDel:
		up("vm-gone", 2)
		forget("vm-gone")
		armed.Store(true)
		if _, err := b.Delete(ctx, []string{"vm-gone"}); err != nil {
			t.Fatalf("Delete(vm-gone) = %v", err)
		}
		time.Sleep(time.Minute) // the reaper's turn
	case faultGC:
		// Crashed VMs: made, recorded, forgotten without a Delete.
		up("vm-dead0", 2)
		up("vm-dead1", 1)
		forget("vm-dead0")
		forget("vm-dead1")
		o := gc.New()
		b.RegisterGC(o) // copies b.hook
		gc.Register(o, live.module())
		armed.Store(true)
		if err := o.Run(ctx); err != nil {
			t.Fatalf("GC Run = %v", err)
		}
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
	fmt.Printf("point %s not reached in scenario %s\n", point, scenario)
	os.Exit(3)
}

// tapsOf returns the namespace's TUN/TAP devices tagged for vmID by inst.
func tapsOf(t *testing.T, f *fixture, inst owner.Instance, vmID string) []*testutil.IPLink {
	t.Helper()
	return slices.Collect(maps.Values(f.vmTAPs(t, inst, vmID)))
}

func TestIntegrationFaultKill(t *testing.T) {
	type state struct {
		f    *fixture
		inst owner.Instance
		live map[string]*liveEntry // what the child recorded, read after its death
	}
	group := func(s *state) string { return strconv.FormatUint(uint64(s.inst.Group()), 10) }
	// checkVMTAPs fails unless vmID has n TAPs, all in the reserved group
	// (doomed) or none of them.
	checkVMTAPs := func(t *testing.T, s *state, vmID string, n int, doomed bool) {
		t.Helper()
		taps := tapsOf(t, s.f, s.inst, vmID)
		if len(taps) != n {
			t.Errorf("after the kill vm %s has %d TAPs, want %d", vmID, len(taps), n)
		}
		for _, l := range taps {
			if got := l.Group == group(s); got != doomed {
				t.Errorf("after the kill TAP %s of vm %s is in group %s; want it in the reserved group %s: %v", l.Name, vmID, l.Group, group(s), doomed)
			}
		}
	}
	tests := []struct {
		scenario, point string
		// before checks what the kill left, before the parent's GC.
		before func(t *testing.T, s *state)
		// reclaimed is the number of TAPs the parent's GC must reclaim.
		reclaimed int
		// rerun: a live VM's own Config was cut short; as a restarted
		// control plane does, the parent runs it again (with the recorded
		// NIC count and records) before comparing with the live set.
		// verifyBefore is what Verify says of it before that ("" for
		// nil).
		rerun, verifyBefore string
	}{
		// A kill after TUNSETIFF and before the setup batch: the TAPs are
		// held only by the child's files, so its death removes them.
		{scenario: faultNewVM, point: hookAfterCreate, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-victim", 0, false)
		}},
		// The setup batch (tags, master, up, FDB) is one sendmsg, which
		// the kernel processes whole before returning (rtnetlink_rcv runs
		// in the sender's syscall): no kill can fall inside it. After it,
		// before persist, the TAPs are tagged and enslaved but still
		// transient: the death removes them too.
		{scenario: faultNewVM, point: hookAfterSetup, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-victim", 0, false)
		}},
		// NIC 0 made persistent, NICs 1 and 2 not: NIC 0 stays, tagged,
		// and GC reclaims it (the VM was never recorded live).
		{scenario: faultNewVM, point: hookPersisted, reclaimed: 1, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-victim", 1, false)
		}},
		// A re-Config of a live VM cut short leaves its TAPs intact.
		{scenario: faultRepair, point: hookAfterCreate},
		{scenario: faultRepair, point: hookAfterSetup},
		// Growing a live VM: before the setup batch nothing of the VM has
		// changed; after it, its tags already say 3 NICs, so its Config
		// must run again (as after any crash of a Config); after NIC 2 was
		// made persistent, the re-run with 2 NICs deletes it.
		{scenario: faultGrow, point: hookAfterCreate, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-live0", 2, false)
		}},
		{scenario: faultGrow, point: hookAfterSetup, rerun: "vm-live0", verifyBefore: "nic 2: TAP missing (the VM has 3 NICs)", before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-live0", 2, false)
		}},
		// NIC 2 is persistent, tagged and on the bridge but not up yet:
		// Config brings links up after closing their files.
		{scenario: faultGrow, point: hookPersisted, rerun: "vm-live0", verifyBefore: "nic 2 (btvm-live0-2): down", before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-live0", 3, false)
		}},
		// Delete doomed the VM's TAPs (moved them into the reserved group)
		// and returned; the reaper never ran.
		{scenario: faultQueued, point: hookDeleteQueued, reclaimed: 2, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-gone", 2, true)
		}},
		// The reaper started its group deletion and died; a synchronous
		// Delete moved the TAPs into the reserved group and died before
		// deleting the group.
		{scenario: faultReaper, point: hookReaping, reclaimed: 2, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-gone", 2, true)
		}},
		{scenario: faultSyncDel, point: hookDeleteMarked, reclaimed: 2, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-gone", 2, true)
		}},
		// GC re-checked its orphans, then died before deleting them; or
		// died with them marked.
		{scenario: faultGC, point: hookGCRechecked, reclaimed: 3, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-dead0", 2, false)
			checkVMTAPs(t, s, "vm-dead1", 1, false)
		}},
		{scenario: faultGC, point: hookDeleteMarked, reclaimed: 3, before: func(t *testing.T, s *state) {
			checkVMTAPs(t, s, "vm-dead0", 2, true)
			checkVMTAPs(t, s, "vm-dead1", 1, true)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+tt.point, func(t *testing.T) {
			f := newFixture(t, nil)
			root := t.TempDir()
			livePath := filepath.Join(t.TempDir(), "vms.json")
			c := startHelper(t, "TestIntegrationFaultHelperProcess",
				faultPointEnv+"="+tt.point, faultScenarioEnv+"="+tt.scenario,
				faultNetnsEnv+"="+testutil.NSPath(f.ns), faultRootEnv+"="+root, faultLiveEnv+"="+livePath)
			lines, err := c.wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != -1 || !slices.Contains(lines, "hit "+tt.point) {
				t.Fatalf("helper process = %v, want it killed by SIGKILL after saying %q; it said:\n%s", err, "hit "+tt.point, strings.Join(lines, "\n"))
			}
			s := &state{f: f, inst: owner.InstanceOf(root)}
			live := newFileLiveSet(livePath)
			if s.live, err = live.snapshot(t.Context()); err != nil {
				t.Fatal(err)
			}

			// Whatever the kill cut short, no TUN/TAP device is left
			// untagged: the create path keeps a TAP transient until its
			// tag is on.
			for name, l := range gcTUNs(t, f) {
				var tag owner.Tag
				if !owner.ParseTag(l.Alias, &tag) || tag.Instance != s.inst || !tunFlag(t, l, "persist") {
					t.Errorf("after the kill, %s (alias %q, persistent %v) is not a tagged persistent TAP of the instance",
						name, l.Alias, l.LinkInfo.Data["persist"])
				}
			}
			if tt.before != nil {
				tt.before(t, s)
			}

			// A normal GC with the live set the child left.
			b := f.newBridge(t, faultConfig(root, "", ""))
			o := gc.New()
			b.RegisterGC(o)
			gc.Register(o, live.module())
			mr := gcRun(t, o, s.inst)
			if len(mr.Reclaimed) != tt.reclaimed {
				t.Errorf("GC after the kill reclaimed %v, want %d TAPs", mr.Reclaimed, tt.reclaimed)
			}
			if tt.rerun != "" {
				err := b.Verify(t.Context(), tt.rerun)
				if tt.verifyBefore == "" && err != nil || tt.verifyBefore != "" && (err == nil || !strings.HasSuffix(err.Error(), "\n"+tt.verifyBefore)) {
					t.Errorf("Verify(%q) after its Config was killed = %v, want %q", tt.rerun, err, tt.verifyBefore)
				}
				e := s.live[tt.rerun]
				var existing []*types.NetworkConfig
				for k := range e.TAPs {
					existing = append(existing, &types.NetworkConfig{Tap: e.TAPs[k], Mac: e.MACs[k]})
				}
				mustConfig(t, b, tt.rerun, e.NICs, &types.VMConfig{CPU: e.CPU}, existing...)
			}

			// Exactly the live set: each live VM intact on the TAPs
			// recorded for it (same ifindexes), nothing else.
			var want []string
			for _, id := range slices.Sorted(maps.Keys(s.live)) {
				e := s.live[id]
				want = append(want, e.TAPs...)
				if err := b.Verify(t.Context(), id); err != nil {
					t.Errorf("Verify(%q) of a live VM after the kill and GC = %v, want nil", id, err)
				}
				links := f.links(t)
				for k, name := range e.TAPs {
					if l := links[name]; l == nil || l.Index != e.Index[k] {
						t.Errorf("live vm %s nic %d: TAP %s = %+v, want it with ifindex %d as recorded", id, k, name, l, e.Index[k])
					}
				}
			}
			if got := slices.Sorted(maps.Keys(s.live)); !slices.Equal(got, []string{"vm-live0", "vm-live1"}) {
				t.Errorf("live set after the kill = %v, want vm-live0 and vm-live1", got)
			}
			gcCheckTUNs(t, f, want)
			f.checkLinks(t, append([]string{"lo", testBridge}, want...))
		})
	}
}
