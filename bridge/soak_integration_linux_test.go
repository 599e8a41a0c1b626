package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/lock/flock"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/types"
)

// The soak runs VM lifecycles from goroutines of two processes (this test
// and a child: the test binary again, running only
// TestIntegrationSoakHelperProcess) against one bridge and one instance,
// while the parent runs GC every few milliseconds. The control plane's VM
// database, which GC's live set comes from, is a file both processes share
// (fileLiveSet).

// fileLiveSet is a control plane's VM database shared by processes: a JSON
// file of VM entries, read and changed only under an exclusive flock of its
// own lock file. The GC module's Locker is that same flock (another Lock
// value, so another open file description: it excludes this process's
// updates as it excludes the other process's), held for the whole cycle, so
// a cycle sees either all of an update or none of it.
type fileLiveSet struct {
	path string      // the JSON file
	lk   *flock.Lock // held for updates and checks
	gcLk *flock.Lock // the GC module's Locker
}

// liveEntry is one VM of the database. Every entry is live for GC whatever
// its state: a VM is recorded before its Config and forgotten after its
// Delete.
type liveEntry struct {
	State   string   `json:"state"` // liveCreating, liveUp or liveDeleting
	Proc    string   `json:"proc"`  // the process that owns it
	Profile string   `json:"profile"`
	NICs    int      `json:"nics"`
	CPU     int      `json:"cpu"`
	TAPs    []string `json:"taps,omitempty"`  // state up: the records' TAP names, by NIC
	MACs    []string `json:"macs,omitempty"`  // and guest MACs
	Index   []int    `json:"index,omitempty"` // and the TAPs' ifindexes
}

const (
	liveCreating = "creating" // recorded, Config not returned yet
	liveUp       = "up"       // Config returned: its TAPs must stay as recorded
	liveDeleting = "deleting" // its owner is deleting it: its TAPs may go
)

func newFileLiveSet(path string) *fileLiveSet {
	lockPath := path + ".lock"
	return &fileLiveSet{
		path: path,
		lk:   flock.New(lockPath, flock.Exclusive),
		gcLk: flock.New(lockPath, flock.Exclusive),
	}
}

// load reads the database; the caller holds a lock. A missing file is an
// empty database.
func (s *fileLiveSet) load() (map[string]*liveEntry, error) {
	m := map[string]*liveEntry{}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("live set %s: %w", s.path, err)
	}
	return m, nil
}

// update runs fn on the database under the lock and writes it back
// (atomically: a process killed in the middle leaves the old or the new
// file) if write is set and fn returns nil.
func (s *fileLiveSet) update(ctx context.Context, write bool, fn func(m map[string]*liveEntry) error) error {
	if err := s.lk.Lock(ctx); err != nil {
		return err
	}
	defer s.lk.Unlock(context.WithoutCancel(ctx))
	m, err := s.load()
	if err != nil {
		return err
	}
	if err := fn(m); err != nil || !write {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, data)
}

// snapshot returns the database, read under the lock.
func (s *fileLiveSet) snapshot(ctx context.Context) (map[string]*liveEntry, error) {
	var out map[string]*liveEntry
	err := s.update(ctx, false, func(m map[string]*liveEntry) error {
		out = m
		return nil
	})
	return out, err
}

// module is the GC module of the database: every entry is a live VM.
func (s *fileLiveSet) module() gc.Module[gc.Live] {
	return gc.LiveModule("vms", s.gcLk, func(context.Context) (map[string]struct{}, error) {
		m, err := s.load() // gcLk is held for the whole cycle
		if err != nil {
			return nil, err
		}
		ids := make(map[string]struct{}, len(m))
		for id := range m {
			ids[id] = struct{}{}
		}
		return ids, nil
	})
}

// soakProfiles are the hypervisor profiles, one Bridge each per process, all
// on one RootDir and bridge. The Firecracker one runs the reaper.
var soakProfiles = []string{config.CloudHypervisor, config.Firecracker, config.QEMU}

const soakReaperProfile = 1

// soakStats counts what a process did.
type soakStats struct {
	Configs, Reconfigs, Verifies, SyncDel, ReaperDel, Restarts, Abandoned, Kept, TAPs atomic.Int64
}

