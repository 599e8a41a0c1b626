// Command benchtable reads the output of the bench module's benchmarks
// (`go test -bench`) on standard input and prints one table: per measure,
// tapbridge's figure and its ratio to each baseline, then the design's
// targets with their verdicts, headed by the machine and kernel the
// benchmarks ran on. With -count > 1 each figure is the median.
//
// Ratios read the same way whatever the unit: above 1 tapbridge is better
// (that many times faster, smaller, fewer allocations or more packets).
//
// Usage:
//
//	go test -run '^$' -bench . -benchmem | tee bench.out
//	go run ./cmd/benchtable < bench.out
package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	res, err := Parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if len(res.Groups) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark results on standard input")
		os.Exit(1)
	}
	Render(os.Stdout, res)
}

// primary reports whether impl is one of tapbridge's variants.
func primary(impl string) bool { return impl == "tapbridge" || strings.HasPrefix(impl, "tapbridge-") }

// higherBetter reports whether a larger value of unit is better.
func higherBetter(unit string) bool {
	return strings.HasSuffix(unit, "/s") || strings.Contains(unit, "/s@") || strings.HasPrefix(unit, "rate-")
}

// shown reports whether unit gets a row in group g: every custom metric,
// and allocs/op where the benchmark reports allocations per call.
func shown(g *Group, unit string) bool {
	switch unit {
	case "ns/op", "B/op", "MB/s":
		return false
	case "allocs/op":
		return strings.HasPrefix(g.Name, "BenchmarkConfig")
	}
	return true
}

// Ratio returns how many times better tapbridge's value t is than the
// baseline's value base for unit: above 1, tapbridge is better. It returns
// false when the ratio is undefined (a zero).
func Ratio(unit string, t, base float64) (float64, bool) {
	if higherBetter(unit) {
		if base == 0 {
			return 0, false
		}
		return t / base, true
	}
	if t == 0 {
		return 0, false
	}
	return base / t, true
}

// step reports whether impl is a step of BenchmarkConfigSteps (thin+X):
// those get a table of their own, not a column.
func step(impl string) bool { return strings.Contains(impl, "+") }

// baselines returns the non-tapbridge impls in display order: orig, ip,
// floor, thin, guardoff, reaper first, the others after them in order of
// appearance; steps are left out.
func baselines(res *Results) []string {
	var out []string
	for _, want := range []string{"orig", "ip", "floor", "thin", "guardoff", "reaper"} {
		if slices.Contains(res.Impls, want) {
			out = append(out, want)
		}
	}
	for _, i := range res.Impls {
		if !primary(i) && !step(i) && !slices.Contains(out, i) && i != "" {
			out = append(out, i)
		}
	}
	return out
}

// Render writes the machine header, the ratio table and the targets.
func Render(w io.Writer, res *Results) {
	fmt.Fprintln(w, "tapbridge benchmarks, side by side in one run")
	fmt.Fprintf(w, "machine: %s, %s CPUs, %s memory, %s/%s; kernel %s\n",
		firstOf(res.Config, "cpumodel", "cpu"), orUnknown(res.Config["nproc"]), orUnknown(res.Config["memtotal"]),
		orUnknown(res.Config["goos"]), orUnknown(res.Config["goarch"]), orUnknown(res.Config["kernel"]))
	fmt.Fprintln(w, "each cell: the baseline's figure (tapbridge's ratio to it; above 1 = tapbridge better: x faster, x smaller)")
	fmt.Fprintln(w)

	bases := baselines(res)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "measure\ttapbridge")
	for _, b := range bases {
		fmt.Fprintf(tw, "\tvs %s", b)
	}
	fmt.Fprintln(tw)
	for _, g := range res.Groups {
		for _, impl := range g.Impls {
			if !primary(impl) {
				continue
			}
			tm := g.ByImp[impl]
			for _, unit := range g.Units {
				t, ok := tm.Median(unit)
				if !ok || !shown(g, unit) {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s", rowName(g.Name, impl, unit), num(t))
				for _, b := range bases {
					v, ok := g.ByImp[b].Median(unit)
					switch r, rok := Ratio(unit, t, v); {
					case !ok:
						fmt.Fprint(tw, "\t-")
					case !rok:
						fmt.Fprintf(tw, "\t%s", num(v))
					default:
						fmt.Fprintf(tw, "\t%s (%sx)", num(v), num(r))
					}
				}
				fmt.Fprintln(tw)
			}
		}
	}
	tw.Flush()
	renderSteps(w, res)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (DESIGN.md, Scale targets; issues 9, 10, 13)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range Targets {
		got, verdict := t.Check(res)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Text, got, verdict)
	}
	tw.Flush()
}

