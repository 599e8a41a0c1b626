package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/lock"
	"github.com/tapbridge/tapbridge/lock/flock"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

// The GC tests drive a real gc.Orchestrator: the bridge module (RegisterGC
// or GCModule) plus a "vms" module standing for the control plane's VM
// database, whose snapshot reports the live VMs through ActiveVMIDs.

// gcLive is the "vms" module: a live set, and optionally the lock a
// control plane holds while it changes it.
type gcLive struct {
	mu          sync.Mutex
	live        map[string]struct{}
	lk          lock.Locker // nil: no lock
	nilSnapshot bool        // report a nil map (still a live set: no VM is live)
}

func newGCLive(ids ...string) *gcLive {
	v := &gcLive{live: map[string]struct{}{}}
	v.add(ids...)
	return v
}

func (v *gcLive) add(ids ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, id := range ids {
		v.live[id] = struct{}{}
	}
}

func (v *gcLive) remove(ids ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, id := range ids {
		delete(v.live, id)
	}
}

func (v *gcLive) ids() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Sorted(maps.Keys(v.live))
}

func (v *gcLive) module() gc.Module[gc.Live] {
	return gc.LiveModule("vms", v.lk, func(context.Context) (map[string]struct{}, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.nilSnapshot {
			return nil, nil
		}
		return maps.Clone(v.live), nil
	})
}

// gcOrch returns an orchestrator with b's module and, if v is not nil, the
// vms module, then the extra modules, in that order (ReadDB and Collect
// run in registration order).
func gcOrch(b *Bridge, v *gcLive, extra ...func(*gc.Orchestrator)) *gc.Orchestrator {
	o := gc.New()
	b.RegisterGC(o)
	if v != nil {
		gc.Register(o, v.module())
	}
	for _, e := range extra {
		e(o)
	}
	return o
}

// gcMeddle returns a module whose ReadDB runs fn: registered after the
// bridge module, fn runs between the bridge's scan and its reclaim.
func gcMeddle(fn func()) func(*gc.Orchestrator) {
	return func(o *gc.Orchestrator) {
		gc.Register(o, gc.Module[struct{}]{
			Name: "meddler",
			ReadDB: func(context.Context) (struct{}, error) {
				fn()
				return struct{}{}, nil
			},
		})
	}
}

// gcModuleName is the name of inst's bridge GC module.
func gcModuleName(inst owner.Instance) string { return "bridge/" + inst.String() }

// gcRun runs one cycle, fails the test on error, and returns the report of
// inst's bridge module.
func gcRun(t *testing.T, o *gc.Orchestrator, inst owner.Instance) *gc.ModuleReport {
	t.Helper()
	rep, err := o.RunReport(t.Context())
	if err != nil {
		t.Fatalf("RunReport() = %v, want nil error", err)
	}
	mr := rep.Modules[gcModuleName(inst)]
	if mr == nil {
		t.Fatalf("RunReport() report has modules %v, want %s", slices.Sorted(maps.Keys(rep.Modules)), gcModuleName(inst))
	}
	return mr
}

// gcCheckReport fails the test unless the report scanned, picked and
// reclaimed exactly these TAPs (in any order) and failed none.
func gcCheckReport(t *testing.T, mr *gc.ModuleReport, scanned, reclaimed []string) {
	t.Helper()
	sorted := func(s []string) []string { return slices.Sorted(slices.Values(s)) }
	if got, want := sorted(mr.Scanned), sorted(scanned); !slices.Equal(got, want) {
		t.Errorf("report Scanned = %v, want %v", got, want)
	}
	if got, want := sorted(mr.Orphans), sorted(reclaimed); !slices.Equal(got, want) {
		t.Errorf("report Orphans = %v, want %v", got, want)
	}
	if got, want := sorted(mr.Reclaimed), sorted(reclaimed); !slices.Equal(got, want) {
		t.Errorf("report Reclaimed = %v, want %v", got, want)
	}
	if len(mr.Failed) > 0 {
		t.Errorf("report Failed = %v, want none", mr.Failed)
	}
}

// gcTUNs returns the TUN/TAP devices of the namespace by name.
func gcTUNs(t *testing.T, f *fixture) map[string]*testutil.IPLink {
	t.Helper()
	out := map[string]*testutil.IPLink{}
	for name, l := range f.links(t) {
		if l.LinkInfo.Kind == "tun" {
			out[name] = l
		}
	}
	return out
}

// gcCheckTUNs fails the test unless the namespace's TUN/TAP devices are
// exactly want.
func gcCheckTUNs(t *testing.T, f *fixture, want ...[]string) {
	t.Helper()
	var all []string
	for _, w := range want {
		all = append(all, w...)
	}
	slices.Sort(all)
	if got := slices.Sorted(maps.Keys(gcTUNs(t, f))); !slices.Equal(got, all) {
		t.Errorf("TUN/TAP devices in the namespace = %v, want %v", got, all)
	}
}

// gcNames returns the TAP names of Config records.
func gcNames(recs ...[]*types.NetworkConfig) []string {
	var out []string
	for _, rs := range recs {
		for _, r := range rs {
			out = append(out, r.Tap)
		}
	}
	return out
}

// gcConfigAged runs Config with the Bridge's clock set back by age, so that
// the TAPs' tags record that creation time.
func gcConfigAged(t *testing.T, b *Bridge, age time.Duration, vmID string, nics int, vmCfg *types.VMConfig) []*types.NetworkConfig {
	t.Helper()
	if age != 0 {
		b.now = func() time.Time { return time.Now().Add(-age) }
		defer func() { b.now = time.Now }()
	}
	return mustConfig(t, b, vmID, nics, vmCfg)
}

