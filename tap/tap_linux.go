package tap

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/netns"
)

const tunPath = "/dev/net/tun"

// Create creates the TAP device name (or, without Exclusive, attaches to it
// if it exists) and returns it with o.Queues queue files attached. A nil o
// means the zero Options.
//
// The steps are: open /dev/net/tun close-on-exec in o.NetNS, TUNSETIFF with
// IFF_TAP|IFF_NO_PI plus the requested flags, TUNSETOWNER and TUNSETGROUP if
// set, the remaining queues, then TUNSETPERSIST. Persist comes last so that a
// failure at any step closes the files and the kernel destroys the device:
// nothing is left behind and no fd leaks.
//
// Errors wrap the errno (errors.Is(err, unix.EBUSY) and so on) and say the
// likely cause: EBUSY for a name that exists under Exclusive or a
// single-queue TAP already attached elsewhere, EINVAL for a multi-queue or
// TUN/TAP mismatch with an existing device, EPERM for a missing CAP_NET_ADMIN
// or an owner or group mismatch. Invalid names and options wrap
// ErrInvalidName or ErrInvalidOptions and make no system call.
func Create(name string, o *Options) (*Device, error) {
	if o == nil {
		o = &Options{}
	}
	return attach(name, o, true)
}

// Open attaches o.Queues queue files to the existing persistent TAP name, the
// way a VMM does, with o.MultiQueue and o.VnetHdr as the VMM would set them.
// Exclusive, Persist, Owner and Group are ignored.
//
// TUNSETIFF creates a device when the name is free, so Open checks the flags
// the kernel reports: if the device is not persistent it was not there before
// (or is another process's transient TAP), and Open closes its files, which
// destroys anything it created, and returns an error wrapping
// ErrNotPersistent and unix.ENODEV. Other errors are as for Create.
func Open(name string, o *Options) (*Device, error) {
	if o == nil {
		o = &Options{}
	}
	oo := Options{MultiQueue: o.MultiQueue, Queues: o.Queues, VnetHdr: o.VnetHdr, NetNS: o.NetNS, Files: o.Files}
	d, err := attach(name, &oo, false)
	if err != nil {
		return nil, err
	}
	if !d.flags.Persist {
		// The device was ours alone (or another process's transient TAP):
		// closing destroys what we created.
		err := fmt.Errorf("tap %s: %w: %w", name, ErrNotPersistent, unix.ENODEV)
		return nil, errors.Join(err, d.Close())
	}
	return d, nil
}

func attach(name string, o *Options, create bool) (*Device, error) {
	var nq int
	err := ValidateName(name)
	if err == nil {
		nq, err = o.queues(name)
	}
	if err != nil {
		for _, f := range o.Files {
			f.Close() // owned from here on, as the doc says
		}
		return nil, err
	}

	files := o.Files
	fds := make([]int, 0, nq)
	closeAll := func() {
		if files != nil {
			for _, f := range files {
				f.Close()
			}
			return
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	if files != nil {
		if len(files) != nq {
			closeAll()
			return nil, fmt.Errorf("tap %s: %w: %d files for %d queues", name, ErrInvalidOptions, len(files), nq)
		}
		for _, f := range files {
			fds = append(fds, int(f.Fd()))
		}
	} else if fds, err = openTUN(o.NetNS, nq); err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}

	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if o.VnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	if o.MultiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	first := flags
	if o.Exclusive {
		first |= unix.IFF_TUN_EXCL
	}

	kflags, err := setIff(fds[0], name, first)
	if err != nil {
		closeAll()
		return nil, setIffError(name, o, err)
	}
	if create && o.Owner != nil {
		if err := unix.IoctlSetInt(fds[0], unix.TUNSETOWNER, int(*o.Owner)); err != nil {
			closeAll()
			return nil, fmt.Errorf("tap %s: %w", name, os.NewSyscallError("ioctl TUNSETOWNER", err))
		}
	}
	if create && o.Group != nil {
		if err := unix.IoctlSetInt(fds[0], unix.TUNSETGROUP, int(*o.Group)); err != nil {
			closeAll()
			return nil, fmt.Errorf("tap %s: %w", name, os.NewSyscallError("ioctl TUNSETGROUP", err))
		}
	}
	for _, fd := range fds[1:] {
		if _, err := setIff(fd, name, flags); err != nil {
			closeAll()
			return nil, setIffError(name, o, err)
		}
	}
	if create && o.Persist {
		if err := unix.IoctlSetInt(fds[0], unix.TUNSETPERSIST, 1); err != nil {
			closeAll()
			return nil, fmt.Errorf("tap %s: %w", name, os.NewSyscallError("ioctl TUNSETPERSIST", err))
		}
		kflags |= unix.IFF_PERSIST
	}

	d := &Device{name: name, flags: decodeFlags(kflags), files: files}
	if d.files == nil {
		d.files = make([]*os.File, len(fds))
		for i, fd := range fds {
			d.files[i] = os.NewFile(uintptr(fd), tunPath)
		}
	}
	return d, nil
}

// OpenFiles opens n files of /dev/net/tun, close-on-exec, in the network
// namespace netNS (0: the caller's), for Options.Files: a caller that
// creates many TAPs in another namespace enters it once for several of
// them instead of once each. The caller owns the files until it hands them
// to Create or Open. An unused file holds no device and costs only its
// socket.
func OpenFiles(netNS, n int) ([]*os.File, error) {
	if netNS < 0 || n < 1 || n > MaxQueues {
		return nil, fmt.Errorf("open %s: %w: %d files in namespace fd %d", tunPath, ErrInvalidOptions, n, netNS)
	}
	fds, err := openTUN(netNS, n)
	if err != nil {
		return nil, err
	}
	files := make([]*os.File, n)
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), tunPath)
	}
	return files, nil
}