// soakCounts is soakStats as plain numbers, for the child's report.
type soakCounts struct {
	Configs, Reconfigs, Verifies, SyncDel, ReaperDel, Restarts, Abandoned, Kept, TAPs int64
}

func (s *soakStats) counts() soakCounts {
	return soakCounts{
		Configs: s.Configs.Load(), Reconfigs: s.Reconfigs.Load(), Verifies: s.Verifies.Load(),
		SyncDel: s.SyncDel.Load(), ReaperDel: s.ReaperDel.Load(), Restarts: s.Restarts.Load(),
		Abandoned: s.Abandoned.Load(), Kept: s.Kept.Load(), TAPs: s.TAPs.Load(),
	}
}

func (c soakCounts) add(o soakCounts) soakCounts {
	return soakCounts{
		c.Configs + o.Configs, c.Reconfigs + o.Reconfigs, c.Verifies + o.Verifies, c.SyncDel + o.SyncDel,
		c.ReaperDel + o.ReaperDel, c.Restarts + o.Restarts, c.Abandoned + o.Abandoned, c.Kept + o.Kept, c.TAPs + o.TAPs,
	}
}

// soakProc is one process's side of the soak.
type soakProc struct {
	proc    string    // "p" (parent) or "c" (child): VM IDs carry it
	bridges []*Bridge // by soakProfiles index
	live    *fileLiveSet
	stats   soakStats
}

// run runs workers goroutines of vms lifecycles each and waits.
func (s *soakProc) run(t *testing.T, workers, vms int, seed uint64) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range vms {
				s.lifecycle(t, rng, w, i, i == vms-1)
			}
		})
	}
	wg.Wait()
}

// soakID names VM i of worker w. Odd VMs share an 8-byte prefix with every
// other odd VM of the process, so that their TAPs take hashed candidates.
func (s *soakProc) soakID(w, i int) string {
	if i%2 == 1 {
		return fmt.Sprintf("shared-%s%d-%04d", s.proc, w, i)
	}
	return fmt.Sprintf("%s%d-%04d", s.proc, w, i)
}

// lifecycle records a VM, configures it, checks it for a while (maybe
// reconfiguring it), then keeps, abandons (a crashed VM: forgotten without
// Delete, left to GC), deletes or restarts it.
func (s *soakProc) lifecycle(t *testing.T, rng *rand.Rand, w, i int, keep bool) {
	ctx := t.Context()
	id := s.soakID(w, i)
	prof := rng.IntN(len(soakProfiles))
	b := s.bridges[prof]
	nics, cpu := 1+rng.IntN(4), 1+rng.IntN(4)
	e := &liveEntry{State: liveCreating, Proc: s.proc, Profile: soakProfiles[prof], NICs: nics, CPU: cpu}
	for restart := 0; ; restart++ {
		if !s.set(t, id, e) {
			return
		}
		recs, err := b.Config(ctx, id, nics, &types.VMConfig{CPU: cpu})
		s.stats.Configs.Add(1)
		if err != nil {
			t.Errorf("%s Config(%q, %d, cpu %d) = %v, want nil", soakProfiles[prof], id, nics, cpu, err)
			s.forget(t, id)
			return
		}
		s.stats.TAPs.Add(int64(nics))
		n, err := b.Inspect(ctx, id)
		if err != nil {
			t.Errorf("Inspect(%q) right after its Config = %v, want nil", id, err)
			s.forget(t, id)
			return
		}
		up := *e
		up.State = liveUp
		up.TAPs, up.MACs, up.Index = nil, nil, nil
		for k, r := range recs {
			up.TAPs = append(up.TAPs, r.Tap)
			up.MACs = append(up.MACs, r.Mac)
			up.Index = append(up.Index, n.Links[k].Index)
			if *n.NICs[k] != *r {
				t.Errorf("Inspect(%q) NIC %d = %+v, want Config's %+v", id, k, *n.NICs[k], *r)
			}
		}
		if !s.set(t, id, &up) {
			return
		}
		// A live VM: its TAPs stay exactly as recorded until its owner
		// deletes it, whatever GC and the other workers do meanwhile.
		for range 1 + rng.IntN(3) {
			s.check(t, b, id, &up)
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			if rng.IntN(4) == 0 {
				again, err := b.Config(ctx, id, nics, &types.VMConfig{CPU: cpu})
				s.stats.Reconfigs.Add(1)
				if err != nil {
					t.Errorf("Config(%q) of a live VM again = %v, want nil", id, err)
					continue
				}
				for k := range again {
					if *again[k] != *recs[k] {
						t.Errorf("Config(%q) again NIC %d = %+v, want the same record %+v", id, k, *again[k], *recs[k])
					}
				}
			}
		}
		s.check(t, b, id, &up) // at delete time
		switch {
		case keep:
			s.stats.Kept.Add(1)
			return
		case rng.IntN(5) == 0:
			// Crashed: the control plane forgets it, GC reclaims its TAPs.
			s.stats.Abandoned.Add(1)
			s.forget(t, id)
			return
		}
		e = &up
		e.State = liveDeleting
		if !s.set(t, id, e) {
			return
		}
		got, err := b.Delete(ctx, []string{id})
		if err != nil || !slices.Equal(got, []string{id}) {
			t.Errorf("Delete(%q) = %q, %v; want [%s], nil", id, got, err, id)
		}
		if prof != soakReaperProfile {
			s.stats.SyncDel.Add(1)
			if err := b.Verify(ctx, id); !errors.Is(err, network.ErrNotFound) {
				t.Errorf("Verify(%q) after its synchronous Delete = %v, want ErrNotFound", id, err)
			}
		} else {
			s.stats.ReaperDel.Add(1)
			if restart == 0 && rng.IntN(3) == 0 {
				// Restarted under the same ID while its deletion is
				// queued: Config finishes the deletion first.
				s.stats.Restarts.Add(1)
				e = &liveEntry{State: liveCreating, Proc: s.proc, Profile: e.Profile, NICs: nics, CPU: cpu}
				continue
			}
		}
		s.forget(t, id)
		return
	}
}

