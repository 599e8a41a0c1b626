package gc_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/lock"
)

// events records what the modules and their locks saw, in order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	e.log = append(e.log, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// count returns how many recorded events start with prefix.
func (e *events) count(prefix string) int {
	n := 0
	for _, s := range e.get() {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// fakeLock is a lock.Locker that is busy or failing on demand and records
// its use.
type fakeLock struct {
	name string
	ev   *events

	busy      bool  // TryLock reports (false, nil)
	tryErr    error // TryLock reports (false, tryErr)
	unlockErr error // Unlock returns it (and still releases)

	mu   sync.Mutex
	held bool
}

var _ lock.Locker = (*fakeLock)(nil)

func (l *fakeLock) Lock(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev.add("lock %s", l.name)
	if l.held {
		return errors.New("fakeLock: Lock while held")
	}
	l.held = true
	return nil
}

func (l *fakeLock) TryLock(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev.add("trylock %s", l.name)
	switch {
	case l.tryErr != nil:
		return false, l.tryErr
	case l.busy || l.held:
		return false, nil
	}
	l.held = true
	return true, nil
}

func (l *fakeLock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev.add("unlock %s", l.name)
	if !l.held {
		return errors.New("fakeLock: Unlock while not held")
	}
	l.held = false
	return l.unlockErr
}

func (l *fakeLock) isHeld() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// snap is a fake snapshot: the IDs a module scanned.
type snap struct {
	ids []string
}

// scanSnap is a snapshot that reports what it scanned.
type scanSnap struct{ snap }

func (s scanSnap) ScannedIDs() []string { return s.ids }

// liveSnap protects VMs.
type liveSnap struct{ live map[string]struct{} }

func (s liveSnap) ActiveVMIDs() map[string]struct{} { return s.live }

// fakeModule builds a module whose every step is recorded in ev. Its
// ReadDB returns s (or readErr), Resolve returns orphans, Collect returns
// collectErr. While any step runs, every lock in mustHold must be held.
type fakeModule struct {
	name       string
	ev         *events
	lk         *fakeLock
	mustHold   *[]*fakeLock
	s          scanSnap
	readErr    error
	orphans    []string
	collectErr error
	t          *testing.T
}

func (f *fakeModule) checkHeld(step string) {
	if f.mustHold == nil {
		return
	}
	for _, l := range *f.mustHold {
		if !l.isHeld() {
			f.t.Errorf("module %s %s: lock %s not held, want every lock held for the whole cycle", f.name, step, l.name)
		}
	}
}

func (f *fakeModule) module() gc.Module[scanSnap] {
	m := gc.Module[scanSnap]{
		Name: f.name,
		ReadDB: func(ctx context.Context) (scanSnap, error) {
			f.ev.add("read %s", f.name)
			f.checkHeld("ReadDB")
			return f.s, f.readErr
		},
		Resolve: func(s scanSnap, others map[string]any) []string {
			f.ev.add("resolve %s", f.name)
			f.checkHeld("Resolve")
			return f.orphans
		},
		Collect: func(ctx context.Context, ids []string, s scanSnap) error {
			f.ev.add("collect %s %v", f.name, ids)
			f.checkHeld("Collect")
			return f.collectErr
		},
	}
	if f.lk != nil {
		m.Locker = f.lk
	}
	return m
}

func TestRunFailClosed(t *testing.T) {
	tryErr := errors.New("lock file unreadable")
	tests := []struct {
		name    string
		busy    int   // index of the busy lock, or -1
		tryErr  error // set on lock busy instead of busy
		wantErr error
	}{
		{"first busy", 0, nil, gc.ErrBusy},
		{"middle busy", 1, nil, gc.ErrBusy},
		{"last busy", 2, nil, gc.ErrBusy},
		{"middle TryLock error", 1, tryErr, tryErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			o := gc.New()
			var locks []*fakeLock
			for i, name := range []string{"a", "b", "c"} {
				l := &fakeLock{name: name, ev: ev}
				if i == tt.busy {
					l.busy = tt.tryErr == nil
					l.tryErr = tt.tryErr
				}
				locks = append(locks, l)
				fm := &fakeModule{name: name, ev: ev, lk: l, s: scanSnap{snap{[]string{"x"}}}, orphans: []string{"x"}, t: t}
				gc.Register(o, fm.module())
			}
			for _, run := range []struct {
				name string
				fn   func(context.Context) (*gc.Report, error)
			}{
				{"RunReport", o.RunReport},
				{"Plan", o.Plan},
				{"Run", func(ctx context.Context) (*gc.Report, error) { return nil, o.Run(ctx) }},
			} {
				rep, err := run.fn(t.Context())
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("%s() error = %v, want one wrapping %v", run.name, err, tt.wantErr)
				}
				if tt.tryErr != nil && errors.Is(err, gc.ErrBusy) {
					t.Errorf("%s() error = %v, want no ErrBusy for a TryLock failure", run.name, err)
				}
				if rep != nil {
					t.Errorf("%s() report = %+v, want nil for an abandoned cycle", run.name, rep)
				}
				for _, p := range []string{"read", "resolve", "collect"} {
					if n := ev.count(p + " "); n != 0 {
						t.Errorf("%s() with lock %d busy: %d %s calls, want none (events %v)", run.name, tt.busy, n, p, ev.get())
					}
				}
				for _, l := range locks {
					if l.isHeld() {
						t.Errorf("%s() returned with lock %s still held", run.name, l.name)
					}
				}
				// Every lock taken was released, and nothing after the
				// busy one was tried.
				for i, l := range locks {
					took := ev.count("trylock "+l.name) - boolInt(i == tt.busy)
					if i > tt.busy && ev.count("trylock "+l.name) != 0 {
						t.Errorf("%s(): lock %s tried after busy lock %d", run.name, l.name, tt.busy)
					}
					if i < tt.busy && ev.count("unlock "+l.name) != took {
						t.Errorf("%s(): lock %s taken %d times, released %d times", run.name, l.name, took, ev.count("unlock "+l.name))
					}
				}
				ev.mu.Lock()
				ev.log = nil
				ev.mu.Unlock()
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRunLocksHeldForWholeCycle(t *testing.T) {
	ev := &events{}
	var locks []*fakeLock
	o := gc.New()
	for _, name := range []string{"a", "b", "c"} {
		l := &fakeLock{name: name, ev: ev}
		locks = append(locks, l)
		fm := &fakeModule{name: name, ev: ev, lk: l, mustHold: &locks, s: scanSnap{snap{[]string{"x", "y"}}}, orphans: []string{"y"}, t: t}
		gc.Register(o, fm.module())
	}
	// A module without a Locker takes part without a lock.
	nolock := &fakeModule{name: "nolock", ev: ev, mustHold: &locks, orphans: []string{"z"}, t: t}
	gc.Register(o, nolock.module())

	if err := o.Run(t.Context()); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	want := []string{
		"trylock a", "trylock b", "trylock c",
		"read a", "read b", "read c", "read nolock",
		"resolve a", "resolve b", "resolve c", "resolve nolock",
		"collect a [y]", "collect b [y]", "collect c [y]", "collect nolock [z]",
		"unlock c", "unlock b", "unlock a",
	}
	if got := ev.get(); !slices.Equal(got, want) {
		t.Errorf("Run() events =\n%q\nwant\n%q", got, want)
	}
}

func TestRunReadDBErrorAbortsBeforeCollect(t *testing.T) {
	readErr := errors.New("database unreachable")
	ev := &events{}
	o := gc.New()
	var locks []*fakeLock
	for _, name := range []string{"a", "b", "c"} {
		l := &fakeLock{name: name, ev: ev}
		locks = append(locks, l)
		fm := &fakeModule{name: name, ev: ev, lk: l, orphans: []string{"x"}, t: t}
		if name == "b" {
			fm.readErr = readErr
		}
		gc.Register(o, fm.module())
	}
	rep, err := o.RunReport(t.Context())
	if !errors.Is(err, readErr) {
		t.Errorf("RunReport() error = %v, want one wrapping %v", err, readErr)
	}
	if err != nil && !strings.Contains(err.Error(), "b") {
		t.Errorf("RunReport() error = %q, want it to name module b", err)
	}
	if rep != nil {
		t.Errorf("RunReport() report = %+v, want nil", rep)
	}
	for _, p := range []string{"resolve ", "collect "} {
		if n := ev.count(p); n != 0 {
			t.Errorf("RunReport() with a failing ReadDB: %d %scalls, want none (events %v)", n, p, ev.get())
		}
	}
	if n := ev.count("read c"); n != 0 {
		t.Errorf("RunReport(): module c read after module b failed")
	}
	for _, l := range locks {
		if l.isHeld() {
			t.Errorf("RunReport() returned with lock %s held", l.name)
		}
	}
}

func TestRunJoinsErrors(t *testing.T) {
	errA := errors.New("collect a broke")
	errB := errors.New("collect b broke")
	errUnlock := errors.New("unlock c broke")
	ev := &events{}
	o := gc.New()
	for _, fm := range []*fakeModule{
		{name: "a", collectErr: errA},
		{name: "ok"},
		{name: "b", collectErr: fmt.Errorf("wrapped: %w", errB)},
		{name: "c", lk: &fakeLock{name: "c", ev: ev, unlockErr: errUnlock}},
	} {
		fm.ev, fm.t = ev, t
		gc.Register(o, fm.module())
	}
	err := o.Run(t.Context())
	for _, want := range []error{errA, errB, errUnlock} {
		if !errors.Is(err, want) {
			t.Errorf("Run() = %v, want an error wrapping %v", err, want)
		}
	}
	// Every Collect ran even though the first one failed.
	for _, name := range []string{"a", "ok", "b", "c"} {
		if ev.count("collect "+name+" ") != 1 {
			t.Errorf("Run(): collect %s ran %d times, want 1 (events %v)", name, ev.count("collect "+name+" "), ev.get())
		}
	}
}

func TestRunReport(t *testing.T) {
	errGone := errors.New("device busy")
	errAll := errors.New("socket closed")
	tests := []struct {
		name        string
		s           any // snapshot: scanSnap, or snap (not a Scanner)
		orphans     []string
		collectErr  error
		wantScanned []string
		wantRecl    []string
		wantFailed  map[string]error
		wantErr     error
	}{
		{
			name: "all reclaimed", s: scanSnap{snap{[]string{"t1", "t2", "t3"}}}, orphans: []string{"t1", "t3"},
			wantScanned: []string{"t1", "t2", "t3"}, wantRecl: []string{"t1", "t3"},
		},
		{
			name: "nothing to do", s: scanSnap{snap{[]string{"t1"}}},
			wantScanned: []string{"t1"},
		},
		{
			name: "not a scanner", s: snap{[]string{"t1"}}, orphans: []string{"t1"},
			wantRecl: []string{"t1"},
		},
		{
			name: "per-ID failures", s: scanSnap{snap{[]string{"t1", "t2", "t3"}}}, orphans: []string{"t1", "t2", "t3"},
			collectErr:  gc.Failures{"t2": errGone},
			wantScanned: []string{"t1", "t2", "t3"}, wantRecl: []string{"t1", "t3"},
			wantFailed: map[string]error{"t2": errGone}, wantErr: errGone,
		},
		{
			name: "wrapped per-ID failures", s: scanSnap{snap{[]string{"t1", "t2"}}}, orphans: []string{"t1", "t2"},
			collectErr:  fmt.Errorf("partial: %w", gc.Failures{"t1": errGone}),
			wantScanned: []string{"t1", "t2"}, wantRecl: []string{"t2"},
			wantFailed: map[string]error{"t1": errGone}, wantErr: errGone,
		},
		{
			name: "whole Collect failed", s: scanSnap{snap{[]string{"t1", "t2"}}}, orphans: []string{"t1", "t2"},
			collectErr:  errAll,
			wantScanned: []string{"t1", "t2"},
			wantFailed:  map[string]error{"t1": errAll, "t2": errAll}, wantErr: errAll,
		},
		{
			name: "empty Failures is success", s: scanSnap{snap{[]string{"t1"}}}, orphans: []string{"t1"},
			collectErr:  gc.Failures{},
			wantScanned: []string{"t1"}, wantRecl: []string{"t1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := gc.New()
			var collected []string
			switch s := tt.s.(type) {
			case scanSnap:
				gc.Register(o, gc.Module[scanSnap]{
					Name:    "m",
					ReadDB:  func(context.Context) (scanSnap, error) { return s, nil },
					Resolve: func(scanSnap, map[string]any) []string { return tt.orphans },
					Collect: func(_ context.Context, ids []string, _ scanSnap) error {
						collected = ids
						return tt.collectErr
					},
				})
			case snap:
				gc.Register(o, gc.Module[snap]{
					Name:    "m",
					ReadDB:  func(context.Context) (snap, error) { return s, nil },
					Resolve: func(snap, map[string]any) []string { return tt.orphans },
					Collect: func(_ context.Context, ids []string, _ snap) error {
						collected = ids
						return tt.collectErr
					},
				})
			}
			rep, err := o.RunReport(t.Context())
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("RunReport() error = %v, want %v", err, tt.wantErr)
			}
			if rep == nil || rep.Modules["m"] == nil {
				t.Fatalf("RunReport() report = %+v, want one for module m", rep)
			}
			mr := rep.Modules["m"]
			if !slices.Equal(mr.Scanned, tt.wantScanned) {
				t.Errorf("RunReport() Scanned = %v, want %v", mr.Scanned, tt.wantScanned)
			}
			if !slices.Equal(mr.Orphans, tt.orphans) {
				t.Errorf("RunReport() Orphans = %v, want %v", mr.Orphans, tt.orphans)
			}
			if !slices.Equal(collected, tt.orphans) {
				t.Errorf("Collect got ids %v, want the orphans %v", collected, tt.orphans)
			}
			if !slices.Equal(mr.Reclaimed, tt.wantRecl) {
				t.Errorf("RunReport() Reclaimed = %v, want %v", mr.Reclaimed, tt.wantRecl)
			}
			if !maps.EqualFunc(mr.Failed, tt.wantFailed, func(a, b error) bool { return errors.Is(a, b) }) {
				t.Errorf("RunReport() Failed = %v, want %v", mr.Failed, tt.wantFailed)
			}
		})
	}
}

func TestPlanDoesNotCollect(t *testing.T) {
	ev := &events{}
	l := &fakeLock{name: "a", ev: ev}
	locks := []*fakeLock{l}
	fm := &fakeModule{name: "a", ev: ev, lk: l, mustHold: &locks, s: scanSnap{snap{[]string{"t1", "t2"}}}, orphans: []string{"t2"}, t: t}
	o := gc.New()
	gc.Register(o, fm.module())
	rep, err := o.Plan(t.Context())
	if err != nil {
		t.Fatalf("Plan() = %v, want nil", err)
	}
	if n := ev.count("collect "); n != 0 {
		t.Errorf("Plan() ran Collect %d times, want 0", n)
	}
	mr := rep.Modules["a"]
	if mr == nil || !slices.Equal(mr.Orphans, []string{"t2"}) || !slices.Equal(mr.Scanned, []string{"t1", "t2"}) {
		t.Fatalf("Plan() report for a = %+v, want Scanned [t1 t2], Orphans [t2]", mr)
	}
	if mr.Reclaimed != nil || mr.Failed != nil {
		t.Errorf("Plan() Reclaimed = %v, Failed = %v, want both nil", mr.Reclaimed, mr.Failed)
	}
	if l.isHeld() {
		t.Errorf("Plan() returned with the lock held")
	}
	want := []string{"trylock a", "read a", "resolve a", "unlock a"}
	if got := ev.get(); !slices.Equal(got, want) {
		t.Errorf("Plan() events = %q, want %q", got, want)
	}
}

func TestResolveSeesEverySnapshot(t *testing.T) {
	o := gc.New()
	vms := liveSnap{live: map[string]struct{}{"vm-1": {}}}
	gc.Register(o, gc.Module[liveSnap]{
		Name:   "vms",
		ReadDB: func(context.Context) (liveSnap, error) { return vms, nil },
	})
	var got map[string]any
	gc.Register(o, gc.Module[scanSnap]{
		Name:   "taps",
		ReadDB: func(context.Context) (scanSnap, error) { return scanSnap{snap{[]string{"t"}}}, nil },
		Resolve: func(s scanSnap, others map[string]any) []string {
			got = others
			return nil
		},
	})
	if err := o.Run(t.Context()); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if len(got) != 2 || !reflect.DeepEqual(got["vms"], vms) || !reflect.DeepEqual(got["taps"], scanSnap{snap{[]string{"t"}}}) {
		t.Errorf("Resolve saw others = %+v, want both snapshots by module name", got)
	}
	if live := gc.Collect(got, gc.VMIDs); !maps.Equal(live, vms.live) {
		t.Errorf("gc.Collect(others, gc.VMIDs) = %v, want %v", live, vms.live)
	}
}

func TestRegisterPanics(t *testing.T) {
	read := func(context.Context) (snap, error) { return snap{}, nil }
	tests := []struct {
		name string
		mods []gc.Module[snap]
	}{
		{"duplicate name", []gc.Module[snap]{{Name: "m", ReadDB: read}, {Name: "m", ReadDB: read}}},
		{"empty name", []gc.Module[snap]{{ReadDB: read}}},
		{"nil ReadDB", []gc.Module[snap]{{Name: "m"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := gc.New()
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", tt.mods[len(tt.mods)-1].Name)
				}
			}()
			for _, m := range tt.mods {
				gc.Register(o, m)
			}
		})
	}
	// Different snapshot types with the same name are still duplicates.
	o := gc.New()
	gc.Register(o, gc.Module[snap]{Name: "m", ReadDB: read})
	defer func() {
		if recover() == nil {
			t.Errorf("Register of a second module named m with another snapshot type did not panic")
		}
	}()
	gc.Register(o, gc.Module[liveSnap]{Name: "m", ReadDB: func(context.Context) (liveSnap, error) { return liveSnap{}, nil }})
}

func TestConcurrentRunsSerializeOnLocks(t *testing.T) {
	// Two goroutines run cycles on one Orchestrator; the module's lock
	// admits one cycle at a time, the other fails closed.
	ev := &events{}
	l := &fakeLock{name: "a", ev: ev}
	locks := []*fakeLock{l}
	fm := &fakeModule{name: "a", ev: ev, lk: l, mustHold: &locks, orphans: []string{"x"}, t: t}
	o := gc.New()
	gc.Register(o, fm.module())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if err := o.Run(t.Context()); err != nil && !errors.Is(err, gc.ErrBusy) {
					t.Errorf("Run() = %v, want nil or ErrBusy", err)
				}
			}
		})
	}
	wg.Wait()
	if l.isHeld() {
		t.Errorf("lock held after every Run returned")
	}
}