// gcHold opens the TAP the way a VMM does and keeps it open until cleanup.
func gcHold(t *testing.T, f *fixture, name string, multiQueue bool, queues int) *tap.Device {
	t.Helper()
	d, err := tap.Open(name, &tap.Options{MultiQueue: multiQueue, Queues: queues, VnetHdr: true, NetNS: f.ns})
	if err != nil {
		t.Fatalf("tap.Open(%q, multi-queue %v, %d queues) = %v, want nil error", name, multiQueue, queues, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// gcMonitor records the link deletions of the namespace ("ip -o monitor
// link") until stop, which returns the deleted names with the device group
// each had when it went.
func gcMonitor(t *testing.T, f *fixture) (stop func() map[string]string) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+testutil.NSPath(f.ns), "--", "ip", "-o", "monitor", "link")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ip monitor: %v", err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deleted := map[string]string{}
	parse := func(line string) {
		// "Deleted 7: NAME: <FLAGS> mtu ... group GROUP \ ..."
		rest, ok := strings.CutPrefix(line, "Deleted ")
		if !ok {
			return
		}
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			return
		}
		name := strings.TrimSuffix(fields[1], ":")
		if i := slices.Index(fields, "group"); i >= 0 && i+1 < len(fields) {
			deleted[name] = fields[i+1]
		}
	}
	// A marker device proves the monitor listens before the test goes on;
	// it may subscribe after the first markers, so repeat them.
	deadline := time.Now().Add(time.Minute)
	for ready := false; !ready; {
		if time.Now().After(deadline) {
			t.Fatalf("ip monitor did not report its marker device within a minute")
		}
		f.ip(t, "link", "add", "gcmon0", "type", "bridge")
		f.ip(t, "link", "del", "gcmon0")
		wait := time.After(200 * time.Millisecond)
	drain:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("ip monitor exited before it saw its marker")
				}
				if strings.HasPrefix(line, "Deleted") && strings.Contains(line, "gcmon0") {
					ready = true
				}
			case <-wait:
				break drain
			}
		}
	}
	return func() map[string]string {
		// Another marker flushes everything before it out of the monitor.
		f.ip(t, "link", "add", "gcmon1", "type", "bridge")
		f.ip(t, "link", "del", "gcmon1")
		timeout := time.After(time.Minute)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("ip monitor exited early")
				}
				if strings.Contains(line, "gcmon1") && strings.HasPrefix(line, "Deleted") {
					return deleted
				}
				parse(line)
			case <-timeout:
				t.Fatalf("ip monitor did not report its end marker within a minute")
			}
		}
	}
}

func TestIntegrationGCReclaimsOrphans(t *testing.T) {
	const hour = time.Hour
	tests := []struct {
		name  string
		grace time.Duration // Config.GCGrace
		// age of the dead VM that must go, and of the one that must stay
		// (0: no such VM)
		oldAge, youngAge time.Duration
		wait             time.Duration // sleep before the cycle
	}{
		{name: "negative grace", grace: -1, oldAge: 0},
		{name: "grace 1h", grace: hour, oldAge: 2 * hour, youngAge: 59 * time.Minute},
		{name: "default grace", grace: 0, oldAge: 2 * time.Minute, youngAge: 1},
		// A real short grace: the TAPs are made, the grace passes, GC reclaims.
		{name: "short grace elapsed", grace: 200 * time.Millisecond, wait: 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &config.Config{GCGrace: tt.grace})
			liveRecs := gcConfigAged(t, f.b, tt.oldAge, "vm-live", 2, &types.VMConfig{CPU: 2})
			deadRecs := gcConfigAged(t, f.b, tt.oldAge, "vm-dead", 2, &types.VMConfig{CPU: 2})
			dead2Recs := gcConfigAged(t, f.b, tt.oldAge, "vm-dead2", 1, nil)
			heldRecs := gcConfigAged(t, f.b, tt.oldAge, "vm-held", 1, nil)
			// Multi-queue, one of its two queues attached.
			heldRecs = append(heldRecs, gcConfigAged(t, f.b, tt.oldAge, "vm-heldmq", 1, &types.VMConfig{CPU: 2})...)
			var youngRecs []*types.NetworkConfig
			if tt.youngAge != 0 {
				youngRecs = gcConfigAged(t, f.b, tt.youngAge, "vm-young", 1, nil)
			}
			gcHold(t, f, heldRecs[0].Tap, false, 1)
			gcHold(t, f, heldRecs[1].Tap, true, 1)
			time.Sleep(tt.wait)

			v := newGCLive("vm-live", "vm-not-here")
			stop := gcMonitor(t, f)
			mr := gcRun(t, gcOrch(f.b, v), f.b.inst)
			deleted := stop()

			reclaimed := gcNames(deadRecs, dead2Recs)
			gcCheckReport(t, mr, gcNames(liveRecs, deadRecs, dead2Recs, heldRecs, youngRecs), reclaimed)
			gcCheckTUNs(t, f, gcNames(liveRecs, heldRecs, youngRecs))
			// Reclaimed through the instance's reserved group: every TAP
			// went as a member of it, and nothing else went.
			wantGroup := strconv.FormatUint(uint64(f.b.inst.Group()), 10)
			for _, name := range reclaimed {
				if g, ok := deleted[name]; !ok || g != wantGroup {
					t.Errorf("ip monitor: %s deleted = %v in group %q, want deleted in group %s", name, ok, g, wantGroup)
				}
			}
			if len(deleted) != len(reclaimed) {
				t.Errorf("ip monitor: deleted %v, want only %v", deleted, reclaimed)
			}
			for _, id := range []string{"vm-live", "vm-held", "vm-heldmq"} {
				if err := f.b.Verify(t.Context(), id); err != nil {
					t.Errorf("Verify(%q) after GC = %v, want nil", id, err)
				}
			}
			if err := f.b.Verify(t.Context(), "vm-dead"); !errors.Is(err, network.ErrNotFound) {
				t.Errorf("Verify(%q) after GC = %v, want ErrNotFound", "vm-dead", err)
			}
			// A second cycle finds nothing more to do.
			mr = gcRun(t, gcOrch(f.b, v), f.b.inst)
			gcCheckReport(t, mr, gcNames(liveRecs, heldRecs, youngRecs), nil)
		})
	}
}

