package vmmopen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// chNet is the part of Cloud Hypervisor's NetConfig this package
// reproduces (vmm/src/config.rs:1692-1840 NetConfig::parse).
type chNet struct {
	tap       string
	mac       net.HardwareAddr
	numQueues int   // default_netconfig_num_queues: 2
	queueSize int   // default_netconfig_queue_size: 256
	fds       []int // nil: none given
	mtu       int   // 0: not given
}

// chOptions are the keys NetConfig::parse registers
// (vmm/src/config.rs:1695-1717, with PciDeviceCommonConfig's iommu, id,
// pci_segment, pci_device_id); parse_inner refuses any other
// (option_parser/src/lib.rs:139-143 UnknownOption).
var chOptions = map[string]bool{
	"tap": true, "ip": true, "mask": true, "mac": true, "host_mac": true,
	"offload_tso": true, "offload_ufo": true, "offload_csum": true, "mtu": true,
	"queue_size": true, "num_queues": true, "vhost_user": true, "socket": true,
	"vhost_mode": true, "fd": true, "bw_size": true, "bw_one_time_burst": true,
	"bw_refill_time": true, "ops_size": true, "ops_one_time_burst": true,
	"ops_refill_time": true, "iommu": true, "id": true, "pci_segment": true,
	"pci_device_id": true,
}

// chUnreproduced are accepted keys whose effect this package does not
// copy; an argument that uses them is refused rather than half-opened.
var chUnreproduced = []string{"ip", "mask", "host_mac", "vhost_user", "socket", "vhost_mode"}

// CloudHypervisor opens the TAP of one --net argument as Cloud Hypervisor
// v53.0 does for a VM with bootVCPUs vCPUs, in the calling thread's network
// namespace, reading tun_flags below sysfs (normally "/sys"; see Run).
// fd= numbers are fds of this process, as they would be of the VMM's.
//
// It fails with an *Error wrapping ErrConfig for an argument Cloud
// Hypervisor refuses before opening anything (syntax, num_queues < 2, an
// fd count that does not match num_queues, more queue pairs than vCPUs,
// a queue size that is not a power of two), ErrMultiQueueNoTapSupport or
// ErrMultiQueueNoDeviceSupport when tun_flags disagree with the queue
// pairs, or the kernel's errno (EINVAL from TUNSETIFF on a flag mismatch
// that sysfs did not show).
func CloudHypervisor(netArg string, bootVCPUs int, sysfs string) (*Tap, error) {
	cfg, err := parseCloudHypervisor(netArg)
	if err != nil {
		return nil, err
	}
	if err := cfg.validate(bootVCPUs); err != nil {
		return nil, err
	}
	// vmm/src/device_manager.rs:2974-3024: tap= wins over fd=.
	if cfg.tap != "" {
		return chOpenTap(cfg, sysfs)
	}
	if cfg.fds != nil {
		return chFromFDs(cfg)
	}
	return nil, chConfigErr("this package does not reproduce a --net without tap= or fd= (Cloud Hypervisor would create a vmtap%%d)")
}

func chConfigErr(format string, args ...any) error {
	return &Error{VMM: "cloud-hypervisor", Step: "config", Chain: []string{"Error parsing --net"}, Err: fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)}
}

// parseCloudHypervisor is NetConfig::parse for the keys reproduced.
func parseCloudHypervisor(s string) (*chNet, error) {
	opts, err := chSplit(s)
	if err != nil {
		return nil, err
	}
	for _, k := range chUnreproduced {
		if _, ok := opts[k]; ok {
			return nil, chConfigErr("%s= is not reproduced by this package", k)
		}
	}
	cfg := &chNet{tap: opts["tap"], numQueues: 2, queueSize: 256}
	if v, ok := opts["mac"]; ok {
		m, err := net.ParseMAC(v)
		if err != nil || len(m) != 6 {
			return nil, chConfigErr("mac %q: invalid MAC", v)
		}
		cfg.mac = m
	}
	for _, kv := range []struct {
		key string
		dst *int
	}{{"num_queues", &cfg.numQueues}, {"queue_size", &cfg.queueSize}, {"mtu", &cfg.mtu}} {
		if v, ok := opts[kv.key]; ok {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return nil, chConfigErr("%s=%q: %v", kv.key, v, err)
			}
			*kv.dst = int(n)
		}
	}
	if v, ok := opts["fd"]; ok {
		fds, err := chIntegerList(v)
		if err != nil {
			return nil, chConfigErr("fd=%q: %v", v, err)
		}
		cfg.fds = fds
	}
	return cfg, nil
}