func TestCollectAndVMIDs(t *testing.T) {
	others := map[string]any{
		"a":    liveSnap{live: map[string]struct{}{"vm-1": {}, "vm-2": {}}},
		"b":    liveSnap{live: map[string]struct{}{"vm-2": {}, "vm-3": {}}},
		"nil":  liveSnap{},
		"taps": scanSnap{snap{[]string{"t"}}},
		"int":  42,
		"none": nil,
	}
	got := gc.Collect(others, gc.VMIDs)
	want := map[string]struct{}{"vm-1": {}, "vm-2": {}, "vm-3": {}}
	if !maps.Equal(got, want) {
		t.Errorf("gc.Collect(others, gc.VMIDs) = %v, want %v", got, want)
	}
	if got := gc.Collect(nil, gc.VMIDs); got == nil || len(got) != 0 {
		t.Errorf("gc.Collect(nil, gc.VMIDs) = %#v, want an empty non-nil map", got)
	}
	// Collect does not alias the snapshots' maps.
	got["vm-9"] = struct{}{}
	if _, ok := others["a"].(liveSnap).live["vm-9"]; ok {
		t.Errorf("gc.Collect returned a map aliasing a snapshot's")
	}

	for _, tt := range []struct {
		snap any
		want map[string]struct{}
	}{
		{liveSnap{live: map[string]struct{}{"vm-1": {}}}, map[string]struct{}{"vm-1": {}}},
		{&liveSnap{live: map[string]struct{}{"vm-1": {}}}, map[string]struct{}{"vm-1": {}}},
		{scanSnap{}, nil},
		{nil, nil},
		{"vm-1", nil},
	} {
		if got := gc.VMIDs(tt.snap); !maps.Equal(got, tt.want) || (tt.want == nil) != (got == nil) {
			t.Errorf("gc.VMIDs(%#v) = %v, want %v", tt.snap, got, tt.want)
		}
	}
}

