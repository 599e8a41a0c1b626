package bridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/lock/flock"
	"github.com/tapbridge/tapbridge/rtnl"
)

// bridgeSnapshot is one GC scan of an instance's TAPs.
type bridgeSnapshot struct {
	candidates []gc.Candidate
	taps       []scannedTAP // taps[i] is candidates[i]
	policy     gc.Policy
	creating   map[string]struct{} // VMs whose Config runs in this process
}

type scannedTAP struct {
	index uint32
	alias string // the exact tag, to recognise the same TAP when reclaiming
}

// ScannedIDs lists the names of the instance's TAPs the scan saw.
func (s bridgeSnapshot) ScannedIDs() []string {
	ids := make([]string, len(s.candidates))
	for i, c := range s.candidates {
		ids[i] = c.ID
	}
	return ids
}

// Explain gives, for each scanned TAP, why a cycle with these snapshots
// reclaims or keeps it.
func (s bridgeSnapshot) Explain(others map[string]any) map[string]gc.Reason {
	live, haveLive := s.live(others)
	out := make(map[string]gc.Reason, len(s.candidates))
	for _, c := range s.candidates {
		r := gc.Explain(c, live, s.policy)
		if _, creating := s.creating[c.Owner]; creating && r.Code == "live" {
			r.Code, r.Detail = "creating", "its VM's Config is in flight in this process"
		}
		if !haveLive && r.Reclaim && !c.Doomed {
			r.Reclaim, r.Code, r.Detail = false, "no-live-set", "no module reports live VMs: only doomed TAPs are reclaimed"
		}
		out[c.ID] = r
	}
	return out
}

// live returns the VMs that protect their TAPs: those some snapshot lists
// as active, and those whose Config runs in this process. haveLive reports
// whether any snapshot implements ActiveVMIDs at all; a snapshot that does
// and returns an empty or nil map is a live set with no VM in it.
func (s bridgeSnapshot) live(others map[string]any) (live map[string]struct{}, haveLive bool) {
	var sets []map[string]struct{}
	for _, o := range others {
		if a, ok := o.(interface{ ActiveVMIDs() map[string]struct{} }); ok {
			haveLive = true
			sets = append(sets, a.ActiveVMIDs())
		}
	}
	if len(sets) == 1 && len(s.creating) == 0 {
		// The usual case: one live set, used as is (Diff only reads it)
		// rather than copied, since it may hold thousands of VMs.
		return sets[0], haveLive
	}
	live = gc.Collect(others, gc.VMIDs)
	maps.Copy(live, s.creating)
	return live, haveLive
}

// gcModule is the state a GC module keeps between the steps of a cycle.
type gcModule struct {
	conf     config.Config
	override config.Config // GCModuleConfig's non-zero NetnsPath and GCGrace win over the record
	b        *Bridge       // nil for GCModule
	inst     owner.Instance

	gcLock     *flock.Lock
	inflightEx *flock.Lock
	heldEx     bool           // inflightEx is held for this cycle
	cycle      *config.Config // the settings the held locks were chosen by
	lastScan   int            // TAPs the last scan found: the next one's size hint

	hook hookFunc // tests only: see hooks_linux.go; RegisterGC copies the Bridge's
}

