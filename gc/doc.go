// Package gc runs garbage collection in three steps: scan, diff, reclaim.
//
// Each subsystem registers a typed [Module]: ReadDB takes a snapshot (for
// tapbridge, one kernel-filtered link dump; for a VMM control plane, its VM
// database), Resolve is a pure function from the snapshots to the IDs to
// reclaim, and Collect reclaims them, re-checking each against the system
// before it acts.
//
// # Locks
//
// An [Orchestrator] cycle takes every module's lock with TryLock before it
// reads anything and holds them all until the last Collect returns. If any
// lock is busy the whole cycle is abandoned (fail-closed) and Run returns an
// error wrapping [ErrBusy]: a GC that went ahead on a partial view could
// reclaim what a concurrent create is about to record.
//
// # Cross-module protocols
//
// Resolve sees every module's snapshot. A snapshot that implements
// ActiveVMIDs() map[string]struct{} protects those VMs in every module; [VMIDs]
// and [Collect] gather them.
package gc