func TestIntegrationGCWithoutLiveSet(t *testing.T) {
	// Without a module that reports active VMs every VM would look dead:
	// only doomed TAPs (in the instance's reserved group, as a crashed
	// deletion leaves them) are reclaimed.
	f := newFixture(t, &config.Config{GCGrace: -1})
	keep := f.config(t, "vm-keep", 1, nil)
	doomed := f.config(t, "vm-doomed", 2, nil)
	f.ip(t, "link", "set", doomed[1].Tap, "group", strconv.FormatUint(uint64(f.b.inst.Group()), 10))

	mr := gcRun(t, gcOrch(f.b, nil), f.b.inst)
	gcCheckReport(t, mr, gcNames(keep, doomed), []string{doomed[1].Tap})
	gcCheckTUNs(t, f, gcNames(keep), []string{doomed[0].Tap})

	// A live-set module with no VM (a nil map) is a live set: everything
	// not live goes.
	v := &gcLive{nilSnapshot: true}
	mr = gcRun(t, gcOrch(f.b, v), f.b.inst)
	gcCheckReport(t, mr, gcNames(keep, doomed[:1]), gcNames(keep, doomed[:1]))
	gcCheckTUNs(t, f)

	// Doomed TAPs go even if their VM is live, but not while held open.
	held := f.config(t, "vm-held", 1, nil)
	gcHold(t, f, held[0].Tap, false, 1)
	f.ip(t, "link", "set", held[0].Tap, "group", strconv.FormatUint(uint64(f.b.inst.Group()), 10))
	mr = gcRun(t, gcOrch(f.b, newGCLive("vm-held")), f.b.inst)
	gcCheckReport(t, mr, gcNames(held), nil)
	gcCheckTUNs(t, f, gcNames(held))
	again := f.config(t, "vm-again", 1, nil)
	f.ip(t, "link", "set", again[0].Tap, "group", strconv.FormatUint(uint64(f.b.inst.Group()), 10))
	mr = gcRun(t, gcOrch(f.b, newGCLive("vm-held", "vm-again")), f.b.inst)
	if !slices.Equal(mr.Orphans, gcNames(again)) {
		t.Errorf("report Orphans = %v, want %v (the held doomed TAP is not picked)", mr.Orphans, gcNames(again))
	}
}

func TestIntegrationGCRechecksBeforeReclaim(t *testing.T) {
	// Between the scan and the reclaim the TAPs change; the reclaim goes by
	// ifindex and re-reads each one.
	f := newFixture(t, &config.Config{GCGrace: -1})
	replaced := f.config(t, "vm-replaced", 1, nil)
	opened := f.config(t, "vm-opened", 1, nil)
	retagged := f.config(t, "vm-retagged", 1, nil)
	renamed := f.config(t, "vm-renamed", 1, nil)
	plain := f.config(t, "vm-plain", 1, nil)
	idx := func(name string) int { return f.link(t, name).Index }
	replacedIdx := idx(replaced[0].Tap)

	var held *tap.Device
	meddle := gcMeddle(func() {
		// A foreign TAP takes the name of a deleted one.
		f.ip(t, "link", "del", replaced[0].Tap)
		f.addForeignTAP(t, replaced[0].Tap)
		// A VMM opens one.
		held = gcHold(t, f, opened[0].Tap, false, 1)
		// One gets another alias, one another name.
		f.ip(t, "link", "set", retagged[0].Tap, "alias", "not ours any more")
		f.ip(t, "link", "set", renamed[0].Tap, "down")
		f.ip(t, "link", "set", renamed[0].Tap, "name", "gc-renamed")
	})
	rep, err := gcOrch(f.b, newGCLive(), meddle).RunReport(t.Context())
	var failures gc.Failures
	if !errors.As(err, &failures) {
		t.Fatalf("RunReport() = %v, want an error wrapping gc.Failures", err)
	}
	mr := rep.Modules[gcModuleName(f.b.inst)]
	all := gcNames(replaced, opened, retagged, renamed, plain)
	if got := slices.Sorted(slices.Values(mr.Orphans)); !slices.Equal(got, slices.Sorted(slices.Values(all))) {
		t.Errorf("report Orphans = %v, want %v", got, all)
	}
	wantFailed := gcNames(opened, retagged, renamed)
	if got := slices.Sorted(maps.Keys(mr.Failed)); !slices.Equal(got, slices.Sorted(slices.Values(wantFailed))) {
		t.Errorf("report Failed = %v, want %v", mr.Failed, wantFailed)
	}
	// The replaced one was already gone: it counts as reclaimed.
	if got, want := slices.Sorted(slices.Values(mr.Reclaimed)), slices.Sorted(slices.Values(gcNames(replaced, plain))); !slices.Equal(got, want) {
		t.Errorf("report Reclaimed = %v, want %v", got, want)
	}
	gcCheckTUNs(t, f, gcNames(replaced, opened, retagged), []string{"gc-renamed"})
	if l := f.link(t, replaced[0].Tap); l.Index == replacedIdx || l.Alias != "" {
		t.Errorf("foreign TAP %s: ifindex %d alias %q, want a new untagged device", l.Name, l.Index, l.Alias)
	}
	if l := f.link(t, retagged[0].Tap); l.Alias != "not ours any more" {
		t.Errorf("TAP %s alias = %q, want it left alone", l.Name, l.Alias)
	}
	// Once closed, the opened one is reclaimed by the next cycle, and the
	// renamed one too: the tag is the proof, not the name.
	held.Close()
	mr = gcRun(t, gcOrch(f.b, newGCLive()), f.b.inst)
	gcCheckReport(t, mr, append(gcNames(opened), "gc-renamed"), append(gcNames(opened), "gc-renamed"))
	gcCheckTUNs(t, f, gcNames(replaced, retagged))
}

