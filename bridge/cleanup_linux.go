package bridge

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/rtnl"
)

// Cleanup deletes every TAP of vmIDs that belongs to the instance conf
// describes (conf.RootDir) in conf's namespace, without a Bridge and so
// without needing the bridge device to exist, and returns when they are
// gone. VMs without TAPs are a no-op. It returns the IDs that have no TAP
// of the instance left afterwards, in the order given; invalid IDs are
// reported in the error (wrapping ErrInvalidArgument), as is a failed
// deletion, whose VMs are then not returned.
func Cleanup(ctx context.Context, conf *config.Config, vmIDs []string) ([]string, error) {
	if conf == nil {
		conf = &config.Config{}
	}
	c := conf.WithDefaults()
	ids, verr := validIDs("cleanup", vmIDs)
	if len(ids) == 0 {
		return nil, verr
	}
	conn, err := dialPath(c.NetnsPath, nil)
	if err != nil {
		return nil, errors.Join(verr, fmt.Errorf("cleanup: %w", err))
	}
	defer conn.Close()
	inst := owner.InstanceOf(c.RootDir)
	o := &ops{conn: conn, ownership: ownership{inst: inst, group: inst.Group()}}
	f, err := o.lookupVMs(ctx, ids, 0, owner.MaxNICs)
	if err != nil {
		return nil, errors.Join(verr, fmt.Errorf("cleanup: %w", err))
	}
	var indexes []uint32
	for _, r := range refsOf(f) {
		indexes = append(indexes, r.index)
	}
	if err := o.deleteNow(ctx, indexes); err != nil {
		// Group deletion is all or nothing: only VMs that had no TAP are done.
		var done []string
		for _, id := range ids {
			if len(f[id]) == 0 {
				done = append(done, id)
			}
		}
		return done, errors.Join(verr, fmt.Errorf("cleanup: %w", err))
	}
	return ids, verr
}

// CleanupTAPs deletes the tapbridge TAPs of vmIDs in the caller's network
// namespace, whichever instance (RootDir) made them, without a Bridge: the
// caller names the VMs explicitly and names no instance. It touches only
// TUN/TAP devices whose owner tag (of any instance) names one of the VMs,
// never any other device. VMs without TAPs are a no-op. It returns the IDs
// that have no tapbridge TAP left afterwards; IDs that are invalid, or
// whose TAPs could not be deleted, are not returned. Delete, Cleanup and GC
// stay scoped to one instance.
func CleanupTAPs(vmIDs []string) []string {
	ids, _ := validIDs("cleanup", vmIDs) // invalid IDs are simply not returned
	if len(ids) == 0 {
		return nil
	}
	conn, err := dialPath("", nil)
	if err != nil {
		return nil
	}
	defer conn.Close()
	ctx := context.Background()
	links, err := taggedTAPs(ctx, conn)
	if err != nil {
		return nil
	}
	failed := cleanupEveryInstance(ctx, conn, cleanupTargets(links, ids))
	var done []string
	for _, id := range ids {
		if !failed[id] {
			done = append(done, id)
		}
	}
	return done
}

// taggedTAPs lists the namespace's TUN/TAP devices that carry an owner tag
// of any instance (one kernel-filtered dump).
func taggedTAPs(ctx context.Context, c conn) ([]taggedTAP, error) {
	var out []taggedTAP
	var tag owner.Tag
	err := c.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun", Brief: true}, func(l *rtnl.Link) error {
		if l.Tun != nil && l.Tun.TAP && owner.ParseTag(l.Alias, &tag) {
			out = append(out, taggedTAP{index: l.Index, tag: tag})
		}
		return nil
	}, func() { out = out[:0] })
	return out, err
}

// cleanupEveryInstance deletes the TAPs of targets, instance by instance,
// each through its reserved group, and returns the VMs whose TAPs could
// not all be deleted.
func cleanupEveryInstance(ctx context.Context, c conn, targets map[owner.Instance]map[string][]uint32) map[string]bool {
	failed := map[string]bool{}
	for inst, vms := range targets {
		o := &ops{conn: c, ownership: ownership{inst: inst, group: inst.Group()}}
		var indexes []uint32
		for _, idx := range vms {
			indexes = append(indexes, idx...)
		}
		if err := o.deleteNow(ctx, indexes); err != nil {
			for id := range vms {
				failed[id] = true
			}
		}
	}
	return failed
}

// dialPath dials rtnetlink in the network namespace at path, or in the
// caller's when path is empty, and applies wrap. The namespace fd is
// needed only to dial.
func dialPath(path string, wrap wrapFunc) (conn, error) {
	fd := 0
	if path != "" {
		var err error
		if fd, err = netns.Open(path); err != nil {
			return nil, err
		}
		defer unix.Close(fd)
	}
	return dialConn(fd, wrap)
}
