// Package network defines the interface a tapbridge network provider
// implements.
package network

import (
	"context"
	"errors"

	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/types"
)

// ErrNotFound is wrapped by the errors of Verify and Inspect for a VM that
// has no network.
var ErrNotFound = errors.New("network not found")

// Network is a VM network provider.
//
// NOTE: implementations are safe for concurrent use, and every method that
// does I/O takes a context first.
type Network interface {
	// Type names the provider ("bridge").
	Type() string

	// Verify reports whether the VM's network exists and is intact.
	Verify(ctx context.Context, vmID string) error

	// Config creates (or, for a VM that has it, checks and repairs) the
	// VM's network with numNICs NICs. existing carries the records of a VM
	// being recovered, whose MACs are kept.
	Config(ctx context.Context, vmID string, numNICs int, vmCfg *types.VMConfig, existing ...*types.NetworkConfig) ([]*types.NetworkConfig, error)

	// Delete removes the networks of vmIDs and returns the IDs whose
	// networks are gone (including those that had none).
	Delete(ctx context.Context, vmIDs []string) ([]string, error)

	// Inspect returns the VM's network as the system records it.
	Inspect(ctx context.Context, vmID string) (*types.Network, error)

	// List returns every VM network of this provider instance.
	List(ctx context.Context) ([]*types.Network, error)

	// RegisterGC registers the provider's garbage-collection module.
	RegisterGC(orch *gc.Orchestrator)
}