// gcMimicTag returns a valid owner tag string of inst.
func gcMimicTag(inst owner.Instance, vmID string) string {
	tag := owner.Tag{Instance: inst, VMID: vmID, NIC: 0, NICs: 1, MAC: [6]byte{0x02, 1, 2, 3, 4, 5}, Queues: 2, QueueSize: 512}
	return tag.String()
}

func TestIntegrationGCLeavesForeignDevices(t *testing.T) {
	f := newFixture(t, &config.Config{GCGrace: -1})
	ours := gcMimicTag(f.b.inst, "vm-mimic")
	other := owner.InstanceOf(t.TempDir())
	// The instance in upper-case hex ("tb1 i=" is 6 bytes, the hex 16).
	upper := ours[:6] + strings.ToUpper(ours[6:22]) + ours[22:]
	if upper == ours { // all 16 digits decimal: break the hex another way
		upper = ours[:6] + "X" + ours[7:]
	}
	aliases := map[string]string{
		"bt-untagged0": "",
		"btother-0":    gcMimicTag(other, "vm-mimic"),
		"btupper-0":    upper,
		"btver-0":      strings.Replace(ours, "tb1 ", "tb2 ", 1),
		"btnic-0":      strings.Replace(ours, " n=0/1", " n=1/1", 1),
		"btmac-0":      strings.Replace(ours, "02:01:02", "02:01:0g", 1),
		"btjunk-0":     ours + " x=1",
		"btnoc-0":      ours[:strings.Index(ours, " c=")],
		"btid-0":       strings.Replace(ours, " v=vm-mimic", " v=vm/mimic", 1),
		"btshort-0":    ours[:20],
	}
	for name, alias := range aliases {
		f.addForeignTAP(t, name)
		if alias != "" {
			f.ip(t, "link", "set", name, "alias", alias)
		}
	}
	// A TUN (not TAP) and a veth carrying our exact tag are not ours either.
	f.ip(t, "tuntap", "add", "dev", "bttun-0", "mode", "tun")
	f.ip(t, "link", "set", "bttun-0", "alias", ours)
	f.addVeth(t, "btveth-0", "btveth-1", true)
	f.ip(t, "link", "set", "btveth-0", "alias", ours)
	// A foreign TAP that is a port of the bridge.
	f.addForeignTAP(t, "btport-0")
	f.ip(t, "link", "set", "btport-0", "master", testBridge)

	dead := gcConfigAged(t, f.b, time.Hour, "vm-dead", 1, nil)
	before := f.links(t)
	mr := gcRun(t, gcOrch(f.b, newGCLive()), f.b.inst)
	gcCheckReport(t, mr, gcNames(dead), gcNames(dead))
	after := f.links(t)
	for name, l := range before {
		if slices.Contains(gcNames(dead), name) {
			continue
		}
		a := after[name]
		if a == nil {
			t.Errorf("GC deleted foreign device %s (alias %q)", name, l.Alias)
			continue
		}
		if a.Index != l.Index || a.Alias != l.Alias || a.Master != l.Master || a.Group != l.Group {
			t.Errorf("GC changed foreign device %s: %+v, was %+v", name, a, l)
		}
	}
}

func TestIntegrationGCTwoInstances(t *testing.T) {
	f := newFixture(t, &config.Config{GCGrace: -1})
	b2 := f.newBridge(t, &config.Config{GCGrace: -1})
	// The same VM IDs in both instances.
	a1 := f.config(t, "vm-a", 2, nil)
	c1 := f.config(t, "vm-c", 1, nil)
	a2 := mustConfig(t, b2, "vm-a", 2, nil)
	c2 := mustConfig(t, b2, "vm-c", 1, nil)

	mr := gcRun(t, gcOrch(f.b, newGCLive("vm-c")), f.b.inst)
	gcCheckReport(t, mr, gcNames(a1, c1), gcNames(a1))
	gcCheckTUNs(t, f, gcNames(c1, a2, c2))
	for _, id := range []string{"vm-a", "vm-c"} {
		if err := b2.Verify(t.Context(), id); err != nil {
			t.Errorf("instance 2 Verify(%q) after instance 1's GC = %v, want nil", id, err)
		}
	}
	// Both instances' modules on one orchestrator, each with its own view.
	o := gc.New()
	f.b.RegisterGC(o)
	b2.RegisterGC(o)
	gc.Register(o, newGCLive("vm-a").module())
	rep, err := o.RunReport(t.Context())
	if err != nil {
		t.Fatalf("RunReport() = %v, want nil", err)
	}
	gcCheckReport(t, rep.Modules[gcModuleName(f.b.inst)], gcNames(c1), gcNames(c1))
	gcCheckReport(t, rep.Modules[gcModuleName(b2.inst)], gcNames(a2, c2), gcNames(c2))
	gcCheckTUNs(t, f, gcNames(a2))
}

