package launch

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/types"
)

// rec is a record as Config returns it for a VM with cpus vCPUs.
func rec(cpus int) *types.NetworkConfig {
	return &types.NetworkConfig{Tap: "btvm-0001-0", Mac: "02:AA:bb:00:00:01", NumQueues: 2 * cpus, QueueSize: 512, Backend: "bridge", BridgeDev: "br0"}
}

func TestCloudHypervisorNet(t *testing.T) {
	for _, tt := range []struct {
		name    string
		profile string
		cpus    int
		fds     []int
		want    string
	}{
		{"single queue", config.CloudHypervisor, 1, nil, "tap=btvm-0001-0,mac=02:aa:bb:00:00:01,num_queues=2,queue_size=512"},
		{"multi-queue", config.CloudHypervisor, 4, nil, "tap=btvm-0001-0,mac=02:aa:bb:00:00:01,num_queues=8,queue_size=512"},
		{"default profile", "", 2, nil, "tap=btvm-0001-0,mac=02:aa:bb:00:00:01,num_queues=4,queue_size=512"},
		{"qemu profile", config.QEMU, 8, nil, "tap=btvm-0001-0,mac=02:aa:bb:00:00:01,num_queues=16,queue_size=512"},
		// A Firecracker-profile TAP is single-queue whatever the vCPUs.
		{"firecracker profile", config.Firecracker, 4, nil, "tap=btvm-0001-0,mac=02:aa:bb:00:00:01,num_queues=2,queue_size=512"},
		{"one fd", config.CloudHypervisor, 1, []int{3}, "fd=[3],mac=02:aa:bb:00:00:01,num_queues=2,queue_size=512"},
		{"fds", config.CloudHypervisor, 2, []int{7, 9}, "fd=[7,9],mac=02:aa:bb:00:00:01,num_queues=4,queue_size=512"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CloudHypervisorNet(NIC{Config: rec(tt.cpus), FDs: tt.fds}, &Options{Profile: tt.profile})
			if err != nil || got != tt.want {
				t.Errorf("CloudHypervisorNet(%d cpus, %s, fds %v) = %q, %v, want %q", tt.cpus, tt.profile, tt.fds, got, err, tt.want)
			}
		})
	}
	// Queue size 0 (not recorded) leaves Cloud Hypervisor's default.
	r := rec(1)
	r.QueueSize = 0
	if got, err := CloudHypervisorNet(NIC{Config: r}, nil); err != nil || strings.Contains(got, "queue_size") {
		t.Errorf("CloudHypervisorNet(queue size 0) = %q, %v, want no queue_size", got, err)
	}
}

func TestQEMUArgs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		profile string
		cpus    int
		fds     []int
		id      string
		vhost   bool
		want    []string
	}{
		{"single queue", config.QEMU, 1, nil, "", false, []string{
			"-netdev", "tap,id=net0,ifname=btvm-0001-0,script=no,downscript=no,vnet_hdr=on",
			"-device", "virtio-net-pci,netdev=net0,mac=02:aa:bb:00:00:01,rx_queue_size=512"}},
		{"multi-queue", config.QEMU, 4, nil, "n1", false, []string{
			"-netdev", "tap,id=n1,ifname=btvm-0001-0,script=no,downscript=no,vnet_hdr=on,queues=4",
			"-device", "virtio-net-pci,netdev=n1,mac=02:aa:bb:00:00:01,mq=on,vectors=10,rx_queue_size=512"}},
		{"vhost off", config.CloudHypervisor, 2, nil, "", true, []string{
			"-netdev", "tap,id=net0,ifname=btvm-0001-0,script=no,downscript=no,vnet_hdr=on,queues=2,vhost=off",
			"-device", "virtio-net-pci,netdev=net0,mac=02:aa:bb:00:00:01,mq=on,vectors=6,rx_queue_size=512"}},
		{"firecracker profile", config.Firecracker, 8, nil, "", false, []string{
			"-netdev", "tap,id=net0,ifname=btvm-0001-0,script=no,downscript=no,vnet_hdr=on",
			"-device", "virtio-net-pci,netdev=net0,mac=02:aa:bb:00:00:01,rx_queue_size=512"}},
		{"one fd", config.QEMU, 1, []int{3}, "", true, []string{
			"-netdev", "tap,id=net0,fd=3,vhost=off",
			"-device", "virtio-net-pci,netdev=net0,mac=02:aa:bb:00:00:01,rx_queue_size=512"}},
		{"fds", config.QEMU, 2, []int{3, 4}, "", false, []string{
			"-netdev", "tap,id=net0,fds=3:4",
			"-device", "virtio-net-pci,netdev=net0,mac=02:aa:bb:00:00:01,mq=on,vectors=6,rx_queue_size=512"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := QEMUArgs(NIC{Config: rec(tt.cpus), FDs: tt.fds, ID: tt.id}, &Options{Profile: tt.profile, VhostOff: tt.vhost})
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("QEMUArgs(%d cpus, %s, fds %v) = %q, %v, want %q", tt.cpus, tt.profile, tt.fds, got, err, tt.want)
			}
		})
	}
}

