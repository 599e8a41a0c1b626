package bridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/lock/flock"
	"github.com/tapbridge/tapbridge/rtnl"
)

// GCModule returns the garbage-collection module of the instance rooted at
// rootDir, for callers without a Bridge. It does no I/O until the cycle
// runs; then it uses the namespace and grace period New recorded in
// rootDir, or the caller's namespace and DefaultGCGrace if there is no
// record.
func GCModule(rootDir string) gc.Module[bridgeSnapshot] {
	c := (&config.Config{RootDir: rootDir}).WithDefaults()
	return newGCModule(c, nil, nil)
}

// GCModuleConfig is GCModule for conf.RootDir with conf's NetnsPath and
// GCGrace, when set (non-empty, non-zero), taking precedence over what New
// recorded. Other fields are ignored. Like GCModule it does no I/O until the
// cycle runs.
func GCModuleConfig(conf *config.Config) gc.Module[bridgeSnapshot] {
	if conf == nil {
		conf = &config.Config{}
	}
	c := (&config.Config{RootDir: conf.RootDir}).WithDefaults()
	return newGCModule(c, nil, &config.Config{NetnsPath: conf.NetnsPath, GCGrace: conf.GCGrace})
}

// RegisterGC registers the Bridge's GC module, with its own settings and
// its knowledge of the Configs in flight in this process, on orch.
func (b *Bridge) RegisterGC(orch *gc.Orchestrator) {
	gc.Register(orch, newGCModule(b.conf, b, nil))
}

// gcModule is the state a GC module keeps between the steps of a cycle.
type gcModule struct {
	conf     config.Config
	override config.Config // GCModuleConfig's non-zero NetnsPath and GCGrace win over the record
	b        *Bridge       // nil for GCModule
	ownership

	gcLock     *flock.Lock
	inflightEx *flock.Lock
	heldEx     bool           // inflightEx is held for this cycle
	cycle      *config.Config // the settings the held locks were chosen by
	lastScan   int            // TAPs the last scan found: the next one's size hint

	// Tests only (RegisterGC copies the Bridge's): see hooks_linux.go and
	// seam_linux.go.
	hook hookFunc
	wrap wrapFunc
}

func newGCModule(c config.Config, b *Bridge, override *config.Config) gc.Module[bridgeSnapshot] {
	locks := filepath.Join(c.RootDir, "locks")
	inst := owner.InstanceOf(c.RootDir)
	m := &gcModule{
		conf:       c,
		b:          b,
		ownership:  ownership{inst: inst, group: inst.Group()},
		gcLock:     flock.New(filepath.Join(locks, "gc.lock"), flock.Exclusive),
		inflightEx: flock.New(filepath.Join(locks, "inflight.lock"), flock.Exclusive),
	}
	if override != nil {
		m.override = *override
	}
	if b != nil {
		m.hook, m.wrap = b.hook, b.wrap
	}
	return gc.Module[bridgeSnapshot]{
		Name:    "bridge/" + m.inst.String(),
		Locker:  m,
		ReadDB:  m.read,
		Resolve: bridgeSnapshot.orphans,
		Collect: m.collect,
	}
}

// settings returns the instance's settings: the Bridge's, or those New
// recorded in RootDir, or the defaults if there is no record. A record that
// exists but cannot be read or parsed is an error: falling back to the
// defaults would scan the caller's namespace instead of the recorded one.
func (m *gcModule) settings() (config.Config, error) {
	if m.b != nil {
		return m.conf, nil
	}
	c, _, err := Recorded(m.conf.RootDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		def := m.conf
		c = &def
	case err != nil:
		return config.Config{}, fmt.Errorf("gc: %w", err)
	}
	if m.override.NetnsPath != "" {
		c.NetnsPath = m.override.NetnsPath
	}
	if m.override.GCGrace != 0 {
		c.GCGrace = m.override.GCGrace
	}
	return *c, nil
}

// Lock, TryLock and Unlock make the module its own lock.Locker: the
// instance's GC lock, plus, when the grace period is negative, the in-flight
// lock held exclusively, which proves that no Config of the instance runs in
// any process for the whole cycle.
//
// The settings are read once, under the GC lock, and kept for the cycle: if
// read again, a record rewritten in between could turn a cycle locked for a
// positive grace period into one that reclaims without grace and without
// the in-flight lock.
func (m *gcModule) Lock(ctx context.Context) error {
	if err := m.gcLock.Lock(ctx); err != nil {
		return err
	}
	c, err := m.settings()
	if err != nil {
		m.gcLock.Unlock(ctx)
		return err
	}
	m.cycle = &c
	if c.GCGrace >= 0 {
		return nil
	}
	if err := m.inflightEx.Lock(ctx); err != nil {
		m.cycle = nil
		m.gcLock.Unlock(ctx)
		return err
	}
	m.heldEx = true
	return nil
}