func TestIntegrationGCModuleWithoutBridge(t *testing.T) {
	t.Run("recorded namespace and negative grace", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "root")
		// The module is made before New records anything: it reads the
		// record when the cycle runs.
		m := GCModule(dir)
		f := newFixture(t, &config.Config{RootDir: dir, GCGrace: -1})
		live := f.config(t, "vm-live", 1, nil)
		dead := f.config(t, "vm-dead", 2, &types.VMConfig{CPU: 2})
		o := gc.New()
		gc.Register(o, m)
		gc.Register(o, newGCLive("vm-live").module())
		fds := testutil.FDCountBusy(t)
		mr := gcRun(t, o, f.b.inst)
		checkFDs(t, fds, "a GCModule cycle")
		gcCheckReport(t, mr, gcNames(live, dead), gcNames(dead))
		gcCheckTUNs(t, f, gcNames(live))

		// Negative grace: the module takes the in-flight lock.
		hold := flock.New(filepath.Join(dir, "locks", "inflight.lock"), flock.Shared)
		if err := hold.Lock(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer hold.Unlock(t.Context())
		if err := o.Run(t.Context()); !errors.Is(err, gc.ErrBusy) {
			t.Errorf("Run() with a Config in flight = %v, want ErrBusy", err)
		}
	})
	t.Run("recorded positive grace", func(t *testing.T) {
		f := newFixture(t, &config.Config{GCGrace: time.Hour})
		old := gcConfigAged(t, f.b, 2*time.Hour, "vm-old", 1, nil)
		young := f.config(t, "vm-young", 1, nil)
		o := gc.New()
		gc.Register(o, GCModule(f.dir))
		gc.Register(o, newGCLive().module())
		// A positive grace needs no in-flight lock: a Config in flight
		// does not block the cycle.
		hold := flock.New(filepath.Join(f.dir, "locks", "inflight.lock"), flock.Shared)
		if err := hold.Lock(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer hold.Unlock(t.Context())
		mr := gcRun(t, o, f.b.inst)
		gcCheckReport(t, mr, gcNames(old, young), gcNames(old))
		gcCheckTUNs(t, f, gcNames(young))
	})
	t.Run("recorded namespace unusable", func(t *testing.T) {
		// A record naming a namespace that is gone fails the cycle; it
		// never falls back to the caller's namespace.
		dir := t.TempDir()
		s, _ := json.Marshal(settings{NetnsPath: filepath.Join(dir, "no-such-netns"), GCGrace: -1, BridgeDev: testBridge})
		if err := os.WriteFile(filepath.Join(dir, settingsFile), s, 0o600); err != nil {
			t.Fatal(err)
		}
		o := gc.New()
		gc.Register(o, GCModule(dir))
		gc.Register(o, newGCLive().module())
		fds := testutil.FDCountBusy(t)
		rep, err := o.RunReport(t.Context())
		checkFDs(t, fds, "a failed GCModule cycle")
		if err == nil || !errors.Is(err, os.ErrNotExist) || rep != nil {
			t.Errorf("RunReport() with a missing recorded namespace = %+v, %v; want nil and an error wrapping fs.ErrNotExist", rep, err)
		}
	})
}

func TestIntegrationGCFailClosed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lock  string // lock file held
		mode  flock.Mode
		grace time.Duration
		gcMod bool // GCModule instead of RegisterGC
	}{
		{"config in flight, negative grace", "inflight.lock", flock.Shared, -1, false},
		{"config in flight, negative grace, GCModule", "inflight.lock", flock.Shared, -1, true},
		{"another GC, negative grace", "gc.lock", flock.Exclusive, -1, false},
		{"another GC, positive grace", "gc.lock", flock.Exclusive, time.Nanosecond, false},
		{"another GC, GCModule", "gc.lock", flock.Exclusive, -1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &config.Config{GCGrace: tt.grace})
			dead := gcConfigAged(t, f.b, time.Hour, "vm-dead", 2, nil)
			o := gc.New()
			if tt.gcMod {
				gc.Register(o, GCModule(f.dir))
			} else {
				f.b.RegisterGC(o)
			}
			v := newGCLive()
			vlock := &gcCountingLock{}
			v.lk = vlock
			gc.Register(o, v.module())

			hold := flock.New(filepath.Join(f.dir, "locks", tt.lock), tt.mode)
			if err := hold.Lock(t.Context()); err != nil {
				t.Fatal(err)
			}
			rep, err := o.RunReport(t.Context())
			if !errors.Is(err, gc.ErrBusy) || rep != nil {
				t.Errorf("RunReport() with %s held = %+v, %v; want nil, ErrBusy", tt.lock, rep, err)
			}
			if p, err := o.Plan(t.Context()); !errors.Is(err, gc.ErrBusy) || p != nil {
				t.Errorf("Plan() with %s held = %+v, %v; want nil, ErrBusy", tt.lock, p, err)
			}
			gcCheckTUNs(t, f, gcNames(dead))
			if n := vlock.taken.Load(); n != 0 {
				t.Errorf("the vms module's lock was taken %d times in cycles that failed closed, want 0 (the bridge module comes first)", n)
			}
			if err := hold.Unlock(t.Context()); err != nil {
				t.Fatal(err)
			}
			mr := gcRun(t, o, f.b.inst)
			gcCheckReport(t, mr, gcNames(dead), gcNames(dead))
			gcCheckTUNs(t, f)
			if vlock.held.Load() {
				t.Errorf("the vms module's lock is still held after the cycle")
			}
		})
	}
}

// gcCountingLock is a lock.Locker that is never busy and counts its holds.
type gcCountingLock struct {
	taken atomic.Int32
	held  atomic.Bool
}

func (l *gcCountingLock) Lock(ctx context.Context) error {
	l.held.Store(true)
	l.taken.Add(1)
	return nil
}
func (l *gcCountingLock) TryLock(ctx context.Context) (bool, error) {
	return true, l.Lock(ctx)
}
func (l *gcCountingLock) Unlock(ctx context.Context) error { l.held.Store(false); return nil }

