package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// demoBridge is the bridge the demo makes in its namespace.
const demoBridge = "br0"

type demoOpts struct {
	vms, nics, cpus, crash, workers int
}

func runDemo(ctx context.Context, e *env, args []string) int {
	f := newFlags("demo", "demo [--vms N] [--nics N] [--cpus C] [--crash N] [--workers W]",
		`Show tapbridge at work, as root, without touching the machine's network: in
a throwaway network namespace with a fresh bridge and a temporary root dir,
provision VMs through the library, show what the kernel holds, "crash" some
VMs (forget them: their TAPs stay), run GC with the others as the live set,
check that those survived, delete them (in the background, the default), and
print the rates reached. The namespace, and every TAP in it, vanishes with the
process, even on Ctrl-C; the root dir is removed. Demos may run side by side.`)
	var o demoOpts
	f.IntVar(&o.vms, "vms", 200, "provision `N` VMs")
	f.IntVar(&o.nics, "nics", 2, "`N` NICs per VM, 1 to 16")
	f.IntVar(&o.cpus, "cpus", 2, "`C` vCPUs per VM: one virtio queue pair each")
	f.IntVar(&o.crash, "crash", 50, "crash `N` VMs before GC")
	f.IntVar(&o.workers, "workers", 4, "`W` concurrent Config calls")
	if done, code := f.parse(e, args); done {
		return code
	}
	// The NIC and CPU counts are the library's to judge.
	if err := bridge.CheckConfig(&config.Config{}, demoBridge, "demo-0", o.nics, &types.VMConfig{CPU: o.cpus}); err != nil {
		return f.finish(e, err)
	}
	switch {
	case o.vms < 1:
		return f.usageErr(e, usagef("--vms %d: want at least 1", o.vms))
	case o.vms*o.nics > bridge.MaxPorts:
		return f.usageErr(e, usagef("--vms %d x --nics %d: a bridge holds at most %d ports", o.vms, o.nics, bridge.MaxPorts))
	case o.crash < 0 || o.crash > o.vms:
		return f.usageErr(e, usagef("--crash %d: want 0..%d (--vms)", o.crash, o.vms))
	case o.workers < 1:
		return f.usageErr(e, usagef("--workers %d: want at least 1", o.workers))
	}
	err := demo(ctx, e, o)
	var pe *privError
	if errors.As(err, &pe) {
		// The hint is in the message; finish would add a second one.
		printErr(e.stderr, err.Error())
		return exitFail
	}
	return f.finish(e, err)
}

// privError is a failure for lack of privilege.
type privError struct{ err error }

func (p *privError) Error() string {
	return "needs root (CAP_SYS_ADMIN for a network namespace, CAP_NET_ADMIN for the bridge and TAPs): " + p.err.Error()
}

func (p *privError) Unwrap() error { return p.err }

// demoRun is one demo: what it made, so that cleanup can undo it.
type demoRun struct {
	e             *env
	o             demoOpts
	progress      bool // stdout is a terminal
	progressShown bool // a progress line waits to be overwritten

	ns      int    // the namespace fd, -1 once closed
	nsPath  string // how the library opens it
	dir     string // the temporary root dir
	brIndex uint32
	b       *bridge.Bridge
	obs     *rtnl.Conn // observes the namespace for the report
}

func demo(ctx context.Context, e *env, o demoOpts) error {
	d := &demoRun{e: e, o: o, ns: -1, progress: isTerminal(e.stdout)}
	err := d.run(ctx)
	cerr := d.cleanup()
	if ctx.Err() != nil {
		if cerr != nil {
			return fmt.Errorf("demo: interrupted; cleaning up: %w", cerr)
		}
		return errors.New("demo: interrupted; cleaned up: root dir removed, and the namespace with its bridge and TAPs goes with the process")
	}
	if err = errors.Join(err, cerr); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if _, serr := os.Stat(d.dir); !errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("demo: root dir %s still exists after cleanup (%v)", d.dir, serr)
	}
	fmt.Fprintln(e.stdout, "demo: OK, nothing left behind")
	return nil
}