func TestFirecrackerInterface(t *testing.T) {
	for _, profile := range []string{config.Firecracker, config.CloudHypervisor, config.QEMU} {
		got, err := FirecrackerInterface(NIC{Config: rec(1), ID: "eth0"}, &Options{Profile: profile})
		if err != nil {
			t.Fatalf("FirecrackerInterface(%s, 1 cpu) = %v", profile, err)
		}
		b, _ := json.Marshal(got)
		if want := `{"iface_id":"eth0","host_dev_name":"btvm-0001-0","guest_mac":"02:aa:bb:00:00:01"}`; string(b) != want {
			t.Errorf("FirecrackerInterface(%s) = %s, want %s", profile, b, want)
		}
	}
	// The Firecracker profile never makes a multi-queue TAP.
	if _, err := FirecrackerInterface(NIC{Config: rec(8)}, &Options{Profile: config.Firecracker}); err != nil {
		t.Errorf("FirecrackerInterface(firecracker, 8 cpus) = %v, want nil", err)
	}
}

func TestLibvirtInterface(t *testing.T) {
	for _, tt := range []struct {
		name    string
		profile string
		cpus    int
		vhost   bool
		qsize   int
		want    string
	}{
		{"single queue", config.QEMU, 1, false, 512, `<interface type='ethernet'>
  <mac address='02:aa:bb:00:00:01'/>
  <target dev='btvm-0001-0' managed='no'/>
  <model type='virtio'/>
  <driver rx_queue_size='512'/>
</interface>`},
		{"multi-queue vhost off", config.QEMU, 4, true, 1024, `<interface type='ethernet'>
  <mac address='02:aa:bb:00:00:01'/>
  <target dev='btvm-0001-0' managed='no'/>
  <model type='virtio'/>
  <driver name='qemu' queues='4' rx_queue_size='1024'/>
</interface>`},
		{"no driver element", config.Firecracker, 4, false, 0, `<interface type='ethernet'>
  <mac address='02:aa:bb:00:00:01'/>
  <target dev='btvm-0001-0' managed='no'/>
  <model type='virtio'/>
</interface>`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := rec(tt.cpus)
			r.QueueSize = tt.qsize
			got, err := LibvirtInterface(NIC{Config: r}, &Options{Profile: tt.profile, VhostOff: tt.vhost})
			if err != nil || got != tt.want {
				t.Errorf("LibvirtInterface(%d cpus, %s) = %q, %v, want %q", tt.cpus, tt.profile, got, err, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	mod := func(f func(*types.NetworkConfig)) *types.NetworkConfig {
		r := rec(2)
		f(r)
		return r
	}
	for _, tt := range []struct {
		name    string
		vmm     VMM
		n       NIC
		profile string
		want    error
		msg     string // part of the message
	}{
		{"nil record", CloudHypervisor, NIC{}, "", ErrInvalid, "no record"},
		{"no TAP", QEMU, NIC{Config: mod(func(r *types.NetworkConfig) { r.Tap = "" })}, "", ErrInvalid, "TAP: empty"},
		{"long TAP", QEMU, NIC{Config: mod(func(r *types.NetworkConfig) { r.Tap = "btabcdefghijklmn" })}, "", ErrInvalid, "limit is 15"},
		{"comma in TAP", CloudHypervisor, NIC{Config: mod(func(r *types.NetworkConfig) { r.Tap = "bt,x" })}, "", ErrInvalid, `contains ','`},
		{"quote in TAP", Libvirt, NIC{Config: mod(func(r *types.NetworkConfig) { r.Tap = "bt'x" })}, "", ErrInvalid, `contains '\''`},
		{"no MAC", Firecracker, NIC{Config: mod(func(r *types.NetworkConfig) { r.Mac = "" })}, config.Firecracker, ErrInvalid, "MAC: empty"},
		{"bad MAC", Firecracker, NIC{Config: mod(func(r *types.NetworkConfig) { r.Mac = "02:00" })}, config.Firecracker, ErrInvalid, "MAC"},
		{"multicast MAC", QEMU, NIC{Config: mod(func(r *types.NetworkConfig) { r.Mac = "03:00:00:00:00:01" })}, "", ErrInvalid, "multicast"},
		{"zero MAC", QEMU, NIC{Config: mod(func(r *types.NetworkConfig) { r.Mac = "00:00:00:00:00:00" })}, "", ErrInvalid, "zero MAC"},
		{"EUI-64 MAC", QEMU, NIC{Config: mod(func(r *types.NetworkConfig) { r.Mac = "02:00:00:00:00:00:00:01" })}, "", ErrInvalid, "6-byte"},
		{"odd queues", CloudHypervisor, NIC{Config: mod(func(r *types.NetworkConfig) { r.NumQueues = 3 })}, "", ErrInvalid, "3 virtio queues"},
		{"no queues", CloudHypervisor, NIC{Config: mod(func(r *types.NetworkConfig) { r.NumQueues = 0 })}, "", ErrInvalid, "0 virtio queues"},
		{"too many queues", CloudHypervisor, NIC{Config: mod(func(r *types.NetworkConfig) { r.NumQueues = 514 })}, "", ErrInvalid, "514 virtio queues"},
		{"queue size", CloudHypervisor, NIC{Config: mod(func(r *types.NetworkConfig) { r.QueueSize = 300 })}, "", ErrInvalid, "queue size 300"},
		{"bad profile", QEMU, NIC{Config: rec(1)}, "crosvm", ErrInvalid, `profile "crosvm"`},
		{"bad VMM", "crosvm", NIC{Config: rec(1)}, "", ErrInvalid, `VMM "crosvm"`},
		{"bad id", QEMU, NIC{Config: rec(1), ID: "0net"}, "", ErrInvalid, "start with a letter"},
		{"firecracker on multi-queue", Firecracker, NIC{Config: rec(2)}, config.CloudHypervisor, ErrIncompatible, "single-queue only"},
		{"firecracker on default profile", Firecracker, NIC{Config: rec(4)}, "", ErrIncompatible, "profile cloud-hypervisor made it multi-queue (4 queue pairs)"},
		{"firecracker fds", Firecracker, NIC{Config: rec(1), FDs: []int{3}}, config.Firecracker, ErrIncompatible, "not file descriptors"},
		{"libvirt fds", Libvirt, NIC{Config: rec(1), FDs: []int{3}}, config.QEMU, ErrIncompatible, "opens the TAP itself"},
		{"too few fds", CloudHypervisor, NIC{Config: rec(4), FDs: []int{3}}, "", ErrInvalid, "1 file descriptors for 4 queue pairs"},
		{"too many fds", QEMU, NIC{Config: rec(4), FDs: []int{3, 4}}, config.Firecracker, ErrInvalid, "2 file descriptors for 1 queue pairs"},
		{"empty fds", QEMU, NIC{Config: rec(1), FDs: []int{}}, "", ErrInvalid, "0 file descriptors"},
		{"stdio fd", CloudHypervisor, NIC{Config: rec(2), FDs: []int{3, 2}}, "", ErrInvalid, "file descriptor 2"},
		{"duplicate fd", QEMU, NIC{Config: rec(2), FDs: []int{5, 5}}, "", ErrInvalid, "given twice"},
		{"qemu small queue", QEMU, NIC{Config: mod(func(r *types.NetworkConfig) { r.QueueSize = 128 })}, "", ErrIncompatible, "256 to 1024"},
		{"libvirt big queue", Libvirt, NIC{Config: mod(func(r *types.NetworkConfig) { r.QueueSize = 4096 })}, "", ErrIncompatible, "256 to 1024"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := &Options{Profile: tt.profile}
			var err error
			switch tt.vmm {
			case CloudHypervisor:
				_, err = CloudHypervisorNet(tt.n, o)
			case Firecracker:
				_, err = FirecrackerInterface(tt.n, o)
			case QEMU:
				_, err = QEMUArgs(tt.n, o)
			case Libvirt:
				_, err = LibvirtInterface(tt.n, o)
			default:
				_, err = Render(tt.vmm, []NIC{tt.n}, o)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("%s(%s) = %v, want an error wrapping %v containing %q", tt.vmm, tt.name, err, tt.want, tt.msg)
			}
			// Render reports the same error, naming the NIC.
			if _, rerr := Render(tt.vmm, []NIC{{Config: rec(1)}, tt.n}, o); tt.vmm != "crosvm" && tt.profile != "crosvm" &&
				(!errors.Is(rerr, tt.want) || !strings.HasPrefix(rerr.Error(), "nic 1: ")) {
				t.Errorf("Render(%s, [ok, %s]) = %v, want %v for nic 1", tt.vmm, tt.name, rerr, tt.want)
			}
		})
	}
	if _, err := Render(QEMU, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Render(qemu, no NICs) = %v, want ErrInvalid", err)
	}
}

func TestRender(t *testing.T) {
	a, b := rec(2), rec(2)
	b.Tap, b.Mac = "btvm-0001-1", "02:aa:bb:00:00:02"
	nics := []NIC{{Config: a}, {Config: b}}
	for _, tt := range []struct {
		vmm     VMM
		profile string
		want    string
	}{
		{CloudHypervisor, config.CloudHypervisor, `--net tap=btvm-0001-0,mac=02:aa:bb:00:00:01,num_queues=4,queue_size=512
--net tap=btvm-0001-1,mac=02:aa:bb:00:00:02,num_queues=4,queue_size=512
`},
		{Firecracker, config.Firecracker, `[
  {
    "iface_id": "net0",
    "host_dev_name": "btvm-0001-0",
    "guest_mac": "02:aa:bb:00:00:01"
  },
  {
    "iface_id": "net1",
    "host_dev_name": "btvm-0001-1",
    "guest_mac": "02:aa:bb:00:00:02"
  }
]
`},
		{QEMU, config.QEMU, `-netdev tap,id=net0,ifname=btvm-0001-0,script=no,downscript=no,vnet_hdr=on,queues=2 -device virtio-net-pci,netdev=net0,mac=02:aa:bb:00:00:01,mq=on,vectors=6,rx_queue_size=512
-netdev tap,id=net1,ifname=btvm-0001-1,script=no,downscript=no,vnet_hdr=on,queues=2 -device virtio-net-pci,netdev=net1,mac=02:aa:bb:00:00:02,mq=on,vectors=6,rx_queue_size=512
`},
		{Libvirt, config.QEMU, `<interface type='ethernet'>
  <mac address='02:aa:bb:00:00:01'/>
  <target dev='btvm-0001-0' managed='no'/>
  <model type='virtio'/>
  <driver queues='2' rx_queue_size='512'/>
</interface>
<interface type='ethernet'>
  <mac address='02:aa:bb:00:00:02'/>
  <target dev='btvm-0001-1' managed='no'/>
  <model type='virtio'/>
  <driver queues='2' rx_queue_size='512'/>
</interface>
`},
	} {
		got, err := Render(tt.vmm, nics, &Options{Profile: tt.profile})
		if err != nil || got != tt.want {
			t.Errorf("Render(%s, 2 NICs) = %q, %v, want %q", tt.vmm, got, err, tt.want)
		}
	}
	// The Firecracker output is what Firecracker's serde would accept: the
	// three known fields, nothing else.
	out, _ := Render(Firecracker, nics, &Options{Profile: config.Firecracker})
	var ifs []map[string]any
	if err := json.Unmarshal([]byte(out), &ifs); err != nil || len(ifs) != 2 || len(ifs[0]) != 3 {
		t.Errorf("Render(firecracker) = %q (%v): want 2 objects of 3 fields", out, err)
	}
}
