package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/rtnl"
)

// liveSet is the GC snapshot of the VMs the caller says are running.
// ActiveVMIDs must return a non-nil map even when the set is empty: the
// bridge module reclaims only doomed TAPs when no snapshot reports a live
// set at all.
type liveSet map[string]struct{}

// ActiveVMIDs implements the gc cross-module protocol.
func (l liveSet) ActiveVMIDs() map[string]struct{} { return l }

// liveModule is the GC module that contributes the live set.
func liveModule(live liveSet) gc.Module[liveSet] {
	return gc.Module[liveSet]{
		Name:   "tapbridge/live-set",
		ReadDB: func(context.Context) (liveSet, error) { return live, nil },
	}
}

// gcReport is what gc --json prints; see the package documentation.
type gcReport struct {
	DryRun     bool              `json:"dry_run"`
	Root       string            `json:"root"`
	Netns      string            `json:"netns"`
	Grace      string            `json:"grace"`
	Live       int               `json:"live"`
	Scanned    []string          `json:"scanned"`
	Orphans    []string          `json:"orphans"`
	Reclaimed  []string          `json:"reclaimed"`
	Failed     map[string]string `json:"failed"`
	Reasons    []gcReason        `json:"reasons,omitempty"`
	DurationMS float64           `json:"duration_ms"`
}