// cleanup closes the Bridge (finishing queued deletions), the sockets and
// the namespace fd, and removes the root dir. The namespace, with whatever
// devices remain in it, is destroyed by the kernel when its last fd and
// socket close: here, or when the process exits.
func (d *demoRun) cleanup() error {
	var errs []error
	if d.b != nil {
		errs = append(errs, d.b.Close())
		d.b = nil
	}
	if d.obs != nil {
		errs = append(errs, d.obs.Close())
		d.obs = nil
	}
	if d.ns >= 0 {
		errs = append(errs, unix.Close(d.ns))
		d.ns = -1
	}
	if d.dir != "" {
		errs = append(errs, os.RemoveAll(d.dir))
	}
	return errors.Join(errs...)
}

func (d *demoRun) printf(format string, args ...any) {
	fmt.Fprintf(d.e.stdout, format, args...)
}

// step prints one report line: a label column, then the text.
func (d *demoRun) step(label, format string, args ...any) {
	d.clearProgress()
	d.printf("  %-10s %s\n", label, fmt.Sprintf(format, args...))
}

// more continues the previous report line's text on a line of its own.
func (d *demoRun) more(format string, args ...any) {
	d.printf("  %-10s %s\n", "", fmt.Sprintf(format, args...))
}

func (d *demoRun) showProgress(label string, done, total int) {
	if d.progress {
		d.printf("\r\033[K  %-10s %d/%d", label, done, total)
		d.progressShown = true
	}
}

func (d *demoRun) clearProgress() {
	if d.progressShown {
		d.printf("\r\033[K")
		d.progressShown = false
	}
}

