// Package sysinfo describes the machine a benchmark runs on and reads the
// kernel's memory counters.
package sysinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Lines returns "key: value" lines describing the machine, in the form
// `go test -bench` uses for goos, goarch and cpu (benchstat reads them as
// configuration): the kernel release, the CPU model, the number of CPUs and
// the memory size.
func Lines() []string {
	return []string{
		"kernel: " + kernel(),
		"cpumodel: " + cpuModel(),
		"nproc: " + strconv.Itoa(runtime.NumCPU()),
		fmt.Sprintf("memtotal: %.1f GiB", float64(meminfo("MemTotal"))/(1<<30)),
	}
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// MemFree returns MemFree from /proc/meminfo, in bytes.
func MemFree() int64 { return meminfo("MemFree") }

func meminfo(key string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(k) != key {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(string(f[0]), 10, 64)
		return n << 10 // kB
	}
	return 0
}

// Settle waits until MemFree moves by less than 4 MiB over 300 ms (memory
// freed by earlier work, such as devices of a namespace being torn down, has
// come back), or until timeout.
func Settle(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	prev := MemFree()
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		cur := MemFree()
		if d := cur - prev; d < 4<<20 && d > -4<<20 {
			return
		}
		prev = cur
	}
}
