package vmmopen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// vnetHdrLen is sizeof(struct virtio_net_hdr_v1), what both VMMs set with
// TUNSETVNETHDRSZ (Firecracker device.rs:52 vnet_hdr_len; Cloud
// Hypervisor net_util/src/lib.rs:104 vnet_hdr_len).
const vnetHdrLen = 12

// firecrackerIface is src/vmm/src/vmm_config/net.rs:18-33
// NetworkInterfaceConfig (#[serde(deny_unknown_fields)]; iface_id and
// host_dev_name required, guest_mac and mtu optional; the rate limiters
// are not reproduced).
type firecrackerIface struct {
	IfaceID     *string `json:"iface_id"`
	HostDevName *string `json:"host_dev_name"`
	GuestMAC    *string `json:"guest_mac"`
	MTU         *uint16 `json:"mtu"`
}

// FirecrackerOffload is the TUNSETOFFLOAD a Linux guest leads Firecracker
// to at activation: the guest acks GUEST_CSUM, GUEST_TSO4, GUEST_TSO6 and
// GUEST_UFO, which build_tap_offload_features (device.rs:811-848) maps to
// these TUN_F_* flags.
const FirecrackerOffload = unix.TUN_F_CSUM | unix.TUN_F_UFO | unix.TUN_F_TSO4 | unix.TUN_F_TSO6

// Firecracker opens the TAP of a network-interface body (PUT
// /network-interfaces/{id}, or an element of a --config-file's
// "network-interfaces") as Firecracker v1.16.0 does when it builds the
// device (NetBuilder::build -> create_net -> Net::new), in the calling
// thread's network namespace.
//
// It fails with an *Error wrapping ErrConfig for a body Firecracker's
// serde would refuse, or the kernel's errno: EINVAL for a multi-queue TAP
// (Firecracker never sets IFF_MULTI_QUEUE), EBUSY for a single-queue TAP
// something already holds open, EPERM without CAP_NET_ADMIN on a TAP owned
// by someone else.
func Firecracker(body []byte) (*Tap, error) {
	cfg, err := parseFirecracker(body)
	if err != nil {
		return nil, err
	}
	name := *cfg.HostDevName
	t := &Tap{Name: name}
	fail := func(step string, err error, chain ...string) (*Tap, error) {
		t.Close()
		// vmm_config/net.rs:68-69 CreateNetworkDevice: "Could not create
		// the network device: {0}".
		return nil, &Error{VMM: "firecracker", Step: step, Chain: append([]string{"Could not create the network device"}, chain...), Err: err}
	}

	// device.rs:352 Tap::open_named(tap_if_name), mapped to NetError::TapOpen
	// ("Open tap device failed: {0}", net/mod.rs:48-49).
	// tap.rs:136 and 58-71: a name of 16 bytes or more is InvalidIfname.
	if len(name) >= 16 {
		return fail("ifname", nil, "Open tap device failed", "Invalid interface name")
	}
	// tap.rs:123-128: open /dev/net/tun O_RDWR | O_NONBLOCK | O_CLOEXEC.
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		// tap.rs:28-29 OpenTun: "Couldn't open /dev/net/tun: {0}".
		return fail("open /dev/net/tun", err, "Open tap device failed", "Couldn't open /dev/net/tun")
	}
	t.Files = append(t.Files, os.NewFile(uintptr(fd), "/dev/net/tun"))
	t.Steps = append(t.Steps, "open /dev/net/tun O_RDWR|O_NONBLOCK|O_CLOEXEC")

	// tap.rs:137-144: TUNSETIFF with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
	// never IFF_MULTI_QUEUE.
	const flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
	if err := setIff(fd, name, flags); err != nil {
		// tap.rs:32-33 IfreqExecuteError: "Error while creating ifreq
		// structure: {0}. Invalid TUN/TAP Backend provided by {1}. Check
		// our documentation on setting up the network devices."
		return fail("TUNSETIFF", err, "Open tap device failed",
			fmt.Sprintf("Error while creating ifreq structure: %s. Invalid TUN/TAP Backend provided by %s. Check our documentation on setting up the network devices.", rustError(err), name))
	}
	t.Steps = append(t.Steps, fmt.Sprintf("TUNSETIFF %s flags=%#x", name, flags))

	// device.rs:354-356: set_vnet_hdr_size(vnet_hdr_len()) (tap.rs:174-181),
	// mapped to NetError::TapSetVnetHdrSize ("Setting vnet header size
	// failed: {0}", net/mod.rs:50-51; TapError::SetSizeOfVnetHdr,
	// tap.rs:36-37).
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
		return fail("TUNSETVNETHDRSZ", err, "Setting vnet header size failed", "Error while setting size of the vnet header")
	}
	t.Steps = append(t.Steps, fmt.Sprintf("TUNSETVNETHDRSZ %d", vnetHdrLen))
	return t, nil
}

// FirecrackerActivate is what Firecracker does to the TAP when the guest
// driver activates the device (device.rs:1073-1075 Net::activate ->
// tap.rs:164-171 set_offload): TUNSETOFFLOAD with the offloads the guest
// acked (FirecrackerOffload for a Linux guest). It fails with an *Error
// wrapping the kernel's errno.
func FirecrackerActivate(t *Tap, offload uint32) error {
	if err := unix.IoctlSetInt(int(t.Files[0].Fd()), unix.TUNSETOFFLOAD, int(offload)); err != nil {
		// ActivateError::TapSetOffload; TapError::SetOffloadFlags
		// (tap.rs:34-35) "Error while setting the offload flags: {0}".
		return &Error{VMM: "firecracker", Step: "TUNSETOFFLOAD", Chain: []string{"Error while setting the offload flags"}, Err: err}
	}
	t.Steps = append(t.Steps, fmt.Sprintf("TUNSETOFFLOAD %#x", offload))
	return nil
}

// parseFirecracker decodes a body as serde would for
// NetworkInterfaceConfig: unknown fields and missing required ones are
// errors, and guest_mac must parse as a MAC (src/vmm/src/utils/net/mac.rs).
func parseFirecracker(body []byte) (*firecrackerIface, error) {
	bad := func(format string, args ...any) error {
		return &Error{VMM: "firecracker", Step: "parse", Chain: []string{"invalid network interface body"}, Err: fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)}
	}
	var cfg firecrackerIface
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, bad("%v", err)
	}
	if dec.More() {
		return nil, bad("trailing data after the object")
	}
	switch {
	case cfg.IfaceID == nil:
		return nil, bad("missing field `iface_id`")
	case cfg.HostDevName == nil:
		return nil, bad("missing field `host_dev_name`")
	}
	if cfg.GuestMAC != nil {
		if m, err := net.ParseMAC(*cfg.GuestMAC); err != nil || len(m) != 6 {
			return nil, bad("invalid guest_mac %q", *cfg.GuestMAC)
		}
	}
	return &cfg, nil
}

// setIff is TUNSETIFF with name and flags on fd.
func setIff(fd int, name string, flags uint16) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(flags)
	return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
}