func TestIntegrationGCConcurrentWithConfig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		grace time.Duration
		// callerLock: the workers hold the vms module's lock (shared)
		// across Config and recording the VM as live; GC takes it
		// exclusively. Without it a negative grace cannot protect a VM
		// between Config's return and its recording.
		callerLock bool
		// intent: a VM is recorded live before its Config (the in-flight
		// lock then makes cycles fail closed while Configs run).
		intent bool
		reaper bool
	}{
		{name: "default grace, recorded after Config", grace: 0},
		{name: "negative grace, caller lock", grace: -1, callerLock: true},
		{name: "negative grace, recorded before Config, reaper", grace: -1, intent: true, reaper: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &config.Config{GCGrace: tt.grace, Hypervisor: config.QEMU, ReapInterval: 2 * time.Millisecond})
			if tt.reaper {
				f.b.StartReaper()
			}
			v := newGCLive()
			var shared *flock.Lock
			if tt.callerLock {
				path := filepath.Join(t.TempDir(), "vms.lock")
				shared = flock.New(path, flock.Shared)
				v.lk = flock.New(path, flock.Exclusive)
			}
			o := gcOrch(f.b, v)
			ctx := t.Context()

			const workers, iterations = 3, 30
			var (
				stop               atomic.Bool
				cycles, busy, recl atomic.Int32
				mu                 sync.Mutex
				crashed            []string
				recsByVM           = map[string][]*types.NetworkConfig{}
				wg, gcwg           sync.WaitGroup
			)
			gcwg.Go(func() {
				for !stop.Load() {
					rep, err := o.RunReport(ctx)
					switch {
					case errors.Is(err, gc.ErrBusy):
						busy.Add(1)
					case err != nil:
						t.Errorf("RunReport() during the Config loop = %v, want nil or ErrBusy", err)
					default:
						cycles.Add(1)
						recl.Add(int32(len(rep.Modules[gcModuleName(f.b.inst)].Reclaimed)))
					}
					time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				}
			})
			for w := range workers {
				wg.Go(func() {
					for i := range iterations {
						id := fmt.Sprintf("w%d-%05d", w, i) // unique 8-byte prefix
						cpu := 1 + i%3
						if tt.callerLock {
							if err := shared.Lock(ctx); err != nil {
								t.Errorf("caller lock: %v", err)
								return
							}
						}
						if tt.intent {
							v.add(id)
						}
						recs, err := f.b.Config(ctx, id, 1+i%2, &types.VMConfig{CPU: cpu})
						if err == nil {
							v.add(id)
						}
						if tt.callerLock {
							shared.Unlock(ctx)
						}
						if err != nil {
							t.Errorf("Config(%q) = %v, want nil", id, err)
							v.remove(id)
							continue
						}
						for range 3 {
							if err := f.b.Verify(ctx, id); err != nil {
								t.Errorf("Verify(%q) of a live VM = %v, want nil", id, err)
							}
							time.Sleep(time.Duration(rand.IntN(2)) * time.Millisecond)
						}
						switch i % 3 {
						case 0: // the VM crashed and its network was never deleted
							v.remove(id)
							mu.Lock()
							crashed = append(crashed, id)
							recsByVM[id] = recs
							mu.Unlock()
						case 1: // stopped: forgotten, then deleted (GC may get there first)
							v.remove(id)
							if _, err := f.b.Delete(ctx, []string{id}); err != nil {
								t.Errorf("Delete(%q) = %v, want nil", id, err)
							}
						case 2:
							if i >= iterations-3 {
								// The last ones stay live.
								mu.Lock()
								recsByVM[id] = recs
								mu.Unlock()
								continue
							}
							if _, err := f.b.Delete(ctx, []string{id}); err != nil {
								t.Errorf("Delete(%q) = %v, want nil", id, err)
							}
							v.remove(id)
						}
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			gcwg.Wait()
			if err := f.b.Flush(ctx); err != nil {
				t.Errorf("Flush() = %v, want nil", err)
			}
			if s := f.b.Stats(); s.Failed != 0 {
				t.Errorf("reaper Stats() = %+v, want no failed deletion", s)
			}
			t.Logf("%d cycles ran, %d failed closed, %d TAPs reclaimed", cycles.Load(), busy.Load(), recl.Load())

			live := v.ids()
			var liveTAPs []string
			for _, id := range live {
				liveTAPs = append(liveTAPs, gcNames(recsByVM[id])...)
				if err := f.b.Verify(ctx, id); err != nil {
					t.Errorf("Verify(%q) of a live VM after the loop = %v, want nil", id, err)
				}
			}
			if tt.grace >= 0 {
				// Every TAP is younger than the default grace: GC reclaimed
				// nothing, the crashed VMs' TAPs are all there.
				var crashedTAPs []string
				for _, id := range crashed {
					crashedTAPs = append(crashedTAPs, gcNames(recsByVM[id])...)
				}
				gcCheckTUNs(t, f, liveTAPs, crashedTAPs)
				return
			}
			// A last cycle, with nothing in flight, leaves only the live VMs.
			gcRun(t, o, f.b.inst)
			gcCheckTUNs(t, f, liveTAPs)
		})
	}
}

func TestIntegrationGCConfigDuringCycle(t *testing.T) {
	// A VM that is not live (a crashed VM being restarted, say) gets a
	// Config while a GC cycle runs, between the scan and the reclaim. That
	// Config returns success; its TAPs must survive the cycle. (Config
	// adopts the existing TAP: it must change its tag, or the reclaim's
	// re-check cannot tell.)
	for _, tt := range []struct {
		name  string
		grace time.Duration
	}{
		{"negative grace", -1},
		{"positive grace", time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &config.Config{GCGrace: tt.grace})
			old := gcConfigAged(t, f.b, time.Hour, "vm-restart", 1, nil)
			v := newGCLive()
			var cfgErr error
			meddle := gcMeddle(func() {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				var recs []*types.NetworkConfig
				recs, cfgErr = f.b.Config(ctx, "vm-restart", 1, nil)
				if cfgErr == nil {
					v.add("vm-restart") // recorded as soon as Config returns
					if recs[0].Tap != old[0].Tap {
						t.Errorf("Config of an existing VM = TAP %s, want %s again", recs[0].Tap, old[0].Tap)
					}
				}
			})
			_, err := gcOrch(f.b, v, meddle).RunReport(t.Context())
			if err != nil && !errors.As(err, new(gc.Failures)) {
				t.Fatalf("RunReport() = %v", err)
			}
			if tt.grace < 0 {
				// The cycle holds the in-flight lock: the Config waits for
				// it and times out.
				if !errors.Is(cfgErr, context.DeadlineExceeded) {
					t.Errorf("Config during a no-grace cycle = %v, want it to wait for the cycle", cfgErr)
				}
				return
			}
			if cfgErr != nil {
				t.Fatalf("Config during a cycle = %v, want nil", cfgErr)
			}
			if err := f.b.Verify(t.Context(), "vm-restart"); err != nil {
				t.Errorf("Verify(%q) after its Config returned during a GC cycle = %v, want nil", "vm-restart", err)
			}
		})
	}
}

