package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tapbridge/tapbridge/launch"
	"github.com/tapbridge/tapbridge/types"
)

// defaultQueueSize is bridge.DefaultQueueSize, which is declared in a
// Linux-only file.
const defaultQueueSize = 512

// printFlagUsage is the help text of up's --print flag.
const printFlagUsage = "print the launch arguments of `VMM` instead of the table: cloud-hypervisor (--net lines), firecracker (network-interfaces JSON), qemu (-netdev/-device lines) or libvirt (<interface> elements)"

// checkPrint validates up's --print before any TAP is made, so that a VMM
// that cannot open what up would make is a usage error that leaves
// nothing behind: it renders a stand-in record of the same shape.
func checkPrint(vmm, hypervisor string, cpus, queueSize int, asJSON bool) error {
	if vmm == "" {
		return nil
	}
	if !slices.Contains(launch.VMMs, launch.VMM(vmm)) {
		names := make([]string, len(launch.VMMs))
		for i, v := range launch.VMMs {
			names[i] = string(v)
		}
		return usagef("--print %q: want %s", vmm, strings.Join(names, ", "))
	}
	if asJSON {
		return usagef("--print and --json exclude each other")
	}
	if queueSize == 0 {
		queueSize = defaultQueueSize
	}
	stand := &types.NetworkConfig{Tap: "TAP", Mac: "02:00:00:00:00:01", NumQueues: 2 * cpus, QueueSize: queueSize}
	if _, err := launch.Render(launch.VMM(vmm), []launch.NIC{{Config: stand}}, &launch.Options{Profile: hypervisor}); err != nil {
		return usagef("--print %s with --hypervisor %s, --cpus %d: %v", vmm, hypervisor, cpus, err)
	}
	return nil
}

// printLaunch writes what VMM vmm needs to open the TAPs of recs, made
// with the hypervisor profile.
func printLaunch(w io.Writer, vmm, hypervisor string, recs []*types.NetworkConfig) error {
	nics := make([]launch.NIC, len(recs))
	for i, r := range recs {
		nics[i] = launch.NIC{Config: r}
	}
	out, err := launch.Render(launch.VMM(vmm), nics, &launch.Options{Profile: hypervisor})
	if err != nil {
		return fmt.Errorf("--print %s: %w", vmm, err)
	}
	_, err = io.WriteString(w, out)
	return err
}