func (d *demoRun) run(ctx context.Context) error {
	o := d.o
	if err := d.setup(ctx); err != nil {
		return err
	}
	ino := "?"
	var st unix.Stat_t
	if unix.Fstat(d.ns, &st) == nil {
		ino = strconv.FormatUint(st.Ino, 10)
	}
	d.printf("tapbridge demo: %d VMs x %d NICs, %d vCPUs each (%s)\n", o.vms, o.nics, o.cpus, config.CloudHypervisor)
	d.step("setup", "throwaway network namespace net:[%s] with bridge %s", ino, demoBridge)
	d.more("root dir %s", d.dir)

	ids := make([]string, o.vms)
	for i := range ids {
		// Eight characters: the whole ID fits in the TAP name (bt + 8 + -N).
		ids[i] = fmt.Sprintf("vm-%05d", i)
	}
	memBefore, memErr := readMem()

	// Provision.
	lat, elapsed, err := d.provision(ctx, ids)
	if err != nil {
		return err
	}
	p50, p99 := percentiles(lat)
	d.step("provision", "%d VMs, %d TAPs in %s: %.0f VMs/s (%d workers)",
		o.vms, o.vms*o.nics, fmtDur(elapsed), rate(o.vms, elapsed), o.workers)
	d.more("Config returns in p50 %s, p99 %s", fmtDur(p50), fmtDur(p99))

	// What the kernel holds.
	memAfter, memErr2 := readMem()
	taps, mq, err := d.countTAPs(ctx)
	if err != nil {
		return err
	}
	ports, err := d.countPorts(ctx)
	if err != nil {
		return err
	}
	d.step("kernel", "%d TAPs (%d multi-queue), %d bridge ports", taps, mq, ports)
	if err := errors.Join(memErr, memErr2); err != nil {
		d.more("kernel memory: n/a (%v)", err)
	} else {
		for _, l := range memUsed(memBefore, memAfter, taps) {
			d.more("%s", l)
		}
	}
	if taps != o.vms*o.nics || ports != taps {
		return fmt.Errorf("the kernel holds %d TAPs and %d bridge ports, want %d of each", taps, ports, o.vms*o.nics)
	}

	// Crash: forget some VMs; their TAPs stay.
	crashed := make(map[string]bool, o.crash)
	for k := range o.crash {
		crashed[ids[k*o.vms/o.crash]] = true
	}
	live := gc.Live{}
	var liveIDs []string
	for _, id := range ids {
		if !crashed[id] {
			live[id] = struct{}{}
			liveIDs = append(liveIDs, id)
		}
	}
	d.step("crash", "%d VMs forgotten: their %d TAPs stay on the bridge", o.crash, o.crash*o.nics)

	// GC with the others as the live set.
	orch := gc.New()
	d.b.RegisterGC(orch)
	lm := liveModule(live)
	gc.Register(orch, lm)
	start := time.Now()
	rep, err := orch.RunReport(ctx)
	gcTime := time.Since(start)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	var mr *gc.ModuleReport
	for name, m := range rep.Modules {
		if name != lm.Name {
			mr = m
		}
	}
	if mr == nil {
		return errors.New("gc: no report from the bridge module")
	}
	d.step("gc", "reclaimed %d of %d TAPs (%d crashed VMs) in %s; %d failed",
		len(mr.Reclaimed), len(mr.Scanned), o.crash, fmtDur(gcTime), len(mr.Failed))
	if len(mr.Reclaimed) != o.crash*o.nics || len(mr.Failed) > 0 {
		return fmt.Errorf("gc reclaimed %d TAPs with %d failures, want %d and none", len(mr.Reclaimed), len(mr.Failed), o.crash*o.nics)
	}

	// The live VMs survived, intact; the crashed ones are gone.
	for i, id := range liveIDs {
		if err := d.b.Verify(ctx, id); err != nil {
			return err
		}
		if i%20 == 0 {
			d.showProgress("verify", i, len(liveIDs))
		}
	}
	nets, err := d.b.List(ctx)
	if err != nil {
		return err
	}
	survivors := 0
	for _, n := range nets {
		if crashed[n.VMID] {
			return fmt.Errorf("crashed vm %s still has TAPs after gc", n.VMID)
		}
		survivors += len(n.NICs)
	}
	if len(nets) != len(liveIDs) || survivors != len(liveIDs)*o.nics {
		return fmt.Errorf("after gc: %d VMs with %d TAPs, want %d with %d", len(nets), survivors, len(liveIDs), len(liveIDs)*o.nics)
	}
	d.step("verify", "%d live VMs intact (%d TAPs); no crashed VM left", len(liveIDs), survivors)

	// Delete the rest: each Delete returns at once, the TAPs go in batches.
	dlat, flush, total, err := d.deleteAll(ctx, liveIDs)
	if err != nil {
		return err
	}
	dp50, dp99 := percentiles(dlat)
	d.step("delete", "%d VMs in %s: %.0f VMs/s, deleted in the background", len(liveIDs), fmtDur(total), rate(len(liveIDs), total))
	d.more("Delete returns in p50 %s, p99 %s; flush %s", fmtDur(dp50), fmtDur(dp99), fmtDur(flush))

	taps, _, err = d.countTAPs(ctx)
	if err != nil {
		return err
	}
	ports, err = d.countPorts(ctx)
	if err != nil {
		return err
	}
	if taps != 0 || ports != 0 {
		return fmt.Errorf("after delete: %d TAPs and %d bridge ports left", taps, ports)
	}
	d.step("left", "0 TAPs, 0 bridge ports")
	d.step("rates", "create %.0f VMs/s, delete %.0f VMs/s, gc %s for %d TAPs",
		rate(o.vms, elapsed), rate(len(liveIDs), total), fmtDur(gcTime), o.crash*o.nics)
	return nil
}

// setup makes the namespace, the bridge in it, the root dir and the
// Bridge.
func (d *demoRun) setup(ctx context.Context) error {
	fd, err := netns.New()
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return &privError{err}
		}
		return err
	}
	d.ns = fd
	d.nsPath = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
	if d.obs, err = rtnl.Dial(&rtnl.Config{NetNS: fd}); err != nil {
		return err
	}
	if d.brIndex, err = d.obs.AddBridge(ctx, demoBridge); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return &privError{err}
		}
		return fmt.Errorf("bridge %s: %w", demoBridge, err)
	}
	if d.dir, err = os.MkdirTemp("", "tapbridge-demo-"); err != nil {
		return err
	}
	conf := &config.Config{
		RootDir:    d.dir,
		NetnsPath:  d.nsPath,
		Hypervisor: config.CloudHypervisor,
		// No grace: nothing young is protected. A GC then runs only while
		// no Config of this instance is in flight, which holds when it runs.
		GCGrace: -1,
	}
	b, err := bridge.New(conf, demoBridge)
	if err != nil {
		return err
	}
	d.b = b
	return ctx.Err()
}