func newGCModule(c config.Config, b *Bridge) gc.Module[bridgeSnapshot] {
	locks := filepath.Join(c.RootDir, "locks")
	m := &gcModule{
		conf:       c,
		b:          b,
		inst:       owner.InstanceOf(c.RootDir),
		gcLock:     flock.New(filepath.Join(locks, "gc.lock"), flock.Exclusive),
		inflightEx: flock.New(filepath.Join(locks, "inflight.lock"), flock.Exclusive),
	}
	if b != nil {
		m.hook = b.hook
	}
	return gc.Module[bridgeSnapshot]{
		Name:    "bridge/" + m.inst.String(),
		Locker:  m,
		ReadDB:  m.read,
		Resolve: m.resolve,
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

// conn returns the Bridge's connection, or dials one in the instance's
// namespace; done releases what conn opened.
func (m *gcModule) conn(c *config.Config) (*rtnl.Conn, error) {
	if m.b != nil {
		// A socket of its own: a scan of thousands of TAPs must not hold up
		// the Bridge's Configs behind its socket's lock.
		return rtnl.Dial(&rtnl.Config{NetNS: m.b.nsFD})
	}
	return dialPath(c.NetnsPath)
}

// attached reports whether some process holds the TAP open (see
// rtnl.Link.AttachedQueues); a link that is not a TUN/TAP counts as held.
func attached(l *rtnl.Link) bool {
	return l.Tun == nil || l.AttachedQueues() > 0
}

// read scans the namespace's TUN/TAP devices (one kernel-filtered dump)
// and keeps the instance's.
func (m *gcModule) read(ctx context.Context) (bridgeSnapshot, error) {
	c, err := m.cycleSettings()
	if err != nil {
		return bridgeSnapshot{}, err
	}
	conn, err := m.conn(&c)
	if err != nil {
		return bridgeSnapshot{}, err
	}
	defer conn.Close()
	s := bridgeSnapshot{
		candidates: make([]gc.Candidate, 0, m.lastScan),
		taps:       make([]scannedTAP, 0, m.lastScan),
	}
	if m.b != nil {
		m.b.mu.Lock()
		s.creating = make(map[string]struct{}, len(m.b.creating))
		for id := range m.b.creating {
			s.creating[id] = struct{}{}
		}
		m.b.mu.Unlock()
	}
	o := ops{inst: m.inst, group: m.inst.Group()}
	var tag owner.Tag
	err = conn.WalkLinks(ctx, &rtnl.LinkFilter{Kind: "tun", Brief: true}, func(l *rtnl.Link) error {
		if !o.ours(l, &tag) {
			return nil
		}
		// The walk reuses l, but not the strings it decodes: the name,
		// the alias and the VM ID in it (a substring) stay valid.
		s.candidates = append(s.candidates, gc.Candidate{
			ID:      l.Name,
			Owner:   tag.VMID,
			Created: time.UnixMilli(tag.Created),
			InUse:   attached(l),
			Doomed:  l.Group == o.group,
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

// resolve picks the orphans: TAPs of VMs that no snapshot lists as active
// and no Config of this process is creating, that nothing holds open, and
// that are older than the grace period; doomed TAPs whatever their VM. If no
// snapshot implements ActiveVMIDs at all, only doomed TAPs are picked:
// without a live set every VM would look dead. A snapshot that implements
// it and returns an empty or nil map is a live set with no VM in it.
func (m *gcModule) resolve(s bridgeSnapshot, others map[string]any) []string {
	live, haveLive := s.live(others)
	cands := s.candidates
	if !haveLive {
		cands = nil
		for _, c := range s.candidates {
			if c.Doomed {
				cands = append(cands, c)
			}
		}
	}
	orphans := gc.Diff(cands, live, s.policy)
	ids := make([]string, len(orphans))
	for i, o := range orphans {
		ids[i] = o.ID
	}
	return ids
}

// collect re-reads every orphan by ifindex, keeps those that still carry
// the scanned tag and are not held open, and deletes them together.
func (m *gcModule) collect(ctx context.Context, ids []string, s bridgeSnapshot) error {
	if len(ids) == 0 {
		return nil
	}
	c, err := m.cycleSettings()
	if err != nil {
		return err
	}
	conn, err := m.conn(&c)
	if err != nil {
		return err
	}
	defer conn.Close()
	scanned := make(map[string]scannedTAP, len(ids))
	for _, id := range ids {
		scanned[id] = scannedTAP{}
	}
	for i, c := range s.candidates {
		if _, ok := scanned[c.ID]; ok {
			scanned[c.ID] = s.taps[i]
		}
	}
	var batch rtnl.Batch
	links := make([]rtnl.Link, len(ids))
	for i, id := range ids {
		batch.GetLinkByIndex(scanned[id].index, &links[i])
	}
	res, _ := conn.Exec(ctx, &batch)
	failed := gc.Failures{}
	var indexes []uint32
	for i, id := range ids {
		l := &links[i]
		switch {
		case errors.Is(res[i], unix.ENODEV):
			// Already deleted: nothing to do.
		case res[i] != nil:
			failed[id] = res[i]
		case l.Alias != scanned[id].alias || l.Name != id:
			failed[id] = errors.New("changed since the scan; left alone")
		case attached(l):
			failed[id] = errors.New("opened since the scan; left alone")
		default:
			indexes = append(indexes, l.Index)
		}
	}
	m.at(hookGCRechecked)
	o := &ops{conn: conn, inst: m.inst, group: m.inst.Group(), hook: m.hook}
	if err := o.deleteIndexes(ctx, indexes); err != nil {
		for i, id := range ids {
			if _, bad := failed[id]; !bad && !errors.Is(res[i], unix.ENODEV) {
				failed[id] = err
			}
		}
	}
	if len(failed) > 0 {
		return failed
	}
	return nil
}