// TryLock is Lock without waiting: (false, nil) when either lock is busy.
func (m *gcModule) TryLock(ctx context.Context) (bool, error) {
	ok, err := m.gcLock.TryLock(ctx)
	if !ok || err != nil {
		return ok, err
	}
	c, err := m.settings()
	if err != nil {
		m.gcLock.Unlock(ctx)
		return false, err
	}
	m.cycle = &c
	if c.GCGrace >= 0 {
		return true, nil
	}
	ok, err = m.inflightEx.TryLock(ctx)
	if !ok || err != nil {
		m.cycle = nil
		m.gcLock.Unlock(ctx)
		return ok, err
	}
	m.heldEx = true
	return true, nil
}

// Unlock releases what Lock or TryLock took.
func (m *gcModule) Unlock(ctx context.Context) error {
	m.cycle = nil
	var err error
	if m.heldEx {
		m.heldEx = false
		err = m.inflightEx.Unlock(ctx)
	}
	return errors.Join(err, m.gcLock.Unlock(ctx))
}

// cycleSettings returns the settings the cycle's locks were taken with, or,
// when ReadDB or Collect is called without them, the current ones.
func (m *gcModule) cycleSettings() (config.Config, error) {
	if m.cycle != nil {
		return *m.cycle, nil
	}
	return m.settings()
}

// dial opens the socket one step of a cycle works on: in the Bridge's
// namespace, or in the one the settings name. Each step has its own: a
// scan of thousands of TAPs must not hold up the Bridge's Configs behind
// its socket's lock.
func (m *gcModule) dial(c *config.Config) (conn, error) {
	if m.b != nil {
		return dialConn(m.b.nsFD, m.wrap)
	}
	return dialPath(c.NetnsPath, m.wrap)
}

// read scans the namespace's TUN/TAP devices (one kernel-filtered dump)
// and keeps the instance's.
func (m *gcModule) read(ctx context.Context) (bridgeSnapshot, error) {
	c, err := m.cycleSettings()
	if err != nil {
		return bridgeSnapshot{}, err
	}
	conn, err := m.dial(&c)
	if err != nil {
		return bridgeSnapshot{}, err
	}
	defer conn.Close()
	s := bridgeSnapshot{
		candidates: make([]gc.Candidate, 0, m.lastScan),
		taps:       make([]scannedTAP, 0, m.lastScan),
	}
	if m.b != nil {
		m.b.vmMu.Lock()
		s.creating = make(map[string]struct{}, len(m.b.creating))
		for id := range m.b.creating {
			s.creating[id] = struct{}{}
		}
		m.b.vmMu.Unlock()
	}
	var tag owner.Tag
	err = conn.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun", Brief: true}, func(l *rtnl.Link) error {
		if !m.ours(l, &tag) {
			return nil
		}
		// The walk reuses l, but not the strings it decodes: the name,
		// the alias and the VM ID in it (a substring) stay valid.
		s.candidates = append(s.candidates, gc.Candidate{
			ID:      l.Name,
			Owner:   tag.VMID,
			Created: time.UnixMilli(tag.Created),
			InUse:   attached(l),
			Doomed:  l.Group == m.group,
		})
		s.taps = append(s.taps, scannedTAP{index: l.Index, alias: l.Alias})
		return nil
	}, func() {
		s.candidates, s.taps = s.candidates[:0], s.taps[:0]
	})
	if err != nil {
		return bridgeSnapshot{}, fmt.Errorf("scan TAPs: %w", err)
	}
	m.lastScan = len(s.candidates)
	s.policy = gc.Policy{Now: time.Now(), Grace: c.GCGrace}
	return s, nil
}

// collect re-reads every orphan by ifindex, keeps those that recheck
// clears (same tag, still not held open), and deletes them together.
func (m *gcModule) collect(ctx context.Context, ids []string, s bridgeSnapshot) error {
	if len(ids) == 0 {
		return nil
	}
	c, err := m.cycleSettings()
	if err != nil {
		return err
	}
	conn, err := m.dial(&c)
	if err != nil {
		return err
	}
	defer conn.Close()
	scanned := s.scanned(ids)
	var batch rtnl.Batch
	links := make([]rtnl.Link, len(ids))
	for i := range ids {
		batch.GetLinkByIndex(scanned[i].index, &links[i])
	}
	res, _ := conn.Exec(ctx, &batch) // per-request results below
	failed := gc.Failures{}
	var indexes []uint32
	for i, id := range ids {
		if res[i] != nil && !errors.Is(res[i], unix.ENODEV) {
			failed[id] = res[i]
			continue
		}
		del, why := recheck(id, scanned[i], &links[i], res[i] != nil)
		switch {
		case del:
			indexes = append(indexes, links[i].Index)
		case why != nil:
			failed[id] = why
		}
	}
	m.hook.at(hookGCRechecked)
	o := &ops{conn: conn, ownership: m.ownership, hook: m.hook}
	if err := o.deleteNow(ctx, indexes); err != nil {
		for i, id := range ids {
			if _, bad := failed[id]; !bad && res[i] == nil {
				failed[id] = err
			}
		}
	}
	if len(failed) > 0 {
		return failed
	}
	return nil
}