func TestFailures(t *testing.T) {
	errA, errB := errors.New("a broke"), errors.New("b broke")
	f := gc.Failures{"t2": errB, "t1": errA}
	if got, want := f.Error(), "t1: a broke\nt2: b broke"; got != want {
		t.Errorf("Failures.Error() = %q, want %q", got, want)
	}
	var err error = fmt.Errorf("collect: %w", f)
	for _, want := range []error{errA, errB} {
		if !errors.Is(err, want) {
			t.Errorf("errors.Is(%v, %v) = false, want true", err, want)
		}
	}
	var got gc.Failures
	if !errors.As(err, &got) || len(got) != 2 {
		t.Errorf("errors.As(%v, *Failures) = %v, want the two failures", err, got)
	}
	// An empty Failures must not panic when printed.
	if s := (gc.Failures{}).Error(); s == "" {
		t.Errorf("Failures{}.Error() = %q, want a non-empty message", s)
	}
}

func TestLiveModule(t *testing.T) {
	lk := &fakeLock{name: "vms"}
	calls := 0
	readErr := errors.New("db down")
	var fail bool
	m := gc.LiveModule("vms", lk, func(context.Context) (map[string]struct{}, error) {
		calls++
		if fail {
			return nil, readErr
		}
		return map[string]struct{}{"a": {}}, nil
	})
	if m.Name != "vms" || m.Locker != lock.Locker(lk) || m.Resolve != nil || m.Collect != nil {
		t.Fatalf("LiveModule() = %+v, want a named, locked module that reclaims nothing", m)
	}
	s, err := m.ReadDB(t.Context())
	if err != nil || calls != 1 || !maps.Equal(s.ActiveVMIDs(), map[string]struct{}{"a": {}}) {
		t.Fatalf("ReadDB() = %v, %v after %d calls; want {a}", s, err, calls)
	}
	if got := gc.VMIDs(s); !maps.Equal(got, map[string]struct{}{"a": {}}) {
		t.Errorf("VMIDs(Live{a}) = %v, want {a}", got)
	}
	fail = true
	if _, err := m.ReadDB(t.Context()); !errors.Is(err, readErr) {
		t.Errorf("ReadDB() with a failing read = %v, want %v", err, readErr)
	}
	// Without a lock, the module has none (the orchestrator then takes
	// nothing for it).
	if m := gc.LiveModule("x", nil, nil); m.Locker != nil {
		t.Errorf("LiveModule(nil lock).Locker = %v, want nil", m.Locker)
	}
	// A nil or empty Live is a live set with no VM, never "no live set".
	var l gc.Live
	var ls gc.LiveSet = l
	if got := ls.ActiveVMIDs(); got == nil || len(got) != 0 {
		t.Errorf("Live(nil).ActiveVMIDs() = %#v, want an empty, non-nil map", got)
	}
}

func TestReasonCodes(t *testing.T) {
	// The codes are part of the CLI's JSON output: they must not change.
	for code, want := range map[gc.ReasonCode]string{
		gc.ReasonInUse: "in-use", gc.ReasonNoOwner: "no-owner", gc.ReasonLive: "live", gc.ReasonYoung: "young",
		gc.ReasonDoomed: "doomed", gc.ReasonNotLive: "not-live", gc.ReasonCreating: "creating", gc.ReasonNoLiveSet: "no-live-set",
	} {
		if string(code) != want {
			t.Errorf("reason code %q, want %q", code, want)
		}
	}
}
