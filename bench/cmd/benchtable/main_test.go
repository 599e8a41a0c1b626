package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

const sample = `kernel: 6.18.44-fc-v769
cpumodel: AMD EPYC
nproc: 2
memtotal: 23.5 GiB
goos: linux
goarch: amd64
pkg: github.com/tapbridge/tapbridge/bench
cpu: AMD EPYC
BenchmarkConfig/nics=1/cpu=2/impl=tapbridge-2         	     100	    631652 ns/op	         0.6 p50-ms	         1.2 p99-ms	   25457 B/op	     449 allocs/op
BenchmarkConfig/nics=1/cpu=2/impl=tapbridge-2         	     100	    631652 ns/op	         0.4 p50-ms	         1.0 p99-ms	   25457 B/op	     451 allocs/op
BenchmarkConfig/nics=1/cpu=2/impl=tapbridge-2         	     100	    631652 ns/op	         0.5 p50-ms	         1.4 p99-ms	   25457 B/op	     450 allocs/op
BenchmarkConfig/nics=1/cpu=2/impl=floor-2             	     100	    650578 ns/op	         0.5 p50-ms	         1.0 p99-ms	     690 B/op	      13 allocs/op
BenchmarkConfig/nics=1/cpu=2/impl=orig-2              	     100	  37857762 ns/op	         5.0 p50-ms	       200 p99-ms	   24354 B/op	     202 allocs/op
BenchmarkGCScan
    gc_linux_test.go:101: GC scan fixture: 7006 links, 5000 of them tapbridge TAPs
BenchmarkChurn/nics=1/cpu=2/impl=tapbridge-2         	     200	   1773298 ns/op	       500 VMs/s	   35103 B/op	     634 allocs/op
BenchmarkChurn/nics=1/cpu=2/impl=tapbridge-sync-2    	     200	  17694708 ns/op	        50 VMs/s	   38311 B/op	     719 allocs/op
BenchmarkChurn/nics=1/cpu=2/impl=floor-sync-2        	     200	  16318081 ns/op	        50 VMs/s	     707 B/op	      17 allocs/op
BenchmarkChurn/nics=1/cpu=2/impl=orig-2              	     200	  26869033 ns/op	        10 VMs/s	   45618 B/op	     334 allocs/op
BenchmarkDelete/nics=1/cpu=2/impl=tapbridge-2        	     200	   1337201 ns/op	         0.01 p50-ms	         0.2 p99-ms	   32839 B/op	     584 allocs/op
--- SKIP: BenchmarkTAPMemory
PASS
ok  	github.com/tapbridge/tapbridge/bench	44.474s
`

