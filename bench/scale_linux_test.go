package bench_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bench/internal/sysinfo"
	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/types"
)

// Scale benchmark shape (issue 13).
const (
	scaleBridges = 10
	scaleStep    = 1000 // VMs per step
	scaleSteps   = 10
	scaleWorkers = 4
	scaleVerify  = 100 // Verify calls timed per step
)

// skipScaleEnv skips BenchmarkScale when set to a non-empty value
// (`make bench SKIP_SCALE=1`): it is long (about a minute per run).
const skipScaleEnv = "TAPBRIDGE_BENCH_SKIP_SCALE"

// BenchmarkScale fills one namespace with 10 bridges x 1,000 1-NIC VMs
// through the public API (one bridge.Bridge per bridge, one instance, 4
// workers calling Config, VMs spread over the bridges), 1,000 VMs a step.
// After each step it times a GC cycle (a gc.Orchestrator with every VM
// live: it scans and reclaims nothing), List, and Verify of 100 random
// VMs; then it deletes everything, 1,000 VMs a step (4 workers calling the
// default Delete, then Flush, counted in the step), from 10,000 down. It
// logs the table of every step and reports: the Config rate of the first
// and last 1,000 (VMs/s@1k, VMs/s@10k) and their ratio (rate-10k/1k),
// Config p50/p99 of the last 1,000, the GC cycle, List and Verify p50 at
// 10,000, the delete rate of the first and last 1,000 deleted, and kernel
// memory per TAP at 10,000 (MemFree delta). ns/op is the whole run. It
// runs once per iteration whatever -benchtime says, and is skipped when
// TAPBRIDGE_BENCH_SKIP_SCALE is set.
func BenchmarkScale(b *testing.B) {
	for _, cpu := range []int{1, 2} {
		b.Run(fmt.Sprintf("vms=%d/cpu=%d/impl=tapbridge", scaleStep*scaleSteps, cpu), func(b *testing.B) {
			if os.Getenv(skipScaleEnv) != "" {
				b.Skipf("skipping: %s is set", skipScaleEnv)
			}
			for b.Loop() {
				benchScale(b, cpu)
			}
		})
	}
}

// scaleRow is one step's figures.
type scaleRow struct {
	vms               int
	rate, p50, p99    float64 // Config: VMs/s, ms
	gcMS, listMS, vMS float64 // GC cycle, List, Verify p50
}

