//go:build !linux

package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/types"
)

var _ network.Network = (*Bridge)(nil)

// errNotLinux is what the provider returns off Linux: TAP devices and
// Linux bridges exist only there. It wraps errors.ErrUnsupported.
var errNotLinux = fmt.Errorf("TAP-on-bridge networking needs Linux, this is %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Bridge is the TAP-on-bridge network provider. Off Linux, New and Open
// fail, so no Bridge exists; the methods are here so that code embedding
// the provider builds everywhere, and fail like New.
type Bridge struct{}

// New fails off Linux with an error wrapping errors.ErrUnsupported.
func New(conf *config.Config, bridgeDev string) (*Bridge, error) {
	return nil, fmt.Errorf("bridge %s: %w", bridgeDev, errNotLinux)
}

// Open fails off Linux with an error wrapping errors.ErrUnsupported.
func Open(conf *config.Config, bridgeDev string) (*Bridge, error) {
	return nil, fmt.Errorf("bridge %s: %w", bridgeDev, errNotLinux)
}

// Type returns "bridge".
func (b *Bridge) Type() string { return Type }

// Config fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Config(context.Context, string, int, *types.VMConfig, ...*types.NetworkConfig) ([]*types.NetworkConfig, error) {
	return nil, errNotLinux
}

// ConfigHandoff fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) ConfigHandoff(context.Context, string, int, *types.VMConfig, ...*types.NetworkConfig) ([]*Handoff, error) {
	return nil, errNotLinux
}

// Stage fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Stage(context.Context, string, int, *types.VMConfig, ...*types.NetworkConfig) ([]*types.NetworkConfig, error) {
	return nil, errNotLinux
}

// Activate fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Activate(context.Context, string) error { return errNotLinux }

// Delete fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Delete(context.Context, []string) ([]string, error) { return nil, errNotLinux }

// Verify fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Verify(context.Context, string) error { return errNotLinux }

// VerifyProfile fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) VerifyProfile(context.Context, string, string) error { return errNotLinux }

// Inspect fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Inspect(context.Context, string) (*types.Network, error) { return nil, errNotLinux }

// List fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) List(context.Context) ([]*types.Network, error) { return nil, errNotLinux }

// RegisterGC registers GCModule's module for the default root directory,
// whose every cycle fails off Linux.
func (b *Bridge) RegisterGC(orch *gc.Orchestrator) {
	gc.Register(orch, GCModule(config.DefaultRootDir))
}

// Bind fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Bind(context.Context, string, int, []netip.Prefix) error { return errNotLinux }

// Lease fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Lease(context.Context, net.HardwareAddr, netip.Addr, bool) (bool, error) {
	return false, errNotLinux
}

// Flush fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) Flush(context.Context) error { return errNotLinux }

// Stats returns zero counters.
func (b *Bridge) Stats() ReaperStats { return ReaperStats{} }

// StartReaper does nothing off Linux.
func (b *Bridge) StartReaper() {}

// StopReaper fails off Linux with an error wrapping errors.ErrUnsupported.
func (b *Bridge) StopReaper(context.Context) error { return errNotLinux }

// Close does nothing off Linux.
func (b *Bridge) Close() error { return nil }

// Cleanup fails off Linux with an error wrapping errors.ErrUnsupported.
func Cleanup(context.Context, *config.Config, []string) ([]string, error) {
	return nil, errNotLinux
}

// CleanupTAPs cleans nothing off Linux, and so returns no ID.
func CleanupTAPs([]string) []string { return nil }

// GCModule returns a module whose cycles fail off Linux with an error
// wrapping errors.ErrUnsupported.
func GCModule(rootDir string) gc.Module[bridgeSnapshot] {
	return gc.Module[bridgeSnapshot]{
		Name:   "bridge/" + owner.InstanceOf((&config.Config{RootDir: rootDir}).WithDefaults().RootDir).String(),
		ReadDB: func(context.Context) (bridgeSnapshot, error) { return bridgeSnapshot{}, errNotLinux },
	}
}

// GCModuleConfig is GCModule for conf.RootDir.
func GCModuleConfig(conf *config.Config) gc.Module[bridgeSnapshot] {
	if conf == nil {
		conf = &config.Config{}
	}
	return GCModule(conf.WithDefaults().RootDir)
}
