package gc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/tapbridge/tapbridge/lock"
)

// ErrBusy is wrapped by Run's error when a module's lock was busy and the
// cycle was abandoned before anything was read or reclaimed.
var ErrBusy = errors.New("gc: lock busy, cycle skipped")

// Module is a typed GC participant; S is the snapshot type ReadDB returns.
type Module[S any] struct {
	// Name identifies the module in reports and in others (see Resolve).
	Name string

	// Locker, if not nil, is held for the whole cycle.
	Locker lock.Locker

	// ReadDB takes the module's snapshot.
	ReadDB func(ctx context.Context) (S, error)

	// Resolve returns the IDs to reclaim. others holds every module's
	// snapshot by name, this one's included. It must be pure.
	Resolve func(snap S, others map[string]any) []string

	// Collect reclaims ids. It must re-check each against the system
	// before acting. To report per-ID failures it returns an error that
	// is, or wraps, a Failures.
	Collect func(ctx context.Context, ids []string, snap S) error
}

// Failures maps IDs that Collect could not reclaim to the reason.
type Failures map[string]error

// Error lists the failed IDs, one per line, sorted.
func (f Failures) Error() string {
	if len(f) == 0 {
		// errors.Join of nothing is nil: do not call its Error.
		return "gc: no failures"
	}
	errs := make([]error, 0, len(f))
	for _, id := range slices.Sorted(maps.Keys(f)) {
		errs = append(errs, fmt.Errorf("%s: %w", id, f[id]))
	}
	return errors.Join(errs...).Error()
}

// Unwrap returns the per-ID errors so that errors.Is sees them.
func (f Failures) Unwrap() []error {
	return slices.Collect(maps.Values(f))
}

// Scanner is implemented by snapshots that can say what they scanned; the
// report lists it.
type Scanner interface {
	ScannedIDs() []string
}

// Explainer is implemented by snapshots that can give, for each scanned ID,
// the reason Resolve reclaims or keeps it; reports and dry runs show it.
type Explainer interface {
	Explain(others map[string]any) map[string]Reason
}

// Report is what one cycle did, per module.
type Report struct {
	Modules map[string]*ModuleReport
}

// ModuleReport is what one cycle did in one module.
type ModuleReport struct {
	Scanned   []string          // what ReadDB saw, if the snapshot is a Scanner
	Reasons   map[string]Reason // Plan only: why each scanned ID is reclaimed or kept, if the snapshot is an Explainer
	Orphans   []string          // what Resolve chose
	Reclaimed []string          // Orphans that Collect did not report as failed
	Failed    map[string]error  // Orphans that Collect could not reclaim
}

type runner interface {
	name() string
	locker() lock.Locker
	read(ctx context.Context) (any, error)
	resolve(snap any, others map[string]any) []string
	collect(ctx context.Context, ids []string, snap any) error
}

func (m Module[S]) name() string        { return m.Name }
func (m Module[S]) locker() lock.Locker { return m.Locker }

func (m Module[S]) read(ctx context.Context) (any, error) { return m.ReadDB(ctx) }

func (m Module[S]) resolve(snap any, others map[string]any) []string {
	if m.Resolve == nil {
		return nil
	}
	return m.Resolve(snap.(S), others)
}

func (m Module[S]) collect(ctx context.Context, ids []string, snap any) error {
	if m.Collect == nil {
		return nil
	}
	return m.Collect(ctx, ids, snap.(S))
}

// Orchestrator runs GC cycles over its registered modules. Register modules
// before the first Run; Run itself may be called from several goroutines,
// and the modules' locks serialize the cycles.
type Orchestrator struct {
	modules []runner
}

// New returns an Orchestrator with no modules.
func New() *Orchestrator { return &Orchestrator{} }

// Register adds m to o. It is a function, not a method, because Go methods
// cannot take type parameters. It panics if m has no Name or ReadDB, or if
// o already has a module of that name.
func Register[S any](o *Orchestrator, m Module[S]) {
	if m.Name == "" || m.ReadDB == nil {
		panic("gc: Register: module needs a Name and a ReadDB")
	}
	for _, r := range o.modules {
		if r.name() == m.Name {
			panic("gc: Register: duplicate module " + m.Name)
		}
	}
	o.modules = append(o.modules, m)
}

// Run executes one cycle and returns the joined errors of its modules. A
// busy lock abandons the cycle with an error wrapping ErrBusy; a ReadDB
// error abandons it before anything is reclaimed.
func (o *Orchestrator) Run(ctx context.Context) error {
	_, err := o.RunReport(ctx)
	return err
}

// RunReport is Run that also returns what the cycle did. The report is nil
// when the cycle was abandoned.
func (o *Orchestrator) RunReport(ctx context.Context) (*Report, error) {
	return o.cycle(ctx, true)
}

