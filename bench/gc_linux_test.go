package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bench/internal/floor"
	"github.com/tapbridge/tapbridge/bench/internal/ipbatch"
	"github.com/tapbridge/tapbridge/bench/internal/orig"
	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/types"
)

// The GC scan fixture: scanTAPs tapbridge TAPs on scanBridges bridges (a
// bridge holds at most 1023 ports) among scanVeths veth pairs, some of them
// on the bridges: lo + 5 bridges + 5,000 TAPs + 2,000 veths = 7,006 links.
const (
	scanTAPs      = 5000
	scanBridges   = 5
	scanVeths     = 1000
	scanVethPorts = 20 // per bridge
)

// liveSet is a GC snapshot that lists the VMs alive: it protects them.
type liveSet map[string]struct{}

func (s liveSet) ActiveVMIDs() map[string]struct{} { return s }

func liveModule(s liveSet) gc.Module[liveSet] {
	return gc.Module[liveSet]{
		Name:   "vms",
		ReadDB: func(context.Context) (liveSet, error) { return s, nil },
	}
}

// scanFixture is the namespace every GC scan contender reads.
type scanFixture struct {
	env  *env
	root string
	brs  []*bridge.Bridge
	live liveSet
}

// newScanFixture builds the scan namespace for the whole of b (scanning is
// read-only, so the contenders share it).
func newScanFixture(b *testing.B) *scanFixture {
	b.Helper()
	e := newEnv(b)
	f := &scanFixture{env: e, root: b.TempDir(), live: make(liveSet, scanTAPs)}
	for k := range scanBridges {
		name := fmt.Sprintf("br%d", k)
		if k > 0 {
			testutil.AddBridge(b, e.ns, name)
		}
		br, err := bridge.New(&config.Config{RootDir: f.root, NetnsPath: e.nsPath}, name)
		if err != nil {
			b.Fatalf("bridge.New(%s) = %v", name, err)
		}
		b.Cleanup(func() { br.Close() })
		f.brs = append(f.brs, br)
	}
	ctx := context.Background()
	cfg := &types.VMConfig{CPU: 1}
	for i := range scanTAPs {
		id := vmID(i)
		if _, err := f.brs[i%scanBridges].Config(ctx, id, 1, cfg); err != nil {
			b.Fatalf("Config(%s) = %v", id, err)
		}
		f.live[id] = struct{}{}
	}
	p, err := ipbatch.Start(e.nsPath)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	cmds := make([]string, 0, scanVeths+scanBridges*scanVethPorts)
	for i := range scanVeths {
		cmds = append(cmds, fmt.Sprintf("link add va%d type veth peer name vb%d", i, i))
	}
	for k := range scanBridges {
		for j := range scanVethPorts {
			cmds = append(cmds, fmt.Sprintf("link set dev va%d master br%d", k*scanVethPorts+j, k))
		}
	}
	if err := p.Run(cmds...); err != nil {
		b.Fatal(err)
	}
	n := 0
	if err := e.conn.DumpAll(func(*floor.Link) { n++ }, func() { n = 0 }); err != nil {
		b.Fatal(err)
	}
	b.Logf("GC scan fixture: %d links, %d of them tapbridge TAPs", n, scanTAPs)
	return f
}

// BenchmarkGCScan measures one GC scan of 5,000 TAPs among 7,006 links:
// tapbridge's GC cycle with nothing to reclaim (locks, kernel-filtered
// dump, owner tags, diff against a live set holding every VM), its ReadDB
// alone, the floor's
// kernel-filtered dump with minimal parsing, and the original's LinkList
// with name parsing.
func BenchmarkGCScan(b *testing.B) {
	f := newScanFixture(b)
	b.Run("taps=5000/impl=tapbridge", func(b *testing.B) {
		b.ReportAllocs()
		orch := gc.New()
		gc.Register(orch, liveModule(f.live))
		f.brs[0].RegisterGC(orch)
		ctx := context.Background()
		for b.Loop() {
			rep, err := orch.RunReport(ctx)
			if err != nil {
				b.Fatalf("RunReport = %v", err)
			}
			for name, m := range rep.Modules {
				if name != "vms" && (len(m.Scanned) != scanTAPs || len(m.Orphans) != 0) {
					b.Fatalf("RunReport: %d scanned and %d orphans, want %d and 0", len(m.Scanned), len(m.Orphans), scanTAPs)
				}
			}
		}
		reportPerOp(b, "ms/scan")
	})
	b.Run("taps=5000/impl=tapbridge-readdb", func(b *testing.B) {
		b.ReportAllocs()
		m := bridge.GCModule(f.root)
		ctx := context.Background()
		for b.Loop() {
			s, err := m.ReadDB(ctx)
			if err != nil {
				b.Fatalf("ReadDB = %v", err)
			}
			if n := len(s.ScannedIDs()); n != scanTAPs {
				b.Fatalf("ReadDB scanned %d TAPs, want %d", n, scanTAPs)
			}
		}
		reportPerOp(b, "ms/scan")
	})
	b.Run("taps=5000/impl=floor", func(b *testing.B) {
		type cand struct {
			index, group, queues uint32
		}
		cands := make([]cand, 0, scanTAPs)
		tag := []byte("tb1 ")
		for b.Loop() {
			err := f.env.conn.DumpTUN(func(l *floor.Link) {
				if l.TAP && bytes.HasPrefix(l.Alias, tag) {
					cands = append(cands, cand{l.Index, l.Group, l.Queues})
				}
			}, func() { cands = cands[:0] })
			if err != nil {
				b.Fatal(err)
			}
			if len(cands) != scanTAPs {
				b.Fatalf("dump found %d TAPs, want %d", len(cands), scanTAPs)
			}
		}
		reportPerOp(b, "ms/scan")
	})
	b.Run("taps=5000/impl=orig", func(b *testing.B) {
		enterNS(b, f.env)
		for b.Loop() {
			p, err := orig.Scan()
			if err != nil {
				b.Fatal(err)
			}
			if len(p) != scanTAPs {
				b.Fatalf("Scan found %d VMs, want %d", len(p), scanTAPs)
			}
		}
		reportPerOp(b, "ms/scan")
	})
}

