package launch

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// CloudHypervisorNet returns the value of one Cloud Hypervisor (v53) --net
// argument for n: tap=NAME (or fd=[N,...] for a ConfigHandoff NIC),
// mac=MAC, num_queues (virtio queues: 2 per queue pair opened) and
// queue_size.
//
// Cloud Hypervisor opens the TAP multi-queue iff num_queues/2 > 1
// (net_util/src/tap.rs open_named) and refuses a TAP whose sysfs tun_flags
// disagree (net_util/src/open_tap.rs check_mq_support), so num_queues is
// 2 for a single-queue TAP whatever the record's NumQueues. With fd= it
// requires num_queues = 2 x the fd count (vmm/src/config.rs
// NetConfig::validate, VnetQueueFdMismatch) and ignores the TAP name;
// tap= takes precedence over fd= (vmm/src/device_manager.rs make_virtio_net_device),
// so only one is given. host_mac, ip and mtu are left out: given, Cloud
// Hypervisor would change the TAP's host-side MAC, address or MTU that
// tapbridge set.
//
// Errors wrap ErrInvalid or ErrIncompatible.
func CloudHypervisorNet(n NIC, o *Options) (string, error) {
	p, err := prepare(CloudHypervisor, n, o)
	if err != nil {
		return "", err
	}
	return p.cloudHypervisor(), nil
}

func (p *plan) cloudHypervisor() string {
	// Syntax: vmm/src/config.rs NetConfig::SYNTAX and parse; a list value
	// is bracketed (option_parser/src/lib.rs split_commas, IntegerList).
	var b strings.Builder
	if p.fds != nil {
		b.WriteString("fd=[" + joinInts(p.fds, ",") + "]")
	} else {
		b.WriteString("tap=" + p.tap)
	}
	b.WriteString(",mac=" + p.mac + ",num_queues=" + strconv.Itoa(2*p.pairs))
	if p.queueSize != 0 {
		b.WriteString(",queue_size=" + strconv.Itoa(p.queueSize))
	}
	return b.String()
}

// FirecrackerNetworkInterface is Firecracker's (v1.16) NetworkInterface:
// the body of PUT /network-interfaces/{iface_id}, and an element of a
// --config-file's "network-interfaces" (src/firecracker/swagger/firecracker.yaml
// NetworkInterface; src/vmm/src/vmm_config/net.rs NetworkInterfaceConfig,
// which denies unknown fields).
type FirecrackerNetworkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac"`
}

// FirecrackerInterface returns n's Firecracker network interface.
// Firecracker always opens a TAP single-queue (src/vmm/src/devices/virtio/net/tap.rs
// open_named) with a fixed queue size, so a multi-queue TAP is an error
// wrapping ErrIncompatible, as are FDs (Firecracker takes none). Other
// errors wrap ErrInvalid.
func FirecrackerInterface(n NIC, o *Options) (*FirecrackerNetworkInterface, error) {
	p, err := prepare(Firecracker, n, o)
	if err != nil {
		return nil, err
	}
	return p.firecracker(), nil
}

func (p *plan) firecracker() *FirecrackerNetworkInterface {
	return &FirecrackerNetworkInterface{IfaceID: p.id, HostDevName: p.tap, GuestMAC: p.mac}
}

// QEMUArgs returns the QEMU arguments of n: "-netdev", the tap netdev,
// "-device", its virtio-net-pci device.
//
// By name: tap,id=ID,ifname=NAME,script=no,downscript=no,vnet_hdr=on, and
// for a multi-queue TAP queues=P (queue pairs), which makes QEMU open it
// multi-queue (net/tap-linux.c tap_open). From ConfigHandoff: fd=N or
// fds=N:M:..., with which QEMU refuses ifname=, script=, vnet_hdr= and
// queues= (net/tap.c net_init_tap) and probes vnet_hdr itself. vhost=off
// when Options.VhostOff. The device gets mac=, and for P > 1 mq=on and
// vectors=2P+2 (one MSI-X vector per queue, one for configuration changes,
// one for the control queue: docs/system/devices/net.rst, hw/net/virtio-net.c),
// and rx_queue_size (QEMU takes 256 to 1024; its tx queue stays at 256,
// the most it allows a tap backend: virtio_net_max_tx_queue_size).
//
// Errors wrap ErrInvalid, or ErrIncompatible for a queue size QEMU refuses.
func QEMUArgs(n NIC, o *Options) ([]string, error) {
	p, err := prepare(QEMU, n, o)
	if err != nil {
		return nil, err
	}
	if err := p.qemuQueueSize(QEMU); err != nil {
		return nil, err
	}
	netdev, device := p.qemu()
	return []string{"-netdev", netdev, "-device", device}, nil
}

// qemuQueueSize checks the record's queue size against QEMU's range for
// rx_queue_size (hw/net/virtio-net.c virtio_net_device_realize), which
// libvirt enforces too (src/qemu/qemu_validate.c).
func (p *plan) qemuQueueSize(vmm VMM) error {
	if q := p.queueSize; q != 0 && (q < 256 || q > 1024) {
		return fmt.Errorf("launch %s %s: %w: queue size %d: QEMU's virtio-net rx_queue_size is a power of two from 256 to 1024", vmm, p.tap, ErrIncompatible, q)
	}
	return nil
}