// chSplit is option_parser/src/lib.rs:88-121 split_commas (commas inside
// brackets or quotes do not split) and 131-157 parse_inner (key=value,
// unknown keys refused, values trimmed; get() treats "" as unset).
func chSplit(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var list []string
	var cur strings.Builder
	depth, quoted := 0, false
	for _, c := range strings.TrimSpace(s) {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '[':
			depth++
		case c == ']':
			if depth == 0 {
				return nil, chConfigErr("invalid syntax: %s", s)
			}
			depth--
		case c == ',' && depth == 0:
			list = append(list, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(c)
	}
	list = append(list, cur.String())
	if quoted || depth != 0 {
		return nil, chConfigErr("invalid syntax: %s", s)
	}
	for _, opt := range list {
		k, v, ok := strings.Cut(opt, "=")
		if !chOptions[k] {
			return nil, chConfigErr("unknown option: %s", k)
		}
		if !ok {
			return nil, chConfigErr("invalid syntax: %s", opt)
		}
		if v = strings.Trim(strings.TrimSpace(v), `"`); v != "" {
			out[k] = v
		}
	}
	return out, nil
}

// chIntegerList is option_parser/src/lib.rs:382-425 IntegerList::from_str:
// "[3,4]" or "[3-5]".
func chIntegerList(s string) ([]int, error) {
	var out []int
	for _, r := range strings.Split(strings.Trim(strings.TrimSpace(s), "[]"), ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.ParseUint(lo, 10, 31)
		if err != nil {
			return nil, fmt.Errorf("invalid value: %s", lo)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 31); err != nil || a >= b {
				return nil, fmt.Errorf("invalid value: %s", r)
			}
		}
		for v := a; v <= b; v++ {
			out = append(out, int(v))
		}
	}
	return out, nil
}

// validate is vmm/src/config.rs:1842-1901 NetConfig::validate, for the
// fields reproduced.
func (c *chNet) validate(bootVCPUs int) error {
	bad := func(format string, args ...any) error {
		return &Error{VMM: "cloud-hypervisor", Step: "validate", Chain: []string{"Error validating configuration"}, Err: fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)}
	}
	// config.rs:1845-1847 VnetQueueLowerThan2 (config.rs:268).
	if c.numQueues < 2 {
		return bad("Number of queues (%d) to virtio_net should be higher than 2", c.numQueues)
	}
	if c.fds != nil {
		// config.rs:1849-1856 VnetQueueFdMismatch (config.rs:271).
		if 2*len(c.fds) != c.numQueues {
			return bad("Number of queues (%d) to virtio_net does not match the number of FDs (%d)", c.numQueues, 2*len(c.fds))
		}
		// config.rs:1858-1862 VnetReservedFd (config.rs:274).
		for _, fd := range c.fds {
			if fd <= 2 {
				return bad("Reserved fd number (<= 2): %d", fd)
			}
		}
	}
	// config.rs:1865-1870 TooManyQueues (config.rs:294).
	if c.numQueues/2 > bootVCPUs {
		return bad("Queue count (%d) must not exceed boot vCPUs (%d)", c.numQueues, bootVCPUs)
	}
	// config.rs:1872 validate_queue_size (config.rs:465-471).
	if c.queueSize == 0 || c.queueSize&(c.queueSize-1) != 0 {
		return bad("Queue size must be a power of 2 no greater than 32768: %d", c.queueSize)
	}
	return nil
}