func TestParse(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if got, want := res.Config["kernel"], "6.18.44-fc-v769"; got != want {
		t.Errorf("Config[kernel] = %q, want %q", got, want)
	}
	var names []string
	for _, g := range res.Groups {
		names = append(names, g.Name)
	}
	if got, want := strings.Join(names, ","), "BenchmarkConfig/nics=1/cpu=2,BenchmarkChurn/nics=1/cpu=2,BenchmarkDelete/nics=1/cpu=2"; got != want {
		t.Errorf("groups = %s, want %s", got, want)
	}
	if got, want := strings.Join(res.Impls, ","), "tapbridge,floor,orig,tapbridge-sync,floor-sync"; got != want {
		t.Errorf("impls = %s, want %s", got, want)
	}
	cfg := res.Groups[0]
	tests := []struct {
		impl, unit string
		want       float64
		ok         bool
	}{
		{"tapbridge", "p50-ms", 0.5, true}, // median of 0.6, 0.4, 0.5
		{"tapbridge", "p99-ms", 1.2, true},
		{"tapbridge", "allocs/op", 450, true},
		{"orig", "p99-ms", 200, true},
		{"orig", "VMs/s", 0, false},
		{"ip", "p50-ms", 0, false},
	}
	for _, tt := range tests {
		got, ok := cfg.ByImp[tt.impl].Median(tt.unit)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Median(%s, %s) = %v, %v, want %v, %v", tt.impl, tt.unit, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseBenchLine(t *testing.T) {
	tests := []struct {
		line string
		name string
		ok   bool
	}{
		{"BenchmarkX/impl=floor-sync-2  10  5 ns/op  1.5 p50-ms", "BenchmarkX/impl=floor-sync", true},
		{"BenchmarkX/impl=floor-sync  10  5 ns/op", "BenchmarkX/impl=floor-sync", true},
		{"BenchmarkX/orphans=1000/impl=orig-16  1  5 ns/op", "BenchmarkX/orphans=1000/impl=orig", true},
		{"BenchmarkGCScan", "", false},
		{"BenchmarkX  many  5 ns/op", "", false},
		{"BenchmarkX  1  5 ns/op 7", "", false},
		{"    file_test.go:12: BenchmarkX 1 2 ns/op", "", false},
	}
	for _, tt := range tests {
		name, _, ok := parseBenchLine(tt.line)
		if name != tt.name || ok != tt.ok {
			t.Errorf("parseBenchLine(%q) = %q, %v, want %q, %v", tt.line, name, ok, tt.name, tt.ok)
		}
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		unit    string
		t, base float64
		want    float64
		ok      bool
	}{
		{"p50-ms", 0.5, 5, 10, true},
		{"VMs/s", 500, 10, 50, true},
		{"MiB/TAP", 0.25, 96, 384, true},
		{"allocs/op", 0, 10, 0, false},
		{"pkts/s", 10, 0, 0, false},
	}
	for _, tt := range tests {
		got, ok := Ratio(tt.unit, tt.t, tt.base)
		if math.Abs(got-tt.want) > 1e-9 || ok != tt.ok {
			t.Errorf("Ratio(%s, %v, %v) = %v, %v, want %v, %v", tt.unit, tt.t, tt.base, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTargetCheck(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		t       Target
		verdict string
	}{
		{Target{Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge", Unit: "p50-ms", Base: "floor", Min: 1 / 1.2}, "ok"},
		{Target{Group: "BenchmarkConfig/nics=1/cpu=2", Impl: "tapbridge", Unit: "p99-ms", Base: "orig", Min: 200}, "MISS"},
		{Target{Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "orig", Min: 50}, "ok"},
		{Target{Group: "BenchmarkChurn/nics=1/cpu=2", Impl: "tapbridge", Unit: "VMs/s", Base: "floor", Min: 1}, "not run"},
		{Target{Group: "BenchmarkDelete/nics=1/cpu=2", Impl: "tapbridge", Unit: "p50-ms", Max: 0.1}, "ok"},
		{Target{Group: "BenchmarkDelete/nics=1/cpu=2", Impl: "tapbridge", Unit: "p99-ms", Max: 0.1}, "MISS"},
		{Target{Group: "BenchmarkTAPMemory/taps=400", Impl: "tapbridge", Unit: "MiB/TAP", Max: 0.5}, "not run"},
	}
	for _, tt := range tests {
		if _, got := tt.t.Check(res); got != tt.verdict {
			t.Errorf("Check(%s %s vs %q) = %s, want %s", tt.t.Group, tt.t.Unit, tt.t.Base, got, tt.verdict)
		}
	}
}

func TestRender(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Render(&buf, res)
	out := buf.String()
	for _, want := range []string{
		"machine: AMD EPYC, 2 CPUs, 23.5 GiB memory, linux/amd64; kernel 6.18.44-fc-v769",
		"Config/nics=1/cpu=2 p50-ms",
		"5.00 (10.0x)", // orig p50 5 vs tapbridge 0.5
		"Churn/nics=1/cpu=2 [tapbridge-sync] VMs/s",
		"Config/nics=1/cpu=2 allocs/op",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Render output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Churn/nics=1/cpu=2 allocs/op") {
		t.Errorf("Render shows allocs/op outside Config:\n%s", out)
	}
}

const stepsSample = `BenchmarkConfigSteps/nics=1/cpu=2/impl=thin-2      	 300	 1 ns/op	 0.50 p50-ms	 1.0 p99-ms
BenchmarkConfigSteps/nics=1/cpu=2/impl=thin+guard-2 	 300	 1 ns/op	 0.80 p50-ms	 2.0 p99-ms
BenchmarkConfig/nics=1/cpu=2/impl=tapbridge-2      	 100	 1 ns/op	 0.6 p50-ms	 1.2 p99-ms
BenchmarkConfig/nics=1/cpu=2/impl=thin-2           	 100	 1 ns/op	 0.5 p50-ms	 1.0 p99-ms
BenchmarkScale/vms=10000/cpu=2/impl=tapbridge-2    	   1	 1 ns/op	 500 VMs/s@1k	 400 VMs/s@10k	 0.8 rate-10k/1k
`

func TestRenderSteps(t *testing.T) {
	res, err := Parse(strings.NewReader(stepsSample))
	if err != nil {
		t.Fatal(err)
	}
	if got := baselines(res); len(got) != 1 || got[0] != "thin" {
		t.Errorf("baselines = %q, want [thin] (steps are no column)", got)
	}
	var buf bytes.Buffer
	Render(&buf, res)
	out := buf.String()
	for _, want := range []string{"thin+guard  0.8     2.00    +0.300", "ConfigSteps/nics=1/cpu=2: the thin floor"} {
		if !strings.Contains(out, want) {
			t.Errorf("Render output lacks %q:\n%s", want, out)
		}
	}
	for _, tt := range Targets {
		if tt.Group != "BenchmarkScale/vms=10000/cpu=2" {
			continue
		}
		if got, verdict := tt.Check(res); verdict != "MISS" || !strings.Contains(got, "0.8 rate-10k/1k, need >= 0.9") {
			t.Errorf("scale target = %q, %q; want a MISS at 0.80", got, verdict)
		}
	}
	if !higherBetter("VMs/s@10k") || !higherBetter("rate-10k/1k") || higherBetter("p50-ms@10k") {
		t.Error("higherBetter is wrong for the scale units")
	}
}
