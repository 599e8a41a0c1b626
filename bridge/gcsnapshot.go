package bridge

import (
	"errors"
	"maps"

	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/rtnl"
)

// bridgeSnapshot is one GC scan of an instance's TAPs: what the pure half
// of the GC module decides on.
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
		if _, creating := s.creating[c.Owner]; creating && r.Code == gc.ReasonLive {
			r.Code, r.Detail = gc.ReasonCreating, "its VM's Config is in flight in this process"
		}
		if !haveLive && r.Reclaim && !c.Doomed {
			r.Reclaim, r.Code, r.Detail = false, gc.ReasonNoLiveSet, "no module reports live VMs: only doomed TAPs are reclaimed"
		}
		out[c.ID] = r
	}
	return out
}

// live returns the VMs that protect their TAPs: those some snapshot lists
// as active (gc.LiveSet), and those whose Config runs in this process.
// haveLive reports whether any snapshot is a gc.LiveSet at all.
func (s bridgeSnapshot) live(others map[string]any) (live map[string]struct{}, haveLive bool) {
	var sets []map[string]struct{}
	for _, o := range others {
		if a, ok := o.(gc.LiveSet); ok {
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

// orphans picks the TAPs to reclaim: those of VMs that no snapshot lists
// as active and no Config of this process is creating, that nothing holds
// open, and that are older than the grace period; doomed TAPs whatever
// their VM. If no snapshot is a gc.LiveSet at all, only doomed TAPs are
// picked: without a live set every VM would look dead.
func (s bridgeSnapshot) orphans(others map[string]any) []string {
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
	picked := gc.Diff(cands, live, s.policy)
	ids := make([]string, len(picked))
	for i, o := range picked {
		ids[i] = o.ID
	}
	return ids
}

// scanned returns the scan's record of each of ids (the zero scannedTAP
// for an ID the scan did not see).
func (s bridgeSnapshot) scanned(ids []string) []scannedTAP {
	byID := make(map[string]int, len(s.candidates))
	for i, c := range s.candidates {
		byID[c.ID] = i
	}
	out := make([]scannedTAP, len(ids))
	for i, id := range ids {
		if j, ok := byID[id]; ok {
			out[i] = s.taps[j]
		}
	}
	return out
}

var (
	errChangedSinceScan = errors.New("changed since the scan; left alone")
	errOpenedSinceScan  = errors.New("opened since the scan; left alone")
)

// recheck decides about one orphan named id, scanned as sc, which collect
// has just read again by ifindex as l: whether to delete it now, or why
// not (a nil error without deletion: it is already gone).
func recheck(id string, sc scannedTAP, l *rtnl.Link, gone bool) (del bool, why error) {
	switch {
	case gone:
		return false, nil
	case l.Alias != sc.alias || l.Name != id:
		return false, errChangedSinceScan
	case attached(l):
		return false, errOpenedSinceScan
	}
	return true, nil
}

// attached reports whether some process holds the TAP open (see
// rtnl.Link.AttachedQueues); a link that is not a TUN/TAP counts as held.
func attached(l *rtnl.Link) bool {
	return l.Tun == nil || l.AttachedQueues() > 0
}