// chOpenTap is virtio-devices/src/net.rs:672-681 Net::new ->
// net_util/src/open_tap.rs:110-147 open_tap(if_name, .., num_queues / 2).
func chOpenTap(c *chNet, sysfs string) (*Tap, error) {
	pairs := c.numQueues / 2
	t := &Tap{Name: c.tap}
	fail := func(step string, err error, chain ...string) (*Tap, error) {
		t.Close()
		// device_manager.rs:199-200 CreateVirtioNet "Cannot create
		// virtio-net device"; net.rs:218-219 OpenTap "Failed to open taps".
		return nil, &Error{VMM: "cloud-hypervisor", Step: step, Chain: append([]string{"Cannot create virtio-net device", "Failed to open taps"}, chain...), Err: err}
	}

	// open_tap.rs:127 check_mq_support (open_tap.rs:42-60): read
	// /sys/class/net/TAP/tun_flags if it exists and compare
	// IFF_MULTI_QUEUE with queue_pairs > 1.
	path := filepath.Join(sysfs, "class", "net", c.tap, "tun_flags")
	if b, err := os.ReadFile(path); err == nil {
		flags, perr := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 32)
		if perr != nil {
			return fail("tun_flags", perr, "Failed to convert an hexadecimal string into an integer")
		}
		mq := pairs > 1
		t.Steps = append(t.Steps, fmt.Sprintf("read %s = %#x", path, flags))
		switch {
		case flags&unix.IFF_MULTI_QUEUE != 0 && !mq:
			return fail("tun_flags", ErrMultiQueueNoDeviceSupport)
		case flags&unix.IFF_MULTI_QUEUE == 0 && mq:
			return fail("tun_flags", ErrMultiQueueNoTapSupport)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fail("tun_flags", err, "Failed to read the TAP flags from sysfs")
	} else {
		t.Steps = append(t.Steps, "no "+path+": check skipped")
	}

	for i := range pairs {
		// open_tap.rs:135 (queue 0, open_tap_rx_q_0 open_tap.rs:78) and
		// 139 (the others): Tap::open_named(name, num_rx_q, None).
		fd, err := chOpenNamed(t, c.tap, pairs)
		if err != nil {
			return fail("TUNSETIFF", err.Err, err.chain...)
		}
		if i == 0 {
			// open_tap.rs:92-96: no host_mac given, so get_mac_addr
			// (tap.rs:387-411, SIOCGIFHWADDR on an AF_UNIX socket).
			if err := chIfreq(t, c.tap, unix.SIOCGIFHWADDR, nil); err != nil {
				return fail("SIOCGIFHWADDR", err, "Getting MAC address failed")
			}
			// open_tap.rs:97-99: set_mtu only if mtu= was given
			// (tap.rs:434-442, SIOCSIFMTU).
			if c.mtu != 0 {
				mtu := uint32(c.mtu)
				if err := chIfreq(t, c.tap, unix.SIOCSIFMTU, &mtu); err != nil {
					return fail("SIOCSIFMTU", err, "Setting MTU failed")
				}
			}
			// open_tap.rs:100 enable (tap.rs:457-476): SIOCGIFFLAGS, and
			// SIOCSIFFLAGS IFF_UP only if the TAP is not up already.
			if err := chEnable(t, c.tap); err != nil {
				return fail("SIOCSIFFLAGS", err, "Enabling tap interface failed")
			}
		}
		// open_tap.rs:102-103 and 141-142: set_vnet_hdr_size(vnet_hdr_len())
		// (tap.rs:479-482).
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			return fail("TUNSETVNETHDRSZ", err, "Setting vnet header size failed")
		}
		t.Steps = append(t.Steps, fmt.Sprintf("TUNSETVNETHDRSZ %d", vnetHdrLen))
	}
	return t, nil
}

type chErr struct {
	Err   error
	chain []string
}

// chOpenNamed is net_util/src/tap.rs:153-228 Tap::open_named. It appends
// the file to t.
func chOpenNamed(t *Tap, name string, pairs int) (int, *chErr) {
	// tap.rs:154-156 IfnameTooLong.
	if len(name) > unix.IFNAMSIZ-1 {
		return -1, &chErr{errors.New("Interface name too long (max length is 15): " + name), []string{"Open tap device failed"}}
	}
	// tap.rs:165-168: flags None, so O_RDWR | O_NONBLOCK | O_CLOEXEC.
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &chErr{err, []string{"Open tap device failed", "Couldn't open /dev/net/tun"}}
	}
	t.Files = append(t.Files, os.NewFile(uintptr(fd), "/dev/net/tun"))
	t.Steps = append(t.Steps, "open /dev/net/tun O_RDWR|O_NONBLOCK|O_CLOEXEC")
	// tap.rs:180-191: TUNGETFEATURES; no IFF_MULTI_QUEUE support in the
	// kernel with pairs > 1 is MultiQueueKernelSupport.
	features, err := unix.IoctlGetUint32(fd, unix.TUNGETFEATURES)
	if err != nil {
		return -1, &chErr{err, []string{"Open tap device failed", "Unable to retrieve features"}}
	}
	t.Steps = append(t.Steps, fmt.Sprintf("TUNGETFEATURES = %#x", features))
	if features&unix.IFF_MULTI_QUEUE == 0 && pairs > 1 {
		//lint:ignore ST1005 Cloud Hypervisor's own message (tap.rs:34-35)
		return -1, &chErr{errors.New("Missing multiqueue support in the kernel"), []string{"Open tap device failed"}}
	}
	// tap.rs:193-219: TUNSETIFF IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, plus
	// IFF_MULTI_QUEUE iff pairs > 1; failure is ConfigureTap.
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if pairs > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if err := setIff(fd, name, flags); err != nil {
		return -1, &chErr{err, []string{"Open tap device failed", "Unable to configure tap interface"}}
	}
	t.Steps = append(t.Steps, fmt.Sprintf("TUNSETIFF %s flags=%#x", name, flags))
	return fd, nil
}

