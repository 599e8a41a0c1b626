package bench_test

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDelete measures how long a VM's deletion keeps the caller:
// p50-ms and p99-ms of the delete call alone. Each iteration creates a
// 1-NIC multi-queue VM and deletes it, so ns/op is one whole cycle (the
// timer cannot stop around the create: with a delete of microseconds,
// b.Loop would then run hundreds of thousands of creates).
func BenchmarkDelete(b *testing.B) {
	for _, impl := range []string{"tapbridge", "tapbridge-sync", "floor", "floor-sync", "orig", "ip"} {
		b.Run(fmt.Sprintf("nics=1/cpu=2/impl=%s", impl), func(b *testing.B) {
			benchDelete(b, contenderOpts{impl: impl, nics: 1, cpu: 2})
		})
	}
}

func benchDelete(b *testing.B, o contenderOpts) {
	e := newEnv(b)
	c := newContender(b, e, o)
	lat := make([]time.Duration, 0, 1024)
	i := 0
	ids := make([]string, 1)
	for b.Loop() {
		ids[0] = vmID(i)
		i++
		if err := c.config(ids[0]); err != nil {
			b.Fatalf("config(%s) = %v", ids[0], err)
		}
		t0 := time.Now()
		if err := c.del(ids); err != nil {
			b.Fatalf("del(%s) = %v", ids[0], err)
		}
		lat = append(lat, time.Since(t0))
	}
	if err := c.flush(); err != nil {
		b.Fatal(err)
	}
	reportLatency(b, lat)
}
