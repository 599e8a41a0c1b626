package gc

import (
	"slices"
	"strings"
	"time"
)

// Candidate is one resource a scan found, reduced to what Diff decides on.
type Candidate struct {
	ID      string    // unique resource ID, such as a TAP name
	Owner   string    // the VM that owns it
	Created time.Time // when it was made
	InUse   bool      // held open by some process: never reclaimed
	Doomed  bool      // already marked for deletion: reclaimed even if Owner is live
}

// Policy is what Diff needs besides the scan.
type Policy struct {
	Now   time.Time
	Grace time.Duration // candidates younger than this are kept; <= 0 keeps none
}

// Diff returns the candidates to reclaim, sorted by ID with duplicates
// removed: those not in use, and doomed or owned by a VM absent from live,
// and at least Grace old. Candidates with an empty Owner are never
// reclaimed. An ID that appears more than once is reclaimed only if every
// one of its candidates is, and then the first of them is returned: a scan
// that reports a resource twice must not have the copy that says "keep"
// overruled by the other. Diff is pure: it modifies neither scanned nor
// live.
func Diff(scanned []Candidate, live map[string]struct{}, p Policy) []Candidate {
	var out []Candidate
	var keep map[string]bool // IDs of which some candidate is kept
	for _, c := range scanned {
		if reclaimable(&c, live, &p) {
			out = append(out, c)
			continue
		}
		if keep == nil {
			keep = make(map[string]bool)
		}
		keep[c.ID] = true
	}
	out = slices.DeleteFunc(out, func(c Candidate) bool { return keep[c.ID] })
	slices.SortStableFunc(out, func(a, b Candidate) int { return strings.Compare(a.ID, b.ID) })
	return slices.CompactFunc(out, func(a, b Candidate) bool { return a.ID == b.ID })
}

func reclaimable(c *Candidate, live map[string]struct{}, p *Policy) bool {
	if c.InUse || c.Owner == "" {
		return false
	}
	if _, ok := live[c.Owner]; ok && !c.Doomed {
		return false
	}
	return p.Grace <= 0 || p.Now.Sub(c.Created) >= p.Grace
}