// set records id as e. Recording a VM up checks that no other up VM of
// either process has one of its TAP names or guest MACs: no TAP is ever
// used by two VMs. It reports false (and fails the test) on error.
func (s *soakProc) set(t *testing.T, id string, e *liveEntry) bool {
	t.Helper()
	err := s.live.update(t.Context(), true, func(m map[string]*liveEntry) error {
		if e.State == liveUp {
			for other, o := range m {
				if other == id || o.State != liveUp {
					continue
				}
				for k := range e.TAPs {
					if slices.Contains(o.TAPs, e.TAPs[k]) {
						return fmt.Errorf("vm %s got TAP %s, which live vm %s (%s) has", id, e.TAPs[k], other, o.Proc)
					}
					if slices.Contains(o.MACs, e.MACs[k]) {
						return fmt.Errorf("vm %s got guest MAC %s, which live vm %s (%s) has", id, e.MACs[k], other, o.Proc)
					}
				}
			}
		}
		c := *e
		m[id] = &c
		return nil
	})
	if err != nil {
		t.Errorf("record vm %s %s: %v", id, e.State, err)
		return false
	}
	return true
}

// forget removes id from the database.
func (s *soakProc) forget(t *testing.T, id string) {
	t.Helper()
	if err := s.live.update(t.Context(), true, func(m map[string]*liveEntry) error {
		delete(m, id)
		return nil
	}); err != nil {
		t.Errorf("forget vm %s: %v", id, err)
	}
}

