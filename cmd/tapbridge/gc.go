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

	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
)

// liveModule is the GC module that contributes the live set.
func liveModule(live gc.Live) gc.Module[gc.Live] {
	return gc.LiveModule("tapbridge/live-set", nil, func(context.Context) (map[string]struct{}, error) { return live, nil })
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
	grace := f.Duration("grace", 0, "override the recorded grace `DURATION` for this cycle (negative: none)")
	asJSON := f.Bool("json", false, "print the report as a JSON object")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		var live gc.Live
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
		// The module uses what New recorded in the root dir (namespace,
		// grace), with --netns and --grace on top.
		over := config.Config{RootDir: in.conf.RootDir, GCGrace: *grace}
		if in.netnsSet {
			over.NetnsPath = in.conf.NetnsPath
		}
		rec := *in.conf
		if *grace != 0 {
			rec.GCGrace = *grace
		}
		return gcCycle(ctx, e, &over, &rec, live, *dry, *asJSON)
	}())
}

// parseLive validates live-set IDs; empty entries are skipped.
func parseLive(ids []string, where string) (gc.Live, error) {
	live := gc.Live{}
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

func readLiveFile(path string) (gc.Live, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("live file: %w", err)
	}
	defer fh.Close()
	live := gc.Live{}
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

// gcCycle runs one cycle of the module over (GCModuleConfig's overrides);
// conf is what the cycle works with, for the report.
func gcCycle(ctx context.Context, e *env, over, conf *config.Config, live gc.Live, dry, asJSON bool) error {
	orch := gc.New()
	mod := bridge.GCModuleConfig(over)
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
		out.Reasons = reasons(mr.Reasons)
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

// reasons lists the library's explanation of every scanned TAP, by TAP.
func reasons(by map[string]gc.Reason) []gcReason {
	out := make([]gcReason, 0, len(by))
	for _, tap := range slices.Sorted(maps.Keys(by)) {
		r := by[tap]
		out = append(out, gcReason{Tap: tap, VMID: r.Owner, Reclaim: r.Reclaim, Reason: string(r.Code), Detail: r.Detail})
	}
	return out
}
