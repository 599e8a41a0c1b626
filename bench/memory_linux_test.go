package bench_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bench/internal/sysinfo"
)

// BenchmarkTAPMemory measures the kernel memory a multi-queue TAP (2
// vCPUs) costs while up: the drop of MemFree (/proc/meminfo) over many TAPs
// brought up by the contender, divided by their number, in MiB/TAP (the
// median over iterations). The original's default qdisc costs about 96 MB
// per TAP, so orig and ip make few; the noqueue contenders make many, for a
// signal well above the noise of other processes. guardoff is tapbridge
// without the guard (its clsact qdisc and filter), thin the thin floor.
func BenchmarkTAPMemory(b *testing.B) {
	for _, impl := range []string{"tapbridge", "guardoff", "thin", "floor", "orig", "ip"} {
		n := 400
		if defaultQdisc(impl) {
			n = 20
		}
		b.Run(fmt.Sprintf("taps=%d/impl=%s", n, impl), func(b *testing.B) {
			benchMemory(b, contenderOpts{impl: impl, nics: 1, cpu: 2}, n)
		})
	}
}

func benchMemory(b *testing.B, o contenderOpts, n int) {
	e := newEnv(b)
	o.sync = true
	c := newContender(b, e, o)
	var perTAP []float64
	next := 0
	ids := make([]string, 0, n)
	for b.Loop() {
		b.StopTimer()
		sysinfo.Settle(5 * time.Second)
		b.StartTimer()
		before := sysinfo.MemFree()
		ids = ids[:0]
		for range n {
			id := vmID(next)
			next++
			if err := c.config(id); err != nil {
				b.Fatalf("config(%s) = %v", id, err)
			}
			ids = append(ids, id)
		}
		after := sysinfo.MemFree()
		perTAP = append(perTAP, float64(before-after)/float64(n)/(1<<20))
		b.StopTimer()
		if err := c.purge(ids); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(perTAP)
	b.ReportMetric(perTAP[len(perTAP)/2], "MiB/TAP")
}