// Plan runs a cycle without Collect: under the same locks it reports what
// Run would reclaim now.
func (o *Orchestrator) Plan(ctx context.Context) (*Report, error) {
	return o.cycle(ctx, false)
}

func (o *Orchestrator) cycle(ctx context.Context, reclaim bool) (_ *Report, err error) {
	held := make([]lock.Locker, 0, len(o.modules))
	defer func() {
		for i := len(held) - 1; i >= 0; i-- {
			if uerr := held[i].Unlock(context.WithoutCancel(ctx)); uerr != nil {
				err = errors.Join(err, fmt.Errorf("gc: unlock: %w", uerr))
			}
		}
	}()
	for _, m := range o.modules {
		l := m.locker()
		if l == nil {
			continue
		}
		ok, err := l.TryLock(ctx)
		if err != nil {
			return nil, fmt.Errorf("gc: lock %s: %w", m.name(), err)
		}
		if !ok {
			return nil, fmt.Errorf("gc: module %s: %w", m.name(), ErrBusy)
		}
		held = append(held, l)
	}

	snaps := make(map[string]any, len(o.modules))
	for _, m := range o.modules {
		s, err := m.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("gc: snapshot %s: %w", m.name(), err)
		}
		snaps[m.name()] = s
	}

	rep := &Report{Modules: make(map[string]*ModuleReport, len(o.modules))}
	for _, m := range o.modules {
		mr := &ModuleReport{Orphans: m.resolve(snaps[m.name()], snaps)}
		if sc, ok := snaps[m.name()].(Scanner); ok {
			mr.Scanned = sc.ScannedIDs()
		}
		if ex, ok := snaps[m.name()].(Explainer); ok && !reclaim {
			// Dry runs only: explaining thousands of IDs costs more than
			// deciding about them.
			mr.Reasons = ex.Explain(snaps)
		}
		rep.Modules[m.name()] = mr
	}
	if !reclaim {
		return rep, nil
	}

	var errs []error
	for _, m := range o.modules {
		mr := rep.Modules[m.name()]
		cerr := m.collect(ctx, mr.Orphans, snaps[m.name()])
		if f, ok := cerr.(Failures); ok && len(f) == 0 {
			cerr = nil // a Collect that returns its empty Failures map failed nothing
		}
		var failed Failures
		if errors.As(cerr, &failed) {
			mr.Failed = failed
		}
		for _, id := range mr.Orphans {
			if _, bad := mr.Failed[id]; !bad && (cerr == nil || mr.Failed != nil) {
				mr.Reclaimed = append(mr.Reclaimed, id)
			}
		}
		if cerr != nil {
			if mr.Failed == nil {
				// Collect failed as a whole: nothing is known reclaimed.
				mr.Failed = make(map[string]error, len(mr.Orphans))
				for _, id := range mr.Orphans {
					mr.Failed[id] = cerr
				}
			}
			errs = append(errs, fmt.Errorf("gc %s: %w", m.name(), cerr))
		}
	}
	return rep, errors.Join(errs...)
}

// LiveSet is implemented by snapshots that report the VMs that are alive:
// the cross-module protocol by which a control plane's VM database protects
// its VMs' resources from every other module. A snapshot that implements
// it and returns an empty or nil map is a live set with no VM in it; a
// cycle in which no snapshot implements it has no live set at all.
type LiveSet interface {
	ActiveVMIDs() map[string]struct{}
}

// Collect unions the ID sets accessor extracts from every snapshot in
// others; snapshots for which accessor returns nil add nothing.
func Collect(others map[string]any, accessor func(any) map[string]struct{}) map[string]struct{} {
	out := make(map[string]struct{})
	for _, s := range others {
		maps.Copy(out, accessor(s))
	}
	return out
}

// VMIDs returns the active VM IDs of a snapshot that implements LiveSet,
// and nil for any other.
func VMIDs(snap any) map[string]struct{} {
	if a, ok := snap.(LiveSet); ok {
		return a.ActiveVMIDs()
	}
	return nil
}

// Live is the snapshot of a LiveModule: the set of live VM IDs.
type Live map[string]struct{}

// ActiveVMIDs returns l itself, never nil: a Live snapshot is always a live
// set, even when it is empty.
func (l Live) ActiveVMIDs() map[string]struct{} {
	if l == nil {
		return map[string]struct{}{}
	}
	return l
}

// LiveModule returns a module that contributes the live set read returns
// (its snapshot implements LiveSet) and reclaims nothing. locker, if not
// nil, is held for the whole cycle, as a control plane's VM database lock
// should be: a VM recorded as live while the cycle runs is then never
// missed. read must not modify the map it returned afterwards.
func LiveModule(name string, locker lock.Locker, read func(ctx context.Context) (map[string]struct{}, error)) Module[Live] {
	return Module[Live]{
		Name:   name,
		Locker: locker,
		ReadDB: func(ctx context.Context) (Live, error) {
			ids, err := read(ctx)
			return Live(ids), err
		},
	}
}
