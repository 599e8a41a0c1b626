package bench_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkConfig measures one Config (all NICs of a VM created, on the
// bridge and up) at a time: p50-ms and p99-ms over every call, and
// allocs/op for tapbridge. Deletion happens outside the timed region, in
// batches. tapbridge (guard l2, unbound), tapbridge-bound (l2, an address
// bound to each NIC) and guardoff (guard off) compare the guard's cost;
// thin and floor are the thin and the full floor.
func BenchmarkConfig(b *testing.B) {
	for _, nics := range []int{1, 4} {
		for _, cpu := range []int{1, 2} {
			for _, impl := range []string{"tapbridge", "tapbridge-bound", "guardoff", "thin", "floor", "orig", "ip"} {
				b.Run(fmt.Sprintf("nics=%d/cpu=%d/impl=%s", nics, cpu, impl), func(b *testing.B) {
					benchConfig(b, contenderOpts{impl: impl, nics: nics, cpu: cpu})
				})
			}
		}
	}
}

func benchConfig(b *testing.B, o contenderOpts) {
	e := newEnv(b)
	o.sync = true // tapbridge variants: deletions are batched outside the timed region
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