// check fails the test unless the up VM id is intact (Verify nil) on the
// TAPs recorded for it: same names, same ifindexes (a TAP removed and made
// again would have another), same records.
func (s *soakProc) check(t *testing.T, b *Bridge, id string, e *liveEntry) {
	t.Helper()
	ctx := t.Context()
	s.stats.Verifies.Add(1)
	if err := b.Verify(ctx, id); err != nil {
		t.Errorf("Verify(%q) of a live VM = %v, want nil", id, err)
		return
	}
	n, err := b.Inspect(ctx, id)
	if err != nil {
		t.Errorf("Inspect(%q) of a live VM = %v, want nil", id, err)
		return
	}
	if len(n.NICs) != len(e.TAPs) {
		t.Errorf("Inspect(%q) = %d NICs, want %d", id, len(n.NICs), len(e.TAPs))
		return
	}
	for k := range n.NICs {
		if n.NICs[k].Tap != e.TAPs[k] || n.NICs[k].Mac != e.MACs[k] || n.Links[k].Index != e.Index[k] {
			t.Errorf("Inspect(%q) NIC %d = %s %s ifindex %d, want %s %s ifindex %d as when its Config returned",
				id, k, n.NICs[k].Tap, n.NICs[k].Mac, n.Links[k].Index, e.TAPs[k], e.MACs[k], e.Index[k])
		}
	}
}

