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
	return decide(c, live, p) >= reclaimDoomed
}

// verdict is Diff's decision about one candidate and its reason.
type verdict int

const (
	keepInUse verdict = iota
	keepNoOwner
	keepLive
	keepYoung
	reclaimDoomed
	reclaimNotLive
)

func decide(c *Candidate, live map[string]struct{}, p *Policy) verdict {
	switch _, isLive := live[c.Owner]; {
	case c.InUse:
		return keepInUse
	case c.Owner == "":
		return keepNoOwner
	case isLive && !c.Doomed:
		return keepLive
	case p.Grace > 0 && p.Now.Sub(c.Created) < p.Grace:
		return keepYoung
	case c.Doomed:
		return reclaimDoomed
	}
	return reclaimNotLive
}

// ReasonCode names why a cycle reclaims or keeps a resource. Diff's codes
// are below; modules and the CLI compare against these constants, never
// against literal strings.
type ReasonCode string

// Reason codes. The first six are Diff's own decisions (Explain); the last
// two are decisions a module adds on top of Diff.
const (
	ReasonInUse   ReasonCode = "in-use"   // keep: held open by a process
	ReasonNoOwner ReasonCode = "no-owner" // keep: the resource names no owner
	ReasonLive    ReasonCode = "live"     // keep: the owner is in the live set
	ReasonYoung   ReasonCode = "young"    // keep: younger than the grace period
	ReasonDoomed  ReasonCode = "doomed"   // reclaim: its deletion was requested
	ReasonNotLive ReasonCode = "not-live" // reclaim: the owner is not live, idle, old enough

	// ReasonCreating: keep, the owner's creation is in flight (a module
	// that knows its own in-flight creations adds it).
	ReasonCreating ReasonCode = "creating"
	// ReasonNoLiveSet: keep, no module reports a live set at all, so only
	// doomed resources are reclaimed (see LiveSet).
	ReasonNoLiveSet ReasonCode = "no-live-set"
)

// Reason is Diff's decision about one candidate and why.
type Reason struct {
	Owner   string // the candidate's owner
	Reclaim bool
	Code    ReasonCode
	Detail  string // the reason in a few words, for people
}

// Explain returns Diff's decision about c and the reason, for dry runs and
// reports.
func Explain(c Candidate, live map[string]struct{}, p Policy) Reason {
	age := p.Now.Sub(c.Created).Truncate(time.Millisecond)
	r := Reason{Owner: c.Owner}
	switch decide(&c, live, &p) {
	case keepInUse:
		r.Code, r.Detail = ReasonInUse, "held open by a process"
	case keepNoOwner:
		r.Code, r.Detail = ReasonNoOwner, "no owner"
	case keepLive:
		r.Code, r.Detail = ReasonLive, "owner "+c.Owner+" is live"
	case keepYoung:
		r.Code, r.Detail = ReasonYoung, "younger than the grace period (age "+age.String()+" < "+p.Grace.String()+")"
	case reclaimDoomed:
		r.Reclaim, r.Code, r.Detail = true, ReasonDoomed, "its deletion was requested"
	default:
		r.Reclaim, r.Code, r.Detail = true, ReasonNotLive, "owner "+c.Owner+" is not live, not in use, age "+age.String()
	}
	return r
}