// BenchmarkGCReclaim measures one GC cycle that reclaims N orphan TAPs
// (1-NIC VMs, one queue) and nothing else: ms/reclaim. The orphans are
// made by each contender's own create path, outside the timed region.
// tapbridge runs a gc.Orchestrator cycle (group delete); floor dumps,
// retires each orphan into a group and deletes the group; orig lists the
// links twice and deletes each orphan with LinkDel.
func BenchmarkGCReclaim(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, impl := range []string{"tapbridge", "floor", "orig"} {
			b.Run(fmt.Sprintf("orphans=%d/impl=%s", n, impl), func(b *testing.B) {
				benchReclaim(b, impl, n)
			})
		}
	}
}

func benchReclaim(b *testing.B, impl string, n int) {
	e := newEnv(b)
	live := liveSet{"keep-this-vm": {}}
	o := contenderOpts{impl: impl, nics: 1, cpu: 1, grace: -1}
	if impl == "tapbridge" {
		o.impl = "tapbridge-sync"
	}
	c := newContender(b, e, o)
	var reclaim func() (int, error)
	switch impl {
	case "tapbridge":
		orch := gc.New()
		gc.Register(orch, liveModule(live))
		c.(*tapbridgeC).br.RegisterGC(orch)
		reclaim = func() (int, error) {
			rep, err := orch.RunReport(context.Background())
			if err != nil {
				return 0, err
			}
			k := 0
			for _, m := range rep.Modules {
				k += len(m.Reclaimed)
			}
			return k, nil
		}
	case "floor":
		conn := c.(*floorC).conn
		active := make(map[string]struct{}, len(live))
		for id := range live {
			active[id[:min(len(id), 8)]] = struct{}{}
		}
		var orphans []uint32
		reclaim = func() (int, error) {
			err := conn.DumpTUN(func(l *floor.Link) {
				if p, ok := orig.ParseTAPName(string(l.Name)); ok && l.TAP && l.Queues == 0 {
					if _, alive := active[p]; !alive {
						orphans = append(orphans, l.Index)
					}
				}
			}, func() { orphans = orphans[:0] })
			if err != nil {
				return 0, err
			}
			for _, i := range orphans {
				if err := conn.Retire(i, floorGroup); err != nil {
					return 0, err
				}
			}
			return len(orphans), conn.DeleteGroup(floorGroup)
		}
	case "orig":
		reclaim = func() (int, error) { return orig.Reclaim(live) }
	}
	next := 0
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		for range n {
			id := vmID(next)
			next++
			if err := c.config(id); err != nil {
				b.Fatalf("config(%s) = %v", id, err)
			}
		}
		if impl == "floor" {
			clear(c.(*floorC).links)
		}
		b.StartTimer()
		t0 := time.Now()
		k, err := reclaim()
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("reclaim = %v", err)
		}
		if k != n {
			b.Fatalf("reclaimed %d orphans, want %d", k, n)
		}
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(ms(sum)/float64(len(lat)), "ms/reclaim")
}

// reportPerOp reports ns/op in milliseconds under unit.
func reportPerOp(b *testing.B, unit string) {
	b.Helper()
	if b.N > 0 {
		b.ReportMetric(ms(b.Elapsed())/float64(b.N), unit)
	}
}
