package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/rtnl"
)

// Recorded returns the settings New last recorded in rootDir (namespace,
// GC grace period) as a Config, and the bridge device it served. It fails
// with an error satisfying errors.Is(err, fs.ErrNotExist) if no Bridge was
// ever made with that root directory.
func Recorded(rootDir string) (*config.Config, string, error) {
	c := (&config.Config{RootDir: rootDir}).WithDefaults()
	data, err := os.ReadFile(filepath.Join(c.RootDir, settingsFile))
	if err != nil {
		return nil, "", fmt.Errorf("recorded settings: %w", err)
	}
	var s settings
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, "", fmt.Errorf("recorded settings %s: %w", filepath.Join(c.RootDir, settingsFile), err)
	}
	c.NetnsPath, c.GCGrace = s.NetnsPath, s.GCGrace
	c = c.WithDefaults()
	return &c, s.BridgeDev, nil
}

// Cleanup deletes every TAP of vmIDs that belongs to the instance conf
// describes (conf.RootDir) in conf's namespace, without a Bridge and so
// without needing the bridge device to exist. VMs without TAPs are a
// no-op. It returns the IDs that have no TAP left afterwards, in the order
// given; invalid IDs are reported in the error (wrapping
// ErrInvalidArgument), as is a failed deletion, whose VMs are then not
// returned.
func Cleanup(ctx context.Context, conf *config.Config, vmIDs []string) ([]string, error) {
	if conf == nil {
		conf = &config.Config{}
	}
	c := conf.WithDefaults()
	ids, verr := validIDs(vmIDs)
	if len(ids) == 0 {
		return nil, verr
	}
	conn, err := dialPath(c.NetnsPath)
	if err != nil {
		return nil, errors.Join(verr, fmt.Errorf("cleanup: %w", err))
	}
	defer conn.Close()
	inst := owner.InstanceOf(c.RootDir)
	o := &ops{conn: conn, inst: inst, group: inst.Group()}
	f, err := o.lookupVMs(ctx, ids, 0, owner.MaxNICs)
	if err != nil {
		return nil, errors.Join(verr, fmt.Errorf("cleanup: %w", err))
	}
	if err := o.deleteIndexes(ctx, indexesOf(f)); err != nil {
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

// dialPath dials rtnetlink in the network namespace at path, or in the
// caller's when path is empty. The namespace fd is needed only to dial.
func dialPath(path string) (*rtnl.Conn, error) {
	fd := 0
	if path != "" {
		var err error
		if fd, err = netns.Open(path); err != nil {
			return nil, err
		}
		defer unix.Close(fd)
	}
	return rtnl.Dial(&rtnl.Config{NetNS: fd})
}