// gcReason says why a dry run would reclaim or keep one TAP.
type gcReason struct {
	Tap     string `json:"tap"`
	VMID    string `json:"vm_id"`
	Reclaim bool   `json:"reclaim"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
}

// Reason codes of gcReason.Reason.
const (
	reasonDoomed   = "doomed"   // reclaim: queued for deletion already
	reasonNotLive  = "not-live" // reclaim: VM not live, TAP idle and old enough
	reasonAttached = "attached" // keep: a process holds queue files open
	reasonLive     = "live"     // keep: the VM is in the live set
	reasonYoung    = "young"    // keep: younger than the grace period
	reasonChanged  = "changed"  // the TAP changed between the plan and the scan
)

func runGC(ctx context.Context, e *env, args []string) int {
	f := newFlags("gc", "gc (--live ID,ID,... | --live-file FILE) [--dry-run] [--json] [flags]",
		`Run one garbage-collection cycle: reclaim the instance's TAPs whose VM is not
in the live set, that no process holds open, and that are older than the
instance's grace period (recorded by 'tapbridge up --gc-grace'; 1m by
default), plus TAPs already queued for deletion. The live set must be given
explicitly; an empty one ('--live ""') makes every idle, old enough TAP an
orphan. With --dry-run nothing is deleted: it lists every TAP of the instance
with what a cycle would do and why. No bridge is needed.`)
	liveFlag := f.String("live", "", "the live VMs: comma-separated `IDs`")
	liveFile := f.String("live-file", "", "read the live VMs from `FILE`: one ID per line, '#' starts a comment")
	dry := f.Bool("dry-run", false, "reclaim nothing: show what a cycle would reclaim and why")
	grace := f.Duration("grace", 0, "override the recorded grace `DURATION` (not supported by the library yet: use 'up --gc-grace')")
	asJSON := f.Bool("json", false, "print the report as a JSON object")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		var live liveSet
		var err error
		switch hasLive, hasFile := f.isSet("live"), f.isSet("live-file"); {
		case hasLive && hasFile:
			return usagef("give --live or --live-file, not both")
		case hasLive:
			if live, err = parseLive(strings.Split(*liveFlag, ","), "--live"); err != nil {
				return usagef("%v", err)
			}
		case hasFile:
			if live, err = readLiveFile(*liveFile); err != nil {
				return err
			}
		default:
			return usagef("a live set is required (--live ID,... or --live-file FILE; --live '' for none): without one every TAP would be reclaimed")
		}
		in, err := inst.load(f)
		if err != nil {
			return err
		}
		// bridge.GCModule works on what New recorded in the root dir: its
		// namespace and grace period. It takes no override.
		rec := in.conf
		if in.netnsSet {
			if !in.recorded {
				return fmt.Errorf("nothing is recorded in %s, so GC would scan the caller's network namespace, not %s (bridge.GCModule takes no namespace)", in.conf.RootDir, in.conf.NetnsPath)
			}
			if in.recNetns != in.conf.NetnsPath {
				return fmt.Errorf("--netns %s differs from the namespace recorded in %s, where GC works (bridge.GCModule takes no namespace)", in.conf.NetnsPath, in.conf.RootDir)
			}
		}
		if f.isSet("grace") && *grace != rec.GCGrace {
			return fmt.Errorf("--grace %v: overriding the recorded grace period (%v) needs a library hook that bridge.GCModule lacks; set the instance's grace with 'tapbridge up --gc-grace'", *grace, rec.GCGrace)
		}
		return gcCycle(ctx, e, rec, live, *dry, *asJSON)
	}())
}

// parseLive validates live-set IDs; empty entries are skipped.
func parseLive(ids []string, where string) (liveSet, error) {
	live := liveSet{}
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if err := owner.ValidateVMID(id); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		live[id] = struct{}{}
	}
	return live, nil
}

func readLiveFile(path string) (liveSet, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("live file: %w", err)
	}
	defer fh.Close()
	live := liveSet{}
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		ls, err := parseLive([]string{line}, fmt.Sprintf("%s:%d", path, n))
		if err != nil {
			return nil, err
		}
		maps.Copy(live, ls)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("live file: %w", err)
	}
	return live, nil
}

func gcCycle(ctx context.Context, e *env, conf *config.Config, live liveSet, dry, asJSON bool) error {
	orch := gc.New()
	mod := bridge.GCModule(conf.RootDir)
	gc.Register(orch, mod)
	gc.Register(orch, liveModule(live))
	start := time.Now()
	var rep *gc.Report
	var err error
	if dry {
		rep, err = orch.Plan(ctx)
	} else {
		rep, err = orch.RunReport(ctx)
	}
	dur := time.Since(start)
	if rep == nil {
		return err
	}
	mr := rep.Modules[mod.Name]
	out := &gcReport{
		DryRun:     dry,
		Root:       conf.RootDir,
		Netns:      conf.NetnsPath,
		Grace:      conf.GCGrace.String(),
		Live:       len(live),
		Scanned:    nonNil(mr.Scanned),
		Orphans:    nonNil(mr.Orphans),
		Reclaimed:  nonNil(mr.Reclaimed),
		Failed:     map[string]string{},
		DurationMS: float64(dur.Microseconds()) / 1000,
	}
	for tap, ferr := range mr.Failed {
		out.Failed[tap] = oneLine(ferr.Error())
	}
	if dry {
		taps, serr := scanTAPs(ctx, conf)
		if serr != nil {
			return fmt.Errorf("dry run: read the TAPs for the reasons: %w", serr)
		}
		out.Reasons = reasons(taps, mr.Orphans, live, conf.GCGrace, time.Now())
	}
	if asJSON {
		if werr := writeJSON(e.stdout, out); werr != nil {
			return werr
		}
		return err
	}
	printGC(e, out)
	return err
}

// nonNil returns a sorted copy of s that is never nil, so that JSON shows
// an empty list as [] rather than null.
func nonNil(s []string) []string {
	out := append(make([]string, 0, len(s)), s...)
	slices.Sort(out)
	return out
}

func printGC(e *env, r *gcReport) {
	if r.DryRun {
		if len(r.Reasons) > 0 {
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TAP\tVM\tACTION\tWHY")
			for _, x := range r.Reasons {
				action := "keep"
				if x.Reclaim {
					action = "reclaim"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Tap, x.VMID, action, x.Detail)
			}
			tw.Flush()
		}
		fmt.Fprintf(e.stdout, "gc --dry-run: would reclaim %d of %s (live set: %s, grace %s)\n",
			len(r.Orphans), plural(len(r.Scanned), "TAP"), plural(r.Live, "VM"), r.Grace)
		return
	}
	fmt.Fprintf(e.stdout, "gc: scanned %s, %s, reclaimed %d, failed %d in %.1f ms\n",
		plural(len(r.Scanned), "TAP"), plural(len(r.Orphans), "orphan"), len(r.Reclaimed), len(r.Failed), r.DurationMS)
	if len(r.Reclaimed) > 0 {
		fmt.Fprintf(e.stdout, "reclaimed: %s\n", strings.Join(r.Reclaimed, " "))
	}
	for _, tap := range slices.Sorted(maps.Keys(r.Failed)) {
		fmt.Fprintf(e.stdout, "failed: %s: %s\n", tap, r.Failed[tap])
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// scannedTAP is one of the instance's TAPs, as a dry run explains it.
type scannedTAP struct {
	name     string
	vmID     string
	created  time.Time
	attached uint32
	doomed   bool
}

// scanTAPs reads the instance's TAPs in its namespace: the same
// kernel-filtered dump and owner tags the bridge GC module reads, which
// keeps its candidates to itself (see the package documentation).
func scanTAPs(ctx context.Context, conf *config.Config) ([]scannedTAP, error) {
	fd := 0
	if conf.NetnsPath != "" {
		var err error
		if fd, err = netns.Open(conf.NetnsPath); err != nil {
			return nil, err
		}
		defer unix.Close(fd)
	}
	conn, err := rtnl.Dial(&rtnl.Config{NetNS: fd})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	inst := owner.InstanceOf(conf.RootDir)
	group := inst.Group()
	var taps []scannedTAP
	var tag owner.Tag
	err = conn.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun"}, func(l *rtnl.Link) error {
		if l.Tun == nil || !l.Tun.TAP || !owner.ParseTag(l.Alias, &tag) || tag.Instance != inst {
			return nil
		}
		taps = append(taps, scannedTAP{
			name:     strings.Clone(l.Name),
			vmID:     strings.Clone(tag.VMID),
			created:  time.UnixMilli(tag.Created),
			attached: l.Tun.Queues,
			doomed:   l.Group == group,
		})
		return nil
	}, func() { taps = taps[:0] })
	return taps, err
}

// reasons explains, for every TAP scanned, what a cycle does with it,
// following gc.Diff's rules; orphans (what Plan chose) is the authority.
func reasons(taps []scannedTAP, orphans []string, live liveSet, grace time.Duration, now time.Time) []gcReason {
	chosen := make(map[string]bool, len(orphans))
	for _, o := range orphans {
		chosen[o] = true
	}
	out := make([]gcReason, 0, len(taps))
	for _, t := range taps {
		r := gcReason{Tap: t.name, VMID: t.vmID}
		age := now.Sub(t.created).Truncate(time.Second)
		_, isLive := live[t.vmID]
		switch {
		case t.attached > 0:
			r.Reason, r.Detail = reasonAttached, fmt.Sprintf("attached: %d queue files open", t.attached)
		case isLive && !t.doomed:
			r.Reason, r.Detail = reasonLive, "vm is live"
		case grace > 0 && now.Sub(t.created) < grace:
			r.Reason, r.Detail = reasonYoung, fmt.Sprintf("young: age %v < grace %v", age, grace)
		case t.doomed:
			r.Reclaim, r.Reason, r.Detail = true, reasonDoomed, "doomed: already queued for deletion"
		default:
			r.Reclaim, r.Reason = true, reasonNotLive
			r.Detail = fmt.Sprintf("vm not live, not attached, age %v", age)
			if grace > 0 {
				r.Detail += fmt.Sprintf(" >= grace %v", grace)
			} else {
				r.Detail += ", no grace period"
			}
		}
		if r.Reclaim != chosen[t.name] {
			r.Reclaim = chosen[t.name]
			r.Reason, r.Detail = reasonChanged, "changed while the dry run read it: "+r.Detail
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b gcReason) int { return strings.Compare(a.Tap, b.Tap) })
	return out
}
