// Package orig is the original design's call sequence on
// github.com/vishvananda/netlink v1.3.1, kept as a baseline: package-level
// functions, one netlink socket per call, in the calling thread's network
// namespace. Call it from a goroutine whose OS thread is locked inside the
// target namespace.
package orig

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// TxQueueLen and GROMaxSize are the original's tuning values.
const (
	TxQueueLen = 10000
	GROMaxSize = 65536
)

// ConfigNIC creates TAP name with pairs queues and puts it on bridge br,
// exactly as the original did for each NIC.
func ConfigNIC(name string, pairs int, br netlink.Link) error {
	flags := netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_NO_PI
	if pairs > 1 {
		flags |= netlink.TUNTAP_MULTI_QUEUE_DEFAULTS
	} else {
		flags |= netlink.TUNTAP_ONE_QUEUE
	}
	t := &netlink.Tuntap{
		LinkAttrs: netlink.LinkAttrs{Name: name},
		Mode:      netlink.TUNTAP_MODE_TAP,
		Queues:    pairs,
		Flags:     flags,
	}
	if err := netlink.LinkAdd(t); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	for _, f := range t.Fds {
		f.Close()
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	var errs []error
	errs = append(errs, netlink.LinkSetMaster(l, br))
	errs = append(errs, netlink.LinkSetLearning(l, false))
	errs = append(errs, netlink.LinkSetMTU(l, br.Attrs().MTU))
	errs = append(errs, netlink.LinkSetTxQLen(l, TxQueueLen))
	errs = append(errs, netlink.LinkSetGROMaxSize(l, GROMaxSize))
	errs = append(errs, netlink.LinkSetUp(l))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set up %s: %w", name, err)
	}
	return nil
}

// Cleanup deletes a VM's TAPs the original way: probe names NIC 0, 1, ...
// with LinkByName until one is missing, then look each up again and
// LinkDel it. name(i) returns NIC i's TAP name.
func Cleanup(name func(nic int) string) error {
	var n int
	for ; ; n++ {
		if _, err := netlink.LinkByName(name(n)); err != nil {
			break
		}
	}
	var errs []error
	for i := range n {
		l, err := netlink.LinkByName(name(i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, netlink.LinkDel(l))
	}
	return errors.Join(errs...)
}

// ParseTAPName extracts the VM ID prefix from a name like bt<prefix>-<nic>.
func ParseTAPName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "bt")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, "-")
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// Scan is the original GC's ReadDB: list every link and keep the VM ID
// prefixes of bt* names.
func Scan() (map[string]struct{}, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	prefixes := make(map[string]struct{})
	for _, l := range links {
		if p, ok := ParseTAPName(l.Attrs().Name); ok {
			prefixes[p] = struct{}{}
		}
	}
	return prefixes, nil
}

// Reclaim is one original GC cycle: Scan, resolve against the live VMs'
// prefixes (the first 8 bytes of their IDs), then list the links again and
// LinkDel each orphan. It returns how many links it deleted.
func Reclaim(live map[string]struct{}) (int, error) {
	prefixes, err := Scan()
	if err != nil {
		return 0, err
	}
	active := make(map[string]struct{}, len(live))
	for id := range live {
		active[id[:min(len(id), 8)]] = struct{}{}
	}
	orphans := make(map[string]struct{})
	for _, p := range slices.Sorted(maps.Keys(prefixes)) {
		if _, ok := active[p]; !ok {
			orphans[p] = struct{}{}
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, l := range links {
		p, ok := ParseTAPName(l.Attrs().Name)
		if !ok {
			continue
		}
		if _, orphan := orphans[p]; !orphan {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