// chIfreq makes one SIOC* ioctl on an AF_UNIX datagram socket, as
// net_util/src/lib.rs:93-102 create_unix_socket and the Tap methods do;
// v, if set, is the ifreq's value.
func chIfreq(t *Tap, name string, req uint, v *uint32) error {
	sock, ifr, err := chSocket(name)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	step := fmt.Sprintf("ioctl %#x", req)
	switch req {
	case unix.SIOCGIFHWADDR:
		step = "SIOCGIFHWADDR"
	case unix.SIOCSIFMTU:
		ifr.SetUint32(*v)
		step = fmt.Sprintf("SIOCSIFMTU %d", *v)
	}
	if err := unix.IoctlIfreq(sock, req, ifr); err != nil {
		return err
	}
	t.Steps = append(t.Steps, step)
	return nil
}

// chSocket is net_util/src/lib.rs:93-102 create_unix_socket (AF_UNIX,
// SOCK_DGRAM; close-on-exec added) and an ifreq naming the TAP.
func chSocket(name string) (int, *unix.Ifreq, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return -1, nil, err
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	return sock, ifr, err
}

// chEnable is net_util/src/tap.rs:457-476 Tap::enable.
func chEnable(t *Tap, name string) error {
	sock, ifr, err := chSocket(name)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	if err := unix.IoctlIfreq(sock, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		t.Steps = append(t.Steps, "SIOCGIFFLAGS: up, left as is")
		return nil
	}
	ifr.SetUint16(unix.IFF_UP)
	if err := unix.IoctlIfreq(sock, unix.SIOCSIFFLAGS, ifr); err != nil {
		return err
	}
	t.Steps = append(t.Steps, "SIOCSIFFLAGS IFF_UP")
	return nil
}

// chFromFDs is virtio-devices/src/net.rs:701-751 Net::from_tap_fds.
func chFromFDs(c *chNet) (*Tap, error) {
	pairs := len(c.fds) // net.rs:717
	t := &Tap{}
	fail := func(step string, err error, chain ...string) (*Tap, error) {
		t.Close()
		return nil, &Error{VMM: "cloud-hypervisor", Step: step, Chain: append([]string{"Cannot create virtio-net device"}, chain...), Err: err}
	}
	for _, given := range c.fds {
		// net.rs:722: dup(fd), "so that it can survive reboots". The one
		// deviation: F_DUPFD_CLOEXEC, so that processes the tests fork do
		// not inherit it; the kernel sees the same queue file.
		fd, err := unix.FcntlInt(uintptr(given), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail("dup", err, "Error calling dup() on tap fd")
		}
		t.Files = append(t.Files, os.NewFile(uintptr(fd), fmt.Sprintf("fd %d", given)))
		t.Steps = append(t.Steps, fmt.Sprintf("dup %d", given))
		// net.rs:726 Tap::from_tap_fd (tap.rs:235-289), errors as
		// Error::TapError "Using existing tap" (net.rs:220-221).
		// tap.rs:239-246: set O_NONBLOCK.
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
		}
		if err != nil {
			return fail("fcntl", err, "Using existing tap", "Unable to configure tap interface")
		}
		// tap.rs:250-257: TUNGETIFF for the name.
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return fail("TUNGETIFF", err, "Using existing tap")
		}
		if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
			return fail("TUNGETIFF", err, "Using existing tap", fmt.Sprintf("Ioctl failed (%d)", unix.TUNGETIFF))
		}
		name := ifr.Name()
		if t.Name == "" {
			t.Name = name
		}
		t.Steps = append(t.Steps, fmt.Sprintf("TUNGETIFF = %s flags=%#x", name, ifr.Uint16()))
		// tap.rs:268-282: TUNSETIFF with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
		// (| IFF_MULTI_QUEUE iff pairs > 1); an attached fd answers
		// EEXIST (drivers/net/tun.c __tun_chr_ioctl), which is ignored.
		flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if pairs > 1 {
			flags |= unix.IFF_MULTI_QUEUE
		}
		if err := setIff(fd, name, flags); err != nil && !errors.Is(err, unix.EEXIST) {
			return fail("TUNSETIFF", err, "Using existing tap", "Unable to configure tap interface")
		}
		t.Steps = append(t.Steps, fmt.Sprintf("TUNSETIFF %s flags=%#x (EEXIST ignored)", name, flags))
		// tap.rs:285-286: set_vnet_hdr_size.
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			return fail("TUNSETVNETHDRSZ", err, "Using existing tap", fmt.Sprintf("Ioctl failed (%d)", unix.TUNSETVNETHDRSZ))
		}
		t.Steps = append(t.Steps, fmt.Sprintf("TUNSETVNETHDRSZ %d", vnetHdrLen))
	}
	// net.rs:732-734: set_mtu on the first only if mtu= was given.
	if c.mtu != 0 {
		mtu := uint32(c.mtu)
		if err := chIfreq(t, t.Name, unix.SIOCSIFMTU, &mtu); err != nil {
			return fail("SIOCSIFMTU", err, "Using existing tap")
		}
	}
	return t, nil
}
