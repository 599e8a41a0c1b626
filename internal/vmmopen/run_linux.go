package vmmopen

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Run runs fn as a VMM started with `ip netns exec` would run: on an OS
// thread in the network namespace nsFD (borrowed), with a mount namespace
// of its own where /sys is a sysfs mounted in that network namespace, so
// that /sys/class/net lists its devices (iproute2 lib/namespace.c
// netns_switch: unshare(CLONE_NEWNS), mount / MS_SLAVE|MS_REC,
// umount2 /sys MNT_DETACH, mount sysfs /sys).
//
// The thread is never handed back to the Go runtime: it ends with fn, so
// no other goroutine ever runs in its namespaces. Files fn opens stay open
// (file descriptors belong to the process). fn must not start goroutines
// that expect the namespaces.
func Run(nsFD int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the runtime ends the thread with this goroutine.
		if err := enter(nsFD); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func enter(nsFD int) error {
	// unshare(CLONE_NEWNS) also unshares the thread's fs_struct
	// (kernel/fork.c check_unshare_flags), so the process's other
	// threads keep their mounts.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("unshare CLONE_NEWNS", err)
	}
	// Nothing mounted below propagates back to the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
		return os.NewSyscallError("setns CLONE_NEWNET", err)
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("umount /sys: %w", err)
	}
	// sysfs shows the network devices of the mounter's network namespace
	// (fs/sysfs/mount.c sysfs_get_tree, kobj_ns_grab_current).
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("mount sysfs: %w", err)
	}
	return nil
}