// provision configures every VM with o.workers goroutines and returns each
// Config's latency and the wall time.
func (d *demoRun) provision(ctx context.Context, ids []string) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lat := make([]time.Duration, len(ids))
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
	)
	vmCfg := &types.VMConfig{CPU: d.o.cpus}
	start := time.Now()
	for range d.o.workers {
		wg.Go(func() {
			for i := range jobs {
				t := time.Now()
				_, err := d.b.Config(ctx, ids[i], d.o.nics, vmCfg)
				lat[i] = time.Since(t)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				done++
				if done%10 == 0 {
					d.showProgress("provision", done, len(ids))
				}
				mu.Unlock()
			}
		})
	}
feed:
	for i := range ids {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return lat, elapsed, firstErr
}

// deleteAll deletes the VMs one Delete call each (the default Delete: the
// TAPs are doomed at once and deleted in the background), then flushes.
// It returns the latency of each call, the flush time and the total.
func (d *demoRun) deleteAll(ctx context.Context, ids []string) (lat []time.Duration, flush, total time.Duration, err error) {
	lat = make([]time.Duration, len(ids))
	start := time.Now()
	for i, id := range ids {
		t := time.Now()
		if _, err := d.b.Delete(ctx, []string{id}); err != nil {
			return nil, 0, 0, err
		}
		lat[i] = time.Since(t)
	}
	t := time.Now()
	err = d.b.Flush(ctx)
	flush = time.Since(t)
	total = time.Since(start)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("background deletion: %w", err)
	}
	return lat, flush, total, nil
}

// countTAPs counts the TAPs in the namespace, and those multi-queue.
func (d *demoRun) countTAPs(ctx context.Context) (taps, mq int, err error) {
	links, err := d.obs.Links(ctx, &rtnl.LinkFilter{Kind: "tun"})
	if err != nil {
		return 0, 0, err
	}
	for _, l := range links {
		if l.Tun != nil && l.Tun.TAP {
			taps++
			if l.Tun.MultiQueue {
				mq++
			}
		}
	}
	return taps, mq, nil
}

// countPorts counts the bridge's ports.
func (d *demoRun) countPorts(ctx context.Context) (int, error) {
	links, err := d.obs.Links(ctx, &rtnl.LinkFilter{Master: d.brIndex})
	return len(links), err
}

// memSample is what the demo reads from /proc/meminfo, in kB: MemFree,
// and the kernel's own allocations a TAP makes (unreclaimable slab,
// per-CPU and vmalloc memory), which other processes disturb less.
type memSample struct {
	free, kernel int64
}

func readMem() (memSample, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return memSample{}, err
	}
	var m memSample
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var key string
		var kb int64
		if n, _ := fmt.Sscanf(sc.Text(), "%s %d kB", &key, &kb); n != 2 {
			continue
		}
		switch key {
		case "MemFree:":
			m.free = kb
		case "SUnreclaim:", "Percpu:", "VmallocUsed:":
			m.kernel += kb
		default:
			continue
		}
		seen++
	}
	if seen != 4 {
		return memSample{}, errors.New("/proc/meminfo lacks MemFree, SUnreclaim, Percpu or VmallocUsed")
	}
	return m, nil
}

// memUsed describes the memory n TAPs took between two samples, one line
// per measure.
func memUsed(before, after memSample, n int) []string {
	used, kern := before.free-after.free, after.kernel-before.kernel
	if n == 0 {
		return []string{"kernel memory: no TAPs"}
	}
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	out := []string{"kernel memory: too small to see in MemFree"}
	if used > 0 {
		out[0] = fmt.Sprintf("kernel memory ~%.1f MB, %.2f MB per TAP (MemFree drop)", mb(used), mb(used)/float64(n))
	}
	if kern > 0 {
		out = append(out, fmt.Sprintf("slab + percpu + vmalloc: %.2f MB per TAP", mb(kern)/float64(n)))
	}
	return out
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// fmtDur prints a duration in ms with a precision that suits it.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2f s", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 0.1:
		return fmt.Sprintf("%.2f ms", ms)
	default:
		return fmt.Sprintf("%.1f µs", ms*1000)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
