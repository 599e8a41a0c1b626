package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tapbridge/tapbridge/config"
)

// settingsFile is where New records what a Bridge-less GCModule needs.
const settingsFile = "bridge.json"

// settings is the part of a Config that GCModule needs without a Bridge.
type settings struct {
	NetnsPath string        `json:"netns_path,omitempty"`
	GCGrace   time.Duration `json:"gc_grace"`
	BridgeDev string        `json:"bridge_dev"`
}

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

// record writes the settings of c and bridgeDev into c.RootDir, creating
// it (0700) if needed.
func record(c *config.Config, bridgeDev string) error {
	if err := os.MkdirAll(c.RootDir, 0o700); err != nil {
		return fmt.Errorf("bridge: root dir: %w", err)
	}
	s, err := json.Marshal(settings{NetnsPath: c.NetnsPath, GCGrace: c.GCGrace, BridgeDev: bridgeDev})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.RootDir, settingsFile), s)
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