// The crash tests run Config in a child process (this test binary again,
// running only TestIntegrationGCHelperProcess) and kill it with SIGKILL.
const (
	gcHelperEnv = "TAPBRIDGE_GC_HELPER" // the child's mode
	gcNetnsEnv  = "TAPBRIDGE_GC_NETNS"  // namespace path (the parent's fd)
	gcRootEnv   = "TAPBRIDGE_GC_ROOT"   // RootDir
)

// TestIntegrationGCHelperProcess is the child of the crash tests; run
// directly it does nothing.
func TestIntegrationGCHelperProcess(t *testing.T) {
	mode := os.Getenv(gcHelperEnv)
	if mode == "" {
		return
	}
	conf := &config.Config{
		RootDir:    os.Getenv(gcRootEnv),
		NetnsPath:  os.Getenv(gcNetnsEnv),
		GCGrace:    -1,
		Hypervisor: config.QEMU,
	}
	if mode == "reaper" {
		conf.ReapInterval = time.Hour
		conf.ReapBatch = 1 << 20
	}
	b, err := New(conf, testBridge)
	if err != nil {
		fmt.Printf("error New: %v\n", err)
		os.Exit(2)
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	switch mode {
	case "config":
		say("ready")
		for i := 0; ; i++ {
			id := fmt.Sprintf("c%07d", i)
			if _, err := b.Config(ctx, id, 1+i%4, &types.VMConfig{CPU: 1 + i%4}); err != nil {
				say("error Config %s: %v", id, err)
				os.Exit(2)
			}
			say("done %s", id)
			if i%3 == 0 {
				if _, err := b.Delete(ctx, []string{id}); err != nil {
					say("error Delete %s: %v", id, err)
					os.Exit(2)
				}
				say("deleted %s", id)
			}
		}
	case "reaper":
		b.StartReaper()
		for i := range 5 {
			id := fmt.Sprintf("r-%d", i)
			if _, err := b.Config(ctx, id, 2, nil); err != nil {
				say("error Config %s: %v", id, err)
				os.Exit(2)
			}
		}
		if _, err := b.Delete(ctx, []string{"r-0", "r-1", "r-2"}); err != nil {
			say("error Delete: %v", err)
			os.Exit(2)
		}
		say("deleted")
		time.Sleep(time.Hour) // killed before the reaper's interval ends
	}
	os.Exit(3)
}

// gcChild is a helper process.
type gcChild struct {
	cmd   *exec.Cmd
	lines chan string
}

// gcStartChild starts the helper process in mode for f's namespace and
// rootDir.
func gcStartChild(t *testing.T, f *fixture, mode, rootDir string) *gcChild {
	t.Helper()
	return startHelper(t, "TestIntegrationGCHelperProcess",
		gcHelperEnv+"="+mode, gcNetnsEnv+"="+testutil.NSPath(f.ns), gcRootEnv+"="+rootDir)
}

// waitFor reads the child's lines until one starts with prefix, failing on
// an "error" line or after a minute. It returns the lines read.
func (c *gcChild) waitFor(t *testing.T, prefix string, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(time.Minute)
	for seen := 0; seen < n; {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("helper process exited before %d %q lines; it said %q", n, prefix, got)
			}
			got = append(got, line)
			if strings.HasPrefix(line, "error") {
				t.Fatalf("helper process: %s", line)
			}
			if strings.HasPrefix(line, prefix) {
				seen++
			}
		case <-timeout:
			t.Fatalf("helper process: no %d %q lines within a minute (got %q)", n, prefix, got)
		}
	}
	return got
}

// kill kills the child with SIGKILL and returns every line it wrote.
func (c *gcChild) kill(t *testing.T) []string {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill helper process %d: %v", c.cmd.Process.Pid, err)
	}
	var rest []string
	for line := range c.lines {
		rest = append(rest, line)
	}
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("helper process exit = %v, want killed by SIGKILL (lines %q)", err, rest)
	}
	return rest
}

func TestIntegrationGCAfterConfigCrash(t *testing.T) {
	f := newFixture(t, &config.Config{GCGrace: -1, Hypervisor: config.QEMU})
	for round := range 8 {
		root := t.TempDir()
		c := gcStartChild(t, f, "config", root)
		lines := c.waitFor(t, "ready", 1)
		lines = append(lines, c.waitFor(t, "done", round%4)...)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		lines = append(lines, c.kill(t)...)
		live := newGCLive()
		for _, l := range lines {
			if id, ok := strings.CutPrefix(l, "done "); ok {
				live.add(id)
			}
			if id, ok := strings.CutPrefix(l, "deleted "); ok {
				live.remove(id)
			}
		}

		// The create path keeps a TAP non-persistent until it is tagged:
		// whatever the kill interrupted, every TUN/TAP left is a
		// persistent TAP carrying the instance's tag.
		inst := owner.InstanceOf(root)
		perVM := map[string]int{}
		for name, l := range gcTUNs(t, f) {
			var tag owner.Tag
			if !owner.ParseTag(l.Alias, &tag) || tag.Instance != inst || !tunFlag(t, l, "persist") {
				t.Errorf("round %d: after the kill, %s (alias %q, persistent %v) is not a tagged persistent TAP of the instance",
					round, name, l.Alias, l.LinkInfo.Data["persist"])
				continue
			}
			perVM[tag.VMID]++
		}

		b := f.newBridge(t, &config.Config{RootDir: root, GCGrace: -1, Hypervisor: config.QEMU})
		o := gcOrch(b, live)
		gcRun(t, o, inst)
		// What is left belongs to VMs the child reported done and did not
		// delete, and each of those is intact (unless the kill hit its
		// Delete, which removes all its TAPs in one message or none).
		for id := range perVM {
			if !slices.Contains(live.ids(), id) {
				if n := len(f.vmTAPs(t, inst, id)); n != 0 {
					t.Errorf("round %d: vm %s is not live but %d TAPs are left after GC", round, id, n)
				}
			}
		}
		for _, id := range live.ids() {
			if err := b.Verify(t.Context(), id); err != nil && !errors.Is(err, network.ErrNotFound) {
				t.Errorf("round %d: Verify(%q) of a VM the child finished = %v, want nil or ErrNotFound", round, id, err)
			}
		}
		// Then with no live VM at all the namespace is clean.
		nlive := len(live.ids())
		live.remove(live.ids()...)
		gcRun(t, o, inst)
		gcCheckTUNs(t, f)
		t.Logf("round %d: killed with %d VMs live; %d VMs had TAPs", round, nlive, len(perVM))
	}
}

