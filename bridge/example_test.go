package bridge_test

import (
	"context"
	"fmt"
	"log"

	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/types"
)

// This example gives a 2-vCPU Cloud Hypervisor VM one NIC on the existing
// bridge br0, removes it when the VM stops, and runs a GC cycle that
// reclaims TAPs of VMs that crashed. It needs CAP_NET_ADMIN, so it has no
// output to check.
func Example() {
	ctx := context.Background()
	b, err := bridge.New(&config.Config{RootDir: "/var/lib/tapbridge", Hypervisor: config.CloudHypervisor}, "br0")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	nics, err := b.Config(ctx, "vm-0001", 1, &types.VMConfig{CPU: 2})
	if err != nil {
		log.Fatal(err) // nothing of the VM is left behind
	}
	// Keep nics: passed back to Config after a reboot, they restore the MACs.
	fmt.Printf("--net tap=%s,mac=%s,num_queues=%d,queue_size=%d\n",
		nics[0].Tap, nics[0].Mac, nics[0].NumQueues, nics[0].QueueSize)

	// ... the VM runs, then stops ...
	if _, err := b.Delete(ctx, []string{"vm-0001"}); err != nil {
		log.Fatal(err)
	}

	// GC reclaims only the TAPs of VMs that no registered module reports
	// as active (a module whose snapshot has ActiveVMIDs).
	orch := gc.New()
	b.RegisterGC(orch)
	if err := orch.Run(ctx); err != nil {
		log.Print(err)
	}
}
