package bench_test

import (
	"fmt"
	"testing"
	"time"
)

// churnLive is the live set of the churn benchmark: small, because the
// original's multi-queue TAPs cost about 96 MB each (8 VMs of 4 NICs: 3 GB).
const churnLive = 8

// BenchmarkChurn creates and deletes multi-queue VMs (2 vCPUs) in steady
// state: each iteration creates a VM and deletes the oldest of churnLive.
// It reports VMs/s, counting the time to finish asynchronous deletions.
// tapbridge and floor delete asynchronously (group reaper); the -sync
// variants, orig and ip delete on the caller's path.
func BenchmarkChurn(b *testing.B) {
	for _, nics := range []int{1, 4} {
		for _, impl := range []string{"tapbridge", "tapbridge-sync", "floor", "floor-sync", "orig", "ip"} {
			b.Run(fmt.Sprintf("nics=%d/cpu=2/impl=%s", nics, impl), func(b *testing.B) {
				benchChurn(b, contenderOpts{impl: impl, nics: nics, cpu: 2})
			})
		}
	}
}

func benchChurn(b *testing.B, o contenderOpts) {
	e := newEnv(b)
	c := newContender(b, e, o)
	live := make([]string, 0, churnLive+1)
	next := 0
	for range churnLive {
		id := vmID(next)
		next++
		if err := c.config(id); err != nil {
			b.Fatalf("config(%s) = %v", id, err)
		}
		live = append(live, id)
	}
	if err := c.flush(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	n := 0
	for b.Loop() {
		id := vmID(next)
		next++
		if err := c.config(id); err != nil {
			b.Fatalf("config(%s) = %v", id, err)
		}
		live = append(live, id)
		if err := c.del(live[:1]); err != nil {
			b.Fatalf("del(%s) = %v", live[0], err)
		}
		live = append(live[:0], live[1:]...)
		n++
	}
	if err := c.flush(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.ReportMetric(float64(n)/el.Seconds(), "VMs/s")
	b.StopTimer()
	if err := c.purge(live); err != nil {
		b.Fatal(err)
	}
}
