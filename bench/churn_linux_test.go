package bench_test

import (
	"fmt"
	"testing"
	"time"
)

// churnLive is the live set of the churn benchmark: small, because the
// original's multi-queue TAPs cost about 96 MB each (8 VMs of 4 NICs: 3 GB).
const churnLive = 8

// BenchmarkChurn creates and deletes VMs in steady state: each iteration
// creates a VM and deletes the oldest of churnLive. It reports VMs/s,
// counting the time to finish asynchronous deletions. tapbridge (the
// default Delete, no StartReaper), tapbridge-bound, guardoff, reaper
// (StartReaper called), floor and thin delete asynchronously (group
// reaper); the -sync variants, orig and ip delete on the caller's path.
// Multi-queue (2 vCPUs) for 1 and 4 NICs, and single-queue for 1 NIC.
func BenchmarkChurn(b *testing.B) {
	for _, g := range []struct {
		nics, cpu int
		impls     []string
	}{
		{1, 1, []string{"tapbridge", "tapbridge-bound", "guardoff", "thin", "floor"}},
		{1, 2, []string{"tapbridge", "tapbridge-sync", "tapbridge-bound", "guardoff", "reaper", "thin", "floor", "floor-sync", "orig", "ip"}},
		{4, 2, []string{"tapbridge", "tapbridge-sync", "guardoff", "thin", "floor", "floor-sync", "orig", "ip"}},
	} {
		for _, impl := range g.impls {
			b.Run(fmt.Sprintf("nics=%d/cpu=%d/impl=%s", g.nics, g.cpu, impl), func(b *testing.B) {
				benchChurn(b, contenderOpts{impl: impl, nics: g.nics, cpu: g.cpu})
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