func benchScale(b *testing.B, cpu int) {
	b.StopTimer()
	e := newEnv(b)
	root := b.TempDir()
	brs := make([]*bridge.Bridge, scaleBridges)
	for i := range brs {
		name := bridgeDev
		if i > 0 {
			name = fmt.Sprintf("br%d", i)
			testutil.AddBridge(b, e.ns, name)
		}
		br, err := bridge.New(&config.Config{RootDir: root, NetnsPath: e.nsPath}, name)
		if err != nil {
			b.Fatalf("bridge.New(%s) = %v", name, err)
		}
		brs[i] = br
	}
	defer func() {
		for _, br := range brs {
			if err := br.Close(); err != nil {
				b.Errorf("Close = %v", err)
			}
		}
	}()
	live := liveSet{}
	orch := gc.New()
	gc.Register(orch, liveModule(live))
	brs[0].RegisterGC(orch)
	vmCfg := &types.VMConfig{CPU: cpu}
	ctx := context.Background()
	brOf := func(i int) *bridge.Bridge { return brs[i%scaleBridges] }

	// run calls fn for VMs from..to-1 on scaleWorkers goroutines and
	// returns each call's duration.
	run := func(from, to int, fn func(i int) error) []time.Duration {
		lat := make([]time.Duration, to-from)
		next := make(chan int)
		var wg sync.WaitGroup
		var once sync.Once
		var first error
		for range scaleWorkers {
			wg.Go(func() {
				for i := range next {
					t0 := time.Now()
					if err := fn(i); err != nil {
						once.Do(func() { first = err })
					}
					lat[i-from] = time.Since(t0)
				}
			})
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		if first != nil {
			b.Fatal(first)
		}
		return lat
	}

	sysinfo.Settle(5 * time.Second)
	memBefore := sysinfo.MemFree()
	b.StartTimer()
	var rows []scaleRow
	for step := range scaleSteps {
		from, to := step*scaleStep, (step+1)*scaleStep
		for i := from; i < to; i++ {
			live[vmID(i)] = struct{}{}
		}
		t0 := time.Now()
		lat := run(from, to, func(i int) error {
			_, err := brOf(i).Config(ctx, vmID(i), 1, vmCfg)
			return err
		})
		r := scaleRow{vms: to, rate: float64(scaleStep) / time.Since(t0).Seconds()}
		slices.Sort(lat)
		r.p50, r.p99 = ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99))

		t0 = time.Now()
		rep, err := orch.RunReport(ctx)
		r.gcMS = ms(time.Since(t0))
		if err != nil {
			b.Fatalf("GC cycle = %v", err)
		}
		for _, m := range rep.Modules {
			if len(m.Reclaimed) > 0 {
				b.Fatalf("GC reclaimed %d TAPs of live VMs", len(m.Reclaimed))
			}
		}
		t0 = time.Now()
		nets, err := brs[0].List(ctx)
		r.listMS = ms(time.Since(t0))
		if err != nil || len(nets) != to {
			b.Fatalf("List = %d VMs, %v; want %d", len(nets), err, to)
		}
		vl := make([]time.Duration, scaleVerify)
		for k := range vl {
			i := rand.IntN(to)
			t0 := time.Now()
			if err := brOf(i).Verify(ctx, vmID(i)); err != nil {
				b.Fatalf("Verify(%s) = %v", vmID(i), err)
			}
			vl[k] = time.Since(t0)
		}
		slices.Sort(vl)
		r.vMS = ms(quantile(vl, 0.5))
		rows = append(rows, r)
	}
	b.StopTimer()
	sysinfo.Settle(2 * time.Second)
	perTAP := float64(memBefore-sysinfo.MemFree()) / float64(scaleStep*scaleSteps) / (1 << 20)
	b.StartTimer()

	delRates := make([]float64, 0, scaleSteps)
	for step := scaleSteps - 1; step >= 0; step-- {
		from, to := step*scaleStep, (step+1)*scaleStep
		t0 := time.Now()
		run(from, to, func(i int) error {
			_, err := brOf(i).Delete(ctx, []string{vmID(i)})
			return err
		})
		for _, br := range brs {
			if err := br.Flush(ctx); err != nil {
				b.Fatalf("Flush = %v", err)
			}
		}
		delRates = append(delRates, float64(scaleStep)/time.Since(t0).Seconds())
		for i := from; i < to; i++ {
			delete(live, vmID(i))
		}
	}

	b.Logf("cpu=%d: step VMs | Config VMs/s p50-ms p99-ms | GC-ms List-ms Verify-p50-ms | Delete VMs/s (deleting the step's 1,000 from that count)", cpu)
	for k, r := range rows {
		b.Logf("%6d | %7.0f %6.2f %7.2f | %7.1f %7.1f %6.3f | %7.0f", r.vms, r.rate, r.p50, r.p99, r.gcMS, r.listMS, r.vMS, delRates[scaleSteps-1-k])
	}
	first, last := rows[0], rows[len(rows)-1]
	b.ReportMetric(first.rate, "VMs/s@1k")
	b.ReportMetric(last.rate, "VMs/s@10k")
	b.ReportMetric(last.rate/first.rate, "rate-10k/1k")
	b.ReportMetric(last.p50, "p50-ms@10k")
	b.ReportMetric(last.p99, "p99-ms@10k")
	b.ReportMetric(last.gcMS, "gc-ms@10k")
	b.ReportMetric(last.listMS, "list-ms@10k")
	b.ReportMetric(last.vMS, "verify-ms@10k")
	b.ReportMetric(delRates[0], "del-VMs/s@10k")
	b.ReportMetric(delRates[len(delRates)-1], "del-VMs/s@1k")
	b.ReportMetric(perTAP, "MiB/TAP@10k")
}