// soakCheckKernel compares the namespace with the database, under its
// lock: every up VM's TAPs exist as recorded (name, ifindex, tag, MAC,
// master, up), and a TAP named in an up VM's records carries that VM's tag
// and no other. It returns the number of the instance's TAPs seen.
func soakCheckKernel(t *testing.T, f *fixture, live *fileLiveSet, inst owner.Instance) int {
	t.Helper()
	seen := 0
	err := live.update(t.Context(), false, func(m map[string]*liveEntry) error {
		links := f.links(t)
		owners := map[string]string{} // TAP name -> up VM
		for id, e := range m {
			if e.State != liveUp {
				continue
			}
			for k, name := range e.TAPs {
				owners[name] = id
				l := links[name]
				if l == nil {
					t.Errorf("TAP %s of live vm %s (%s) nic %d is gone", name, id, e.Proc, k)
					continue
				}
				var tag owner.Tag
				ok := owner.ParseTag(l.Alias, &tag)
				if !ok || tag.Instance != inst || tag.VMID != id || tag.NIC != k || l.Index != e.Index[k] ||
					l.Address != hostMACOf(t, e.MACs[k]) || l.Master != testBridge || !l.HasFlag("UP") {
					t.Errorf("TAP %s of live vm %s nic %d: ifindex %d alias %q MAC %s master %q flags %v; want ifindex %d, the VM's tag, MAC %s, on %s, UP",
						name, id, k, l.Index, l.Alias, l.Address, l.Master, l.Flags, e.Index[k], hostMACOf(t, e.MACs[k]), testBridge)
				}
			}
		}
		for name, l := range links {
			var tag owner.Tag
			if !owner.ParseTag(l.Alias, &tag) || tag.Instance != inst {
				continue
			}
			seen++
			if id, ok := owners[name]; ok && tag.VMID != id {
				t.Errorf("TAP %s is live vm %s's but carries vm %s's tag", name, id, tag.VMID)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("check the namespace against the live set: %v", err)
	}
	return seen
}

// The soak child's environment.
const (
	soakHelperEnv  = "TAPBRIDGE_SOAK_HELPER" // "1" in the child
	soakNetnsEnv   = "TAPBRIDGE_SOAK_NETNS"
	soakRootEnv    = "TAPBRIDGE_SOAK_ROOT"
	soakLiveEnv    = "TAPBRIDGE_SOAK_LIVE"
	soakWorkersEnv = "TAPBRIDGE_SOAK_WORKERS"
	soakVMsEnv     = "TAPBRIDGE_SOAK_VMS"
	soakSeedEnv    = "TAPBRIDGE_SOAK_SEED"
)

// Soak size: bounded so that the whole package runs in a few minutes under
// -race on a loaded 2-core machine.
const (
	soakWorkers = 4  // goroutines per process
	soakVMs     = 60 // lifecycles per goroutine
)

// soakConfig is the instance's configuration in both processes: GC relies
// on the live set alone (a positive grace, so no in-flight lock: with
// Configs running all the time a negative grace would fail every cycle
// closed); the reaper runs every 2 ms.
func soakConfig(root, nsPath, hv string) *config.Config {
	return &config.Config{
		RootDir: root, NetnsPath: nsPath, Hypervisor: hv,
		GCGrace: time.Millisecond, ReapInterval: 2 * time.Millisecond,
		// One profile deletes in the background, the others synchronously.
		SyncDelete: hv != soakProfiles[soakReaperProfile],
	}
}

// newSoakProc makes a process's Bridges (its own Bridges, closed by the
// caller) and its side of the database.
func newSoakProc(t *testing.T, proc, root, nsPath, livePath string) *soakProc {
	t.Helper()
	s := &soakProc{proc: proc, live: newFileLiveSet(livePath)}
	for k, hv := range soakProfiles {
		b, err := New(soakConfig(root, nsPath, hv), testBridge)
		if err != nil {
			t.Fatalf("New(%s) = %v", hv, err)
		}
		if k == soakReaperProfile {
			b.StartReaper()
		}
		s.bridges = append(s.bridges, b)
	}
	return s
}

func (s *soakProc) close(t *testing.T) {
	t.Helper()
	for _, b := range s.bridges {
		if err := b.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	}
	if st := s.bridges[soakReaperProfile].Stats(); st.Failed != 0 {
		t.Errorf("reaper Stats() = %+v, want no failed deletion", st)
	}
}

// TestIntegrationSoakHelperProcess is the soak's child; run directly it
// does nothing.
func TestIntegrationSoakHelperProcess(t *testing.T) {
	if os.Getenv(soakHelperEnv) != "1" {
		return
	}
	workers, _ := strconv.Atoi(os.Getenv(soakWorkersEnv))
	vms, _ := strconv.Atoi(os.Getenv(soakVMsEnv))
	seed, _ := strconv.ParseUint(os.Getenv(soakSeedEnv), 10, 64)
	fds, goroutines := testutil.FDCountBusy(t), runtime.NumGoroutine()
	s := newSoakProc(t, "c", os.Getenv(soakRootEnv), os.Getenv(soakNetnsEnv), os.Getenv(soakLiveEnv))
	s.run(t, workers, vms, seed)
	s.close(t)
	checkFDs(t, fds, "the soak child")
	checkGoroutines(t, goroutines, "the soak child")
	out, _ := json.Marshal(s.stats.counts())
	fmt.Printf("soakstats %s\n", out)
}

// checkGoroutines fails the test if more goroutines run than before,
// after a generous settle time (exiting goroutines take a moment). Fewer is
// fine: a goroutine of an earlier test may have ended meanwhile.
func checkGoroutines(t *testing.T, before int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	n := runtime.NumGoroutine()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%s: %d goroutines, want at most %d as before; stacks:\n%s", what, n, before, buf)
	}
}

// startHelper runs this test binary again as a helper process running only
// test, with env added, and collects its standard output by line.
func startHelper(t *testing.T, test string, env ...string) *gcChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper process: %v", err)
	}
	c := &gcChild{cmd: cmd, lines: make(chan string, 1<<16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// wait reads every line the helper writes until it exits, then reaps it.
func (c *gcChild) wait() ([]string, error) {
	var lines []string
	for l := range c.lines {
		lines = append(lines, l)
	}
	return lines, c.cmd.Wait()
}

func TestIntegrationSoak(t *testing.T) {
	start := time.Now()
	f := newFixture(t, soakConfig("", "", config.CloudHypervisor))
	ctx := t.Context()
	inst := f.b.inst
	livePath := filepath.Join(t.TempDir(), "vms.json")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	fds, goroutines := testutil.FDCountBusy(t), runtime.NumGoroutine()

	parent := newSoakProc(t, "p", f.dir, testutil.NSPath(f.ns), livePath)
	live := parent.live
	o := gc.New()
	f.b.RegisterGC(o)
	gc.Register(o, live.module())

	// GC every few milliseconds, and the namespace checked against the
	// database every so often, until the workers of both processes are done.
	var (
		stop                       atomic.Bool
		cycles, busy, reclaimed    atomic.Int64
		kernelChecks, tapsObserved atomic.Int64
		bg                         sync.WaitGroup
	)
	bg.Go(func() {
		for !stop.Load() {
			rep, err := o.RunReport(ctx)
			switch {
			case errors.Is(err, gc.ErrBusy):
				busy.Add(1)
			case err != nil:
				t.Errorf("GC RunReport() during the soak = %v, want nil or ErrBusy", err)
			default:
				cycles.Add(1)
				reclaimed.Add(int64(len(rep.Modules[gcModuleName(inst)].Reclaimed)))
			}
			time.Sleep(time.Duration(1+rand.IntN(4)) * time.Millisecond)
		}
	})
	bg.Go(func() {
		for !stop.Load() {
			time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
			tapsObserved.Add(int64(soakCheckKernel(t, f, live, inst)))
			kernelChecks.Add(1)
		}
	})

	child := startHelper(t, "TestIntegrationSoakHelperProcess",
		soakHelperEnv+"=1", soakNetnsEnv+"="+testutil.NSPath(f.ns), soakRootEnv+"="+f.dir, soakLiveEnv+"="+livePath,
		soakWorkersEnv+"="+strconv.Itoa(soakWorkers), soakVMsEnv+"="+strconv.Itoa(soakVMs), soakSeedEnv+"="+strconv.FormatUint(seed+1, 10))
	parent.run(t, soakWorkers, soakVMs, seed)
	lines, err := child.wait()
	var childCounts soakCounts
	gotStats := false
	for _, l := range lines {
		if s, ok := strings.CutPrefix(l, "soakstats "); ok {
			gotStats = json.Unmarshal([]byte(s), &childCounts) == nil
		}
	}
	if err != nil || !gotStats {
		t.Errorf("soak child = %v, stats %v; want a clean exit with stats; it said:\n%s", err, gotStats, strings.Join(lines, "\n"))
	}
	stop.Store(true)
	bg.Wait()
	if err := parent.bridges[soakReaperProfile].Flush(ctx); err != nil {
		t.Errorf("Flush() = %v, want nil", err)
	}
	soakCheckKernel(t, f, live, inst)

	// A GC with the live set as the workers left it: only the kept VMs'
	// TAPs remain, each VM intact; then with the live set empty, nothing.
	mr := gcRun(t, o, inst)
	reclaimed.Add(int64(len(mr.Reclaimed)))
	final, err := live.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keptTAPs []string
	profile := map[string]*Bridge{}
	for k, hv := range soakProfiles {
		profile[hv] = parent.bridges[k]
	}
	for id, e := range final {
		if e.State != liveUp {
			t.Errorf("live set after the soak has vm %s in state %s, want only up VMs", id, e.State)
			continue
		}
		keptTAPs = append(keptTAPs, e.TAPs...)
		parent.check(t, profile[e.Profile], id, e)
	}
	if want := int64(2 * soakWorkers); int64(len(final)) != want {
		t.Errorf("live set after the soak has %d VMs, want the %d kept ones", len(final), want)
	}
	gcCheckTUNs(t, f, keptTAPs)
	if err := live.update(ctx, true, func(m map[string]*liveEntry) error {
		clear(m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mr = gcRun(t, o, inst)
	gcCheckReport(t, mr, keptTAPs, keptTAPs)
	reclaimed.Add(int64(len(mr.Reclaimed)))
	gcCheckTUNs(t, f)
	f.checkLinks(t, []string{"lo", testBridge})
	if e := f.fdb(t); len(e) != 0 {
		t.Errorf("FDB after the soak = %+v, want empty", e)
	}

	parent.close(t)
	checkFDs(t, fds, "the soak")
	checkGoroutines(t, goroutines, "the soak")

	total := parent.stats.counts().add(childCounts)
	t.Logf("soak: 2 processes x %d workers x %d VM lifecycles in %v (seed %d)", soakWorkers, soakVMs, time.Since(start).Round(time.Millisecond), seed)
	t.Logf("soak: parent %+v", parent.stats.counts())
	t.Logf("soak: child  %+v", childCounts)
	t.Logf("soak: total %+v; operations (Config + Delete + Verify) %d", total, total.Configs+total.Reconfigs+total.SyncDel+total.ReaperDel+total.Verifies)
	t.Logf("soak: GC %d cycles, %d ErrBusy, %d TAPs reclaimed; %d namespace checks saw %d TAPs of the instance",
		cycles.Load(), busy.Load(), reclaimed.Load(), kernelChecks.Load(), tapsObserved.Load())
	if cycles.Load() == 0 {
		t.Errorf("no GC cycle completed during the soak")
	}
}