func (p *plan) qemu() (netdev, device string) {
	netdev = "tap,id=" + p.id
	switch {
	case len(p.fds) == 1:
		netdev += ",fd=" + strconv.Itoa(p.fds[0])
	case p.fds != nil:
		netdev += ",fds=" + joinInts(p.fds, ":")
	default:
		netdev += ",ifname=" + p.tap + ",script=no,downscript=no,vnet_hdr=on"
		if p.pairs > 1 {
			netdev += ",queues=" + strconv.Itoa(p.pairs)
		}
	}
	if p.vhostOff {
		netdev += ",vhost=off"
	}
	device = "virtio-net-pci,netdev=" + p.id + ",mac=" + p.mac
	if p.pairs > 1 {
		device += ",mq=on,vectors=" + strconv.Itoa(2*p.pairs+2)
	}
	if p.queueSize != 0 {
		device += ",rx_queue_size=" + strconv.Itoa(p.queueSize)
	}
	return netdev, device
}

// LibvirtInterface returns n's libvirt (9.0) domain <interface> element:
// type='ethernet' with <target dev='NAME' managed='no'/>, which makes
// libvirt open the existing TAP itself and leave it as it is, and
// <model type='virtio'/>, and when needed a <driver> with queues= (queue
// pairs, for a multi-queue TAP), rx_queue_size= and name='qemu' (vhost
// off). See docs/formatdomain.rst, "Generic ethernet connection" and
// "Setting NIC driver-specific options". libvirt opens one fd per queue
// (src/util/virnetdevtap.c virNetDevTapCreate): IFF_MULTI_QUEUE iff
// queues > 1, so the count must match the TAP or the kernel says EINVAL.
//
// Errors wrap ErrInvalid, or ErrIncompatible for FDs or a queue size QEMU
// refuses.
func LibvirtInterface(n NIC, o *Options) (string, error) {
	p, err := prepare(Libvirt, n, o)
	if err != nil {
		return "", err
	}
	if err := p.qemuQueueSize(Libvirt); err != nil {
		return "", err
	}
	return p.libvirt(), nil
}

func (p *plan) libvirt() string {
	// Every value is a MAC, a plain name or a number: nothing to escape.
	var b strings.Builder
	b.WriteString("<interface type='ethernet'>\n")
	b.WriteString("  <mac address='" + p.mac + "'/>\n")
	b.WriteString("  <target dev='" + p.tap + "' managed='no'/>\n")
	b.WriteString("  <model type='virtio'/>\n")
	var drv []string
	if p.vhostOff {
		drv = append(drv, "name='qemu'")
	}
	if p.pairs > 1 {
		drv = append(drv, "queues='"+strconv.Itoa(p.pairs)+"'")
	}
	if p.queueSize != 0 {
		drv = append(drv, "rx_queue_size='"+strconv.Itoa(p.queueSize)+"'")
	}
	if len(drv) > 0 {
		b.WriteString("  <driver " + strings.Join(drv, " ") + "/>\n")
	}
	b.WriteString("</interface>")
	return b.String()
}

// Render returns what vmm needs for all of nics, as text to paste into a
// launch script: Cloud Hypervisor one "--net VALUE" line per NIC (the flag
// may repeat: cloud-hypervisor/src/main.rs), Firecracker a JSON array of
// network interfaces (a --config-file's "network-interfaces"), QEMU one
// line of -netdev and -device arguments per NIC, libvirt one <interface>
// element per NIC. NICs without an ID get net0, net1, ... by position. The
// text ends with a newline. Errors are those of the per-NIC functions,
// naming the NIC.
func Render(vmm VMM, nics []NIC, o *Options) (string, error) {
	if len(nics) == 0 {
		return "", fmt.Errorf("launch %s: %w: no NICs", vmm, ErrInvalid)
	}
	plans := make([]*plan, len(nics))
	for i, n := range nics {
		if n.ID == "" {
			n.ID = "net" + strconv.Itoa(i)
		}
		p, err := prepare(vmm, n, o)
		if err == nil && (vmm == QEMU || vmm == Libvirt) {
			err = p.qemuQueueSize(vmm)
		}
		if err != nil {
			return "", fmt.Errorf("nic %d: %w", i, err)
		}
		plans[i] = p
	}
	var b strings.Builder
	switch vmm {
	case CloudHypervisor:
		for _, p := range plans {
			b.WriteString("--net " + p.cloudHypervisor() + "\n")
		}
	case Firecracker:
		ifs := make([]*FirecrackerNetworkInterface, len(plans))
		for i, p := range plans {
			ifs[i] = p.firecracker()
		}
		out, err := json.MarshalIndent(ifs, "", "  ")
		if err != nil {
			return "", err
		}
		b.Write(out)
		b.WriteString("\n")
	case QEMU:
		for _, p := range plans {
			netdev, device := p.qemu()
			b.WriteString("-netdev " + netdev + " -device " + device + "\n")
		}
	case Libvirt:
		for _, p := range plans {
			b.WriteString(p.libvirt() + "\n")
		}
	}
	return b.String(), nil
}
