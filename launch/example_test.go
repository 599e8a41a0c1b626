package launch_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/launch"
	"github.com/tapbridge/tapbridge/types"
)

// The record is what bridge.Config returned for a 2-vCPU VM made with the
// Cloud Hypervisor profile: a multi-queue TAP with 2 queue pairs.
var nic = &types.NetworkConfig{Tap: "btvm-0001-0", Mac: "02:5e:11:d2:7a:01", NumQueues: 4, QueueSize: 512, Backend: "bridge", BridgeDev: "br0"}

func ExampleCloudHypervisorNet() {
	arg, err := launch.CloudHypervisorNet(launch.NIC{Config: nic}, &launch.Options{Profile: config.CloudHypervisor})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cloud-hypervisor --cpus boot=2 --net", arg)
	// Output: cloud-hypervisor --cpus boot=2 --net tap=btvm-0001-0,mac=02:5e:11:d2:7a:01,num_queues=4,queue_size=512
}

// A NIC from bridge.ConfigHandoff is passed as its queue files: here they
// are fds 3 and 4 in the VMM's process (exec.Cmd.ExtraFiles).
func ExampleQEMUArgs_handoff() {
	args, err := launch.QEMUArgs(launch.NIC{Config: nic, FDs: []int{3, 4}}, &launch.Options{Profile: config.QEMU, VhostOff: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Join(args, " "))
	// Output: -netdev tap,id=net0,fds=3:4,vhost=off -device virtio-net-pci,netdev=net0,mac=02:5e:11:d2:7a:01,mq=on,vectors=6,rx_queue_size=512
}

// Firecracker cannot open a multi-queue TAP: the snippet says so instead
// of a configuration that fails at boot.
func ExampleFirecrackerInterface() {
	_, err := launch.FirecrackerInterface(launch.NIC{Config: nic}, &launch.Options{Profile: config.CloudHypervisor})
	fmt.Println(err)
	ifc, err := launch.FirecrackerInterface(launch.NIC{Config: nic, ID: "eth0"}, &launch.Options{Profile: config.Firecracker})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", *ifc)
	// Output:
	// launch firecracker btvm-0001-0: the VMM cannot open this TAP: profile cloud-hypervisor made it multi-queue (2 queue pairs), and Firecracker opens TAPs single-queue only: make it with the firecracker profile
	// {IfaceID:eth0 HostDevName:btvm-0001-0 GuestMAC:02:5e:11:d2:7a:01}
}

func ExampleRender() {
	out, err := launch.Render(launch.Libvirt, []launch.NIC{{Config: nic}}, &launch.Options{Profile: config.QEMU})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(out)
	// Output:
	// <interface type='ethernet'>
	//   <mac address='02:5e:11:d2:7a:01'/>
	//   <target dev='btvm-0001-0' managed='no'/>
	//   <model type='virtio'/>
	//   <driver queues='2' rx_queue_size='512'/>
	// </interface>
}
