package bridge

import "errors"

// Type is what Bridge.Type returns.
const Type = "bridge"

// Backend is the Backend of every NetworkConfig this provider returns.
const Backend = "bridge"

// MaxPorts is the number of ports a Linux bridge holds (BR_MAX_PORTS minus
// the reserved port 0).
const MaxPorts = 1023

var (
	// ErrNotBridge is wrapped when the named device exists but is not a
	// bridge.
	ErrNotBridge = errors.New("not a bridge")

	// ErrBridgeNotFound is wrapped when the bridge device does not exist.
	ErrBridgeNotFound = errors.New("bridge not found")

	// ErrBridgeFull is wrapped when the bridge has no free port
	// (MaxPorts): nothing of the VM is left behind.
	ErrBridgeFull = errors.New("bridge has no free port")

	// ErrNameCollision is wrapped when every name candidate of a NIC is
	// held by another device, or the NIC's alternative name is held by a
	// device that is not this instance's TAP for that VM.
	ErrNameCollision = errors.New("TAP name collision")

	// ErrInvalidArgument is wrapped by errors for bad arguments: NIC or CPU
	// counts out of range, bad MACs or records in existing.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrMismatch is wrapped by Verify's error when a VM's TAPs exist but
	// differ from what Config made.
	ErrMismatch = errors.New("network differs from its configuration")
)

// ReaperStats counts what the background deletion did.
type ReaperStats struct {
	Queued  int   // VMs whose TAPs are doomed and waiting now
	Cycles  int   // group deletions done (by the goroutine, Flush or Close)
	Reaped  int   // VMs whose TAPs those deleted
	Failed  int   // VMs whose deletion failed (their TAPs stay doomed, for GC)
	LastErr error // the last cycle's error, if it failed
}