// renderSteps writes, for each BenchmarkConfigSteps group, every step's
// Config p50 and p99 and what its p50 adds to the thin floor's.
func renderSteps(w io.Writer, res *Results) {
	for _, g := range res.Groups {
		if !strings.HasPrefix(g.Name, "BenchmarkConfigSteps") {
			continue
		}
		thin, ok := g.ByImp["thin"].Median("p50-ms")
		if !ok {
			continue
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s: the thin floor plus one step at a time (medians)\n", strings.TrimPrefix(g.Name, "Benchmark"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "impl\tp50-ms\tp99-ms\tp50 over thin, ms")
		for _, impl := range g.Impls {
			p50, _ := g.ByImp[impl].Median("p50-ms")
			p99, _ := g.ByImp[impl].Median("p99-ms")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%+.3f\n", impl, num(p50), num(p99), p50-thin)
		}
		tw.Flush()
	}
}

// rowName is the group name without "Benchmark", with the variant and unit.
func rowName(group, impl, unit string) string {
	n := strings.TrimPrefix(group, "Benchmark")
	if impl != "tapbridge" {
		n += " [" + impl + "]"
	}
	return n + " " + unit
}

// num formats v with 3 significant digits, without exponent for the usual
// range.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func firstOf(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return "unknown"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Target is one of the design's goals, checked on the results.
type Target struct {
	Text  string
	Group string // exact group name
	Impl  string // tapbridge's variant
	Unit  string
	// Base is the baseline impl for a ratio target, "" for an absolute
	// one. A ratio target needs Ratio >= Min; an absolute one value <= Max,
	// or, when Max is 0, value >= Min.
	Base string
	Min  float64
	Max  float64
}

// Targets are the goals of DESIGN.md's "Scale targets".
var Targets = []Target{
	{Text: "churn 1-NIC VMs >= floor (same mechanisms)", Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "floor", Min: 1},
	{Text: "churn 1-NIC VMs >= 50x orig", Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "orig", Min: 50},
	{Text: "churn 4-NIC VMs >= floor (same mechanisms)", Group: "BenchmarkChurn/nics=4/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "floor", Min: 1},
	{Text: "churn 4-NIC VMs >= 60x orig", Group: "BenchmarkChurn/nics=4/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "orig", Min: 60},
	{Text: "Config p50 within 1.2x of floor (1 NIC, multi-queue)", Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge", Unit: "p50-ms", Base: "floor", Min: 1 / 1.2},
	{Text: "Config p99 >= 20x better than orig (1 NIC, multi-queue)", Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge", Unit: "p99-ms", Base: "orig", Min: 20},
	{Text: "Delete p50 <= 0.1 ms with the reaper", Group: "BenchmarkDelete/nics=1/cpu=2", Impl: "tapbridge", Unit: "p50-ms", Max: 0.1},
	{Text: "Delete p99 <= 0.1 ms with the reaper", Group: "BenchmarkDelete/nics=1/cpu=2", Impl: "tapbridge", Unit: "p99-ms", Max: 0.1},
	{Text: "kernel memory per multi-queue TAP <= 0.5 MiB", Group: "BenchmarkTAPMemory/taps=400", Impl: "tapbridge", Unit: "MiB/TAP", Max: 0.5},
	{Text: "GC scan within 1.2x of the kernel-filtered floor", Group: "BenchmarkGCScan/taps=5000", Impl: "tapbridge", Unit: "ms/scan", Base: "floor", Min: 1 / 1.2},
	{Text: "GC reclaim of 100 orphans >= 20x orig", Group: "BenchmarkGCReclaim/orphans=100", Impl: "tapbridge", Unit: "ms/reclaim", Base: "orig", Min: 20},
	{Text: "GC reclaim of 1000 orphans >= 20x orig", Group: "BenchmarkGCReclaim/orphans=1000", Impl: "tapbridge", Unit: "ms/reclaim", Base: "orig", Min: 20},
	{Text: "Config p50 <= 1.1x thin floor, 1-NIC single-queue (issue 13)", Group: "BenchmarkConfig/nics=1/cpu=1", Impl: "tapbridge", Unit: "p50-ms", Base: "thin", Min: 1 / 1.1},
	{Text: "Config p50 <= 1.1x thin floor, 1-NIC multi-queue (issue 13)", Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge", Unit: "p50-ms", Base: "thin", Min: 1 / 1.1},
	{Text: "Config p50 <= 1.1x thin floor, 4-NIC multi-queue (issue 13)", Group: "BenchmarkConfig/nics=4/cpu=2", Impl: "tapbridge", Unit: "p50-ms", Base: "thin", Min: 1 / 1.1},
	{Text: "churn >= 0.9x thin floor async, 1-NIC single-queue (issue 13)", Group: "BenchmarkChurn/nics=1/cpu=1", Impl: "tapbridge", Unit: "VMs/s", Base: "thin", Min: 0.9},
	{Text: "churn >= 0.9x thin floor async, 1-NIC multi-queue (issue 13)", Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "thin", Min: 0.9},
	{Text: "churn >= 0.9x thin floor async, 4-NIC multi-queue (issue 13)", Group: "BenchmarkChurn/nics=4/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "thin", Min: 0.9},
	{Text: "default Delete churn >= 0.9x reaper's, 1-NIC multi-queue (issue 10)", Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "reaper", Min: 0.9},
	{Text: "guard l2 unbound: Config p50 <= 1.15x off, 1-NIC multi-queue (issue 9)", Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge", Unit: "p50-ms", Base: "guardoff", Min: 1 / 1.15},
	{Text: "guard l2 bound: Config p50 <= 1.15x off, 1-NIC multi-queue (issue 9)", Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge-bound", Unit: "p50-ms", Base: "guardoff", Min: 1 / 1.15},
	{Text: "guard l2 unbound: Config p99 <= 1.15x off, 1-NIC multi-queue (issue 9)", Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge", Unit: "p99-ms", Base: "guardoff", Min: 1 / 1.15},
	{Text: "guard l2 unbound: churn >= 1/1.15x off, 1-NIC multi-queue (issue 9)", Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "guardoff", Min: 1 / 1.15},
	{Text: "guard l2 bound: churn >= 1/1.15x off, 1-NIC multi-queue (issue 9)", Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge-bound", Unit: "VMs/s", Base: "guardoff", Min: 1 / 1.15},
	{Text: "guard l2: guest pkts/s >= 0.95x off (issue 9)", Group: "BenchmarkGuestTraffic/frame=64", Impl: "tapbridge", Unit: "pkts/s", Base: "guardoff", Min: 0.95},
	{Text: "scale: Config rate at 10,000 >= 0.9x at 1,000, single-queue (issue 13)", Group: "BenchmarkScale/vms=10000/cpu=1", Impl: "tapbridge", Unit: "rate-10k/1k", Min: 0.9},
	{Text: "scale: Config rate at 10,000 >= 0.9x at 1,000, multi-queue (issue 13)", Group: "BenchmarkScale/vms=10000/cpu=2", Impl: "tapbridge", Unit: "rate-10k/1k", Min: 0.9},
	{Text: "noqueue costs guests nothing (pkts/s >= 0.9x default qdisc; run-to-run noise ~10%)", Group: "BenchmarkGuestTraffic/frame=64", Impl: "tapbridge", Unit: "pkts/s", Base: "defaultqdisc", Min: 0.9},
}

// Check returns the measured figure and "ok", "MISS" or "not run".
func (t Target) Check(res *Results) (got, verdict string) {
	var g *Group
	for _, x := range res.Groups {
		if x.Name == t.Group {
			g = x
		}
	}
	if g == nil {
		return "-", "not run"
	}
	v, ok := g.ByImp[t.Impl].Median(t.Unit)
	if !ok {
		return "-", "not run"
	}
	if t.Base == "" && t.Max == 0 {
		return fmt.Sprintf("%s %s, need >= %s", num(v), t.Unit, num(t.Min)), verdictOf(v >= t.Min)
	}
	if t.Base == "" {
		return fmt.Sprintf("%s %s, need <= %s", num(v), t.Unit, num(t.Max)), verdictOf(v <= t.Max)
	}
	bv, ok := g.ByImp[t.Base].Median(t.Unit)
	if !ok {
		return "-", "not run"
	}
	r, ok := Ratio(t.Unit, v, bv)
	if !ok {
		return "-", "undefined"
	}
	return fmt.Sprintf("%sx, need >= %sx (%s vs %s %s)", num(r), num(t.Min), num(v), num(bv), t.Unit), verdictOf(r >= t.Min)
}

func verdictOf(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}
