package gc_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/gc"
)

// decodeCandidates turns fuzz bytes into a scan: 4 bytes per candidate
// (ID, owner, age in seconds, flags), from small alphabets so that IDs and
// owners repeat and meet the live set.
func decodeCandidates(data []byte) []gc.Candidate {
	var out []gc.Candidate
	for ; len(data) >= 4; data = data[4:] {
		c := gc.Candidate{
			ID:      "t" + string(rune('a'+data[0]%8)),
			Created: epoch.Add(-time.Duration(int8(data[2])) * time.Second),
			InUse:   data[3]&1 != 0,
			Doomed:  data[3]&2 != 0,
		}
		if o := data[1] % 7; o != 0 {
			c.Owner = "vm-" + string(rune('0'+o))
		}
		out = append(out, c)
	}
	return out
}

// decodeLive makes a live set from a bit mask over the owners vm-1..vm-6.
func decodeLive(mask uint8) map[string]struct{} {
	if mask&0x80 != 0 {
		return nil
	}
	live := make(map[string]struct{})
	for o := 1; o <= 6; o++ {
		if mask&(1<<o) != 0 {
			live["vm-"+string(rune('0'+o))] = struct{}{}
		}
	}
	return live
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte{0, 1, 10, 0, 1, 2, 10, 0}, uint8(0b10), int8(5))
	f.Add([]byte{0, 1, 10, 0, 0, 1, 10, 1, 2, 0, 100, 0}, uint8(0), int8(0))
	f.Add([]byte{3, 2, 200, 2, 3, 2, 1, 0, 4, 3, 50, 3}, uint8(0b1100), int8(-3))
	f.Add([]byte{7, 6, 0, 0, 6, 5, 0x80, 2, 5, 4, 0x7f, 0}, uint8(0x80), int8(100))
	f.Fuzz(func(t *testing.T, data []byte, mask uint8, grace int8) {
		scanned := decodeCandidates(data)
		live := decodeLive(mask)
		p := gc.Policy{Now: epoch, Grace: time.Duration(grace) * time.Second}
		scannedCopy, liveCopy := slices.Clone(scanned), maps.Clone(live)

		got := gc.Diff(scanned, live, p)

		if !slices.Equal(scanned, scannedCopy) || !maps.Equal(live, liveCopy) {
			t.Fatalf("Diff modified its arguments")
		}
		// Every scanned copy of an ID must allow reclaiming it.
		keep := func(c gc.Candidate) string {
			if c.InUse {
				return "in use"
			}
			if c.Owner == "" {
				return "has no owner"
			}
			if _, ok := live[c.Owner]; ok && !c.Doomed {
				return "owner is live"
			}
			if p.Grace > 0 && p.Now.Sub(c.Created) < p.Grace {
				return "younger than the grace period"
			}
			return ""
		}
		for i, c := range got {
			if i > 0 && strings.Compare(got[i-1].ID, c.ID) >= 0 {
				t.Fatalf("Diff() = %v: not sorted by ID or not unique at %d", ids(got), i)
			}
			if !slices.Contains(scanned, c) {
				t.Fatalf("Diff() returned %+v, which was not scanned", c)
			}
			for _, s := range scanned {
				if s.ID == c.ID {
					if why := keep(s); why != "" {
						t.Fatalf("Diff() reclaims %s, but a scanned copy %+v %s", c.ID, s, why)
					}
				}
			}
		}
		// And it misses nothing: every ID all of whose copies may go is
		// returned.
		for _, s := range scanned {
			ok := true
			for _, o := range scanned {
				if o.ID == s.ID && keep(o) != "" {
					ok = false
				}
			}
			if ok && !slices.ContainsFunc(got, func(c gc.Candidate) bool { return c.ID == s.ID }) {
				t.Fatalf("Diff() = %v misses %+v, which may be reclaimed", ids(got), s)
			}
		}
	})
}