// openTUN opens n files of /dev/net/tun in netNS. Only open(2) has to
// happen in the target namespace: the file's socket records the namespace
// (tun_chr_open), and TUNSETIFF creates or finds the device there.
func openTUN(netNS, n int) ([]int, error) {
	fds := make([]int, 0, n)
	err := netns.Do(netNS, func() error {
		for range n {
			fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return &os.PathError{Op: "open", Path: tunPath, Err: err}
			}
			fds = append(fds, fd)
		}
		return nil
	})
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, err
	}
	return fds, nil
}

// SetPersist sets (true) or clears (false) the device's persist flag
// (TUNSETPERSIST) through its first queue file. A device that is persistent
// outlives its files; clearing the flag makes closing the last file destroy
// it. It fails with an error wrapping os.ErrClosed if the Device owns no
// files.
func (d *Device) SetPersist(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.files) == 0 {
		return fmt.Errorf("tap %s: set persist: %w", d.name, os.ErrClosed)
	}
	v := 0
	if on {
		v = 1
	}
	rc, err := d.files[0].SyscallConn()
	if err != nil {
		return fmt.Errorf("tap %s: %w", d.name, err)
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, v)
	}); err != nil {
		return fmt.Errorf("tap %s: %w", d.name, err)
	}
	if ierr != nil {
		return fmt.Errorf("tap %s: %w", d.name, os.NewSyscallError("ioctl TUNSETPERSIST", ierr))
	}
	d.flags.Persist = on
	return nil
}

// setIff runs TUNSETIFF and then TUNGETIFF, returning the flags the kernel
// reports for the device (which include IFF_PERSIST when it already was).
func setIff(fd int, name string, flags uint16) (uint16, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return 0, os.NewSyscallError("ioctl TUNSETIFF", err)
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		return 0, os.NewSyscallError("ioctl TUNGETIFF", err)
	}
	return ifr.Uint16(), nil
}

// setIffError names the likely cause of a TUNSETIFF failure
// (drivers/net/tun.c: tun_set_iff and tun_attach).
func setIffError(name string, o *Options, err error) error {
	var cause string
	switch {
	case errors.Is(err, unix.EBUSY) && o.Exclusive:
		cause = "a device with this name already exists (exclusive create)"
	case errors.Is(err, unix.EBUSY):
		cause = "single-queue TAP already attached to another file"
	case errors.Is(err, unix.EINVAL):
		cause = "existing device differs in multi-queue flag or TUN/TAP type, or is not a TUN/TAP device"
	case errors.Is(err, unix.EPERM):
		cause = "not permitted: CAP_NET_ADMIN missing, or the TAP's owner or group does not match"
	case errors.Is(err, unix.E2BIG):
		cause = "too many queues attached"
	default:
		return fmt.Errorf("tap %s: %w", name, err)
	}
	return fmt.Errorf("tap %s: %s: %w", name, cause, err)
}

func decodeFlags(f uint16) Flags {
	return Flags{
		TUN:        f&unix.IFF_TUN != 0,
		NoPI:       f&unix.IFF_NO_PI != 0,
		VnetHdr:    f&unix.IFF_VNET_HDR != 0,
		MultiQueue: f&unix.IFF_MULTI_QUEUE != 0,
		Persist:    f&unix.IFF_PERSIST != 0,
	}
}
