package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrintUsageErrors checks that a --print that cannot work is a usage
// error found before any TAP is made: the root dir stays empty (up would
// create it and record settings).
func TestPrintUsageErrors(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown VMM", []string{"--print", "crosvm"}, `--print "crosvm": want cloud-hypervisor, firecracker, qemu, libvirt`},
		{"with json", []string{"--print", "qemu", "--json"}, "--print and --json exclude each other"},
		{"firecracker on multi-queue", []string{"--print", "firecracker", "--cpus", "2"}, "Firecracker opens TAPs single-queue only"},
		{"firecracker on qemu profile", []string{"--print", "firecracker", "--cpus", "4", "--hypervisor", "qemu"}, "profile qemu made it multi-queue (4 queue pairs)"},
		{"qemu queue size", []string{"--print", "qemu", "--queue-size", "2048"}, "rx_queue_size is a power of two from 256 to 1024"},
		{"libvirt queue size", []string{"--print", "libvirt", "--queue-size", "128"}, "256 to 1024"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"up", "--bridge", "br0", "--vm", "vm-1", "--root", root}, c.args...)
			code, stdout, stderr := tb(t, args...)
			if code != exitUsage || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, one line containing %q", args, code, stdout, stderr, exitUsage, c.want)
			}
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Errorf("run(%q) made the root dir (stat: %v), want nothing done", args, err)
			}
		})
	}
}
