package bench_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkConfig measures one Config (all NICs of a VM created, on the
// bridge and up) at a time: p50-ms and p99-ms over every call, and
// allocs/op for tapbridge. Deletion happens outside the timed region, in
// batches.
func BenchmarkConfig(b *testing.B) {
	for _, nics := range []int{1, 4} {
		for _, cpu := range []int{1, 2} {
			for _, impl := range []string{"tapbridge", "floor", "orig", "ip"} {
				b.Run(fmt.Sprintf("nics=%d/cpu=%d/impl=%s", nics, cpu, impl), func(b *testing.B) {
					benchConfig(b, contenderOpts{impl: impl, nics: nics, cpu: cpu})
				})
			}
		}
	}
}

func benchConfig(b *testing.B, o contenderOpts) {
	e := newEnv(b)
	if o.impl == "tapbridge" {
		o.impl = "tapbridge-sync" // deletions are batched outside the timed region
	}
	c := newContender(b, e, o)
	batch := 64
	if defaultQdisc(o.impl) && o.cpu > 1 {
		batch = max(1, 16/o.nics) // at most 16 TAPs of ~96 MB each alive
	}
	lat := make([]time.Duration, 0, 1024)
	pending := make([]string, 0, batch)
	i := 0
	for b.Loop() {
		id := vmID(i)
		i++
		t0 := time.Now()
		if err := c.config(id); err != nil {
			b.Fatalf("config(%s) = %v", id, err)
		}
		lat = append(lat, time.Since(t0))
		pending = append(pending, id)
		if len(pending) == batch {
			b.StopTimer()
			if err := c.purge(pending); err != nil {
				b.Fatalf("purge = %v", err)
			}
			pending = pending[:0]
			b.StartTimer()
		}
	}
	b.StopTimer()
	if err := c.purge(pending); err != nil {
		b.Fatalf("purge = %v", err)
	}
	reportLatency(b, lat)
}