func TestIntegrationGCAfterReaperCrash(t *testing.T) {
	f := newFixture(t, &config.Config{GCGrace: -1})
	root := t.TempDir()
	c := gcStartChild(t, f, "reaper", root)
	c.waitFor(t, "deleted", 1)
	c.kill(t)
	inst := owner.InstanceOf(root)
	// The reaper never ran: the deleted VMs' TAPs are all still there.
	for i := range 5 {
		id := fmt.Sprintf("r-%d", i)
		if n := len(f.vmTAPs(t, inst, id)); n != 2 {
			t.Fatalf("after the crash vm %s has %d TAPs, want 2", id, n)
		}
	}
	b := f.newBridge(t, &config.Config{RootDir: root, GCGrace: -1, Hypervisor: config.QEMU})
	mr := gcRun(t, gcOrch(b, newGCLive("r-3", "r-4")), inst)
	if len(mr.Reclaimed) != 6 {
		t.Errorf("GC after the reaper's crash reclaimed %v, want the 6 TAPs of r-0..r-2", mr.Reclaimed)
	}
	for _, id := range []string{"r-0", "r-1", "r-2"} {
		if n := len(f.vmTAPs(t, inst, id)); n != 0 {
			t.Errorf("vm %s has %d TAPs after GC, want 0", id, n)
		}
	}
	for _, id := range []string{"r-3", "r-4"} {
		if err := b.Verify(t.Context(), id); err != nil {
			t.Errorf("Verify(%q) after GC = %v, want nil", id, err)
		}
	}
}

func TestIntegrationGCLeavesOpenTAPs(t *testing.T) {
	// The kernel counts attached queues only for multi-queue TAPs, and
	// tells queues a VMM disabled (TUNSETQUEUE IFF_DETACH_QUEUE, their
	// files still open) apart from attached ones; a single-queue TAP shows
	// that it is held only by its carrier, also while it is down.
	f := newFixture(t, &config.Config{GCGrace: -1, Hypervisor: config.QEMU})
	disabled := f.config(t, "vm-disabled", 1, &types.VMConfig{CPU: 2})
	heldDown := f.config(t, "vm-helddown", 1, nil)
	heldDownMQ := f.config(t, "vm-helddownmq", 1, &types.VMConfig{CPU: 2})
	down := f.config(t, "vm-down", 1, nil)
	downMQ := f.config(t, "vm-downmq", 1, &types.VMConfig{CPU: 2})

	d := gcHold(t, f, disabled[0].Tap, true, 2)
	for _, q := range d.Queues() {
		ifr, err := unix.NewIfreq(disabled[0].Tap)
		if err != nil {
			t.Fatal(err)
		}
		ifr.SetUint16(unix.IFF_DETACH_QUEUE)
		if err := unix.IoctlIfreq(int(q.Fd()), unix.TUNSETQUEUE, ifr); err != nil {
			t.Fatalf("ioctl TUNSETQUEUE IFF_DETACH_QUEUE on %s: %v", disabled[0].Tap, err)
		}
	}
	if data := f.link(t, disabled[0].Tap).LinkInfo.Data; data["numqueues"] != 0.0 || data["numdisabled"] != 2.0 {
		t.Fatalf("ip -d link show %s: numqueues %v numdisabled %v, want 0 and 2", disabled[0].Tap, data["numqueues"], data["numdisabled"])
	}
	gcHold(t, f, heldDown[0].Tap, false, 1)
	gcHold(t, f, heldDownMQ[0].Tap, true, 1)
	for _, name := range gcNames(heldDown, heldDownMQ, down, downMQ) {
		f.ip(t, "link", "set", name, "down")
	}

	mr := gcRun(t, gcOrch(f.b, newGCLive()), f.b.inst)
	gcCheckReport(t, mr, gcNames(disabled, heldDown, heldDownMQ, down, downMQ), gcNames(down, downMQ))
	gcCheckTUNs(t, f, gcNames(disabled, heldDown, heldDownMQ))
}

func TestIntegrationGCModuleBadRecord(t *testing.T) {
	// A record that exists but cannot be parsed fails the cycle before
	// anything is scanned: GCModule never falls back to the caller's
	// namespace when the instance recorded another.
	for _, tt := range []struct {
		name string
		data string
	}{
		{"not JSON", "{netns_path: /run/netns/x"},
		{"wrong type", `{"netns_path": 42}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, settingsFile), []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			o := gc.New()
			gc.Register(o, GCModule(dir))
			read := false
			gc.Register(o, gc.Module[struct{}]{Name: "probe", ReadDB: func(context.Context) (struct{}, error) {
				read = true
				return struct{}{}, nil
			}})
			rep, err := o.RunReport(t.Context())
			if err == nil || errors.Is(err, gc.ErrBusy) || rep != nil || read {
				t.Errorf("RunReport() with a record %q = %+v, %v (other modules read: %v); want nil, a settings error, nothing read", tt.data, rep, err, read)
			}
			// The lock was released: the next cycle fails the same way,
			// not with ErrBusy.
			if err := o.Run(t.Context()); err == nil || errors.Is(err, gc.ErrBusy) {
				t.Errorf("second Run() = %v, want the settings error again", err)
			}
		})
	}
}
