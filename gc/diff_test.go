package gc_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/gc"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// cand is a candidate created age before epoch.
func cand(id, owner string, age time.Duration, inUse, doomed bool) gc.Candidate {
	return gc.Candidate{ID: id, Owner: owner, Created: epoch.Add(-age), InUse: inUse, Doomed: doomed}
}

func set(ids ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

func ids(cs []gc.Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestDiff(t *testing.T) {
	const hour = time.Hour
	tests := []struct {
		name    string
		scanned []gc.Candidate
		live    map[string]struct{}
		grace   time.Duration
		want    []string
	}{
		{name: "empty scan", live: set("vm-1"), grace: hour},
		{
			name:    "dead owner reclaimed, live owner kept",
			scanned: []gc.Candidate{cand("t1", "vm-1", 2*hour, false, false), cand("t2", "vm-2", 2*hour, false, false)},
			live:    set("vm-1"), grace: hour,
			want: []string{"t2"},
		},
		{
			name:    "nil live set: every owner is dead",
			scanned: []gc.Candidate{cand("t1", "vm-1", 2*hour, false, false)},
			grace:   hour,
			want:    []string{"t1"},
		},
		{
			name:    "in use is never reclaimed, even doomed",
			scanned: []gc.Candidate{cand("t1", "vm-1", 2*hour, true, false), cand("t2", "vm-1", 2*hour, true, true)},
			grace:   hour,
		},
		{
			name:    "doomed reclaimed even with a live owner",
			scanned: []gc.Candidate{cand("t1", "vm-1", 2*hour, false, true), cand("t2", "vm-1", 2*hour, false, false)},
			live:    set("vm-1"), grace: hour,
			want: []string{"t1"},
		},
		{
			name:    "younger than grace kept, even doomed",
			scanned: []gc.Candidate{cand("t1", "vm-1", 59*time.Minute, false, false), cand("t2", "vm-1", 59*time.Minute, false, true)},
			grace:   hour,
		},
		{
			name:    "exactly grace old is reclaimed",
			scanned: []gc.Candidate{cand("t1", "vm-1", hour, false, false)},
			grace:   hour,
			want:    []string{"t1"},
		},
		{
			name:    "created in the future kept under a grace",
			scanned: []gc.Candidate{cand("t1", "vm-1", -hour, false, false)},
			grace:   time.Millisecond,
		},
		{
			name: "zero grace keeps none by age",
			scanned: []gc.Candidate{
				cand("t1", "vm-1", 0, false, false), cand("t2", "vm-1", -hour, false, false),
				{ID: "t3", Owner: "vm-1"}, // zero Created
			},
			want: []string{"t1", "t2", "t3"},
		},
		{
			name:    "negative grace keeps none by age",
			scanned: []gc.Candidate{cand("t1", "vm-1", -hour, false, false)},
			grace:   -time.Second,
			want:    []string{"t1"},
		},
		{
			name:    "empty owner never reclaimed",
			scanned: []gc.Candidate{cand("t1", "", 2*hour, false, false), cand("t2", "", 2*hour, false, true)},
			grace:   hour,
		},
		{
			name: "sorted by ID",
			scanned: []gc.Candidate{
				cand("tc", "vm-3", 2*hour, false, false), cand("ta", "vm-1", 2*hour, false, false),
				cand("tb", "vm-2", 2*hour, false, false),
			},
			grace: hour,
			want:  []string{"ta", "tb", "tc"},
		},
		{
			name: "duplicates removed",
			scanned: []gc.Candidate{
				cand("tb", "vm-1", 2*hour, false, false), cand("ta", "vm-1", 2*hour, false, false),
				cand("tb", "vm-1", 2*hour, false, false),
			},
			grace: hour,
			want:  []string{"ta", "tb"},
		},
		{
			name: "a duplicate that must be kept wins",
			scanned: []gc.Candidate{
				cand("t1", "vm-1", 2*hour, false, false), cand("t1", "vm-1", 2*hour, true, false),
				cand("t2", "vm-2", 2*hour, false, false), cand("t2", "vm-1", 2*hour, false, false),
				cand("t3", "vm-2", 2*hour, false, false), cand("t3", "vm-2", time.Minute, false, false),
			},
			live:  set("vm-1"),
			grace: hour,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scanned := slices.Clone(tt.scanned)
			live := maps.Clone(tt.live)
			p := gc.Policy{Now: epoch, Grace: tt.grace}
			got := gc.Diff(scanned, live, p)
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("Diff(%v, %v, grace %v) = %v, want %v", ids(tt.scanned), tt.live, tt.grace, ids(got), tt.want)
			}
			if !slices.Equal(scanned, tt.scanned) || !maps.Equal(live, tt.live) {
				t.Errorf("Diff modified its arguments: scanned %v, live %v", scanned, live)
			}
		})
	}
}

func TestDiffReturnsScannedCandidates(t *testing.T) {
	c := cand("t1", "vm-1", 2*time.Hour, false, true)
	got := gc.Diff([]gc.Candidate{c}, set("vm-1"), gc.Policy{Now: epoch, Grace: time.Hour})
	if len(got) != 1 || got[0] != c {
		t.Errorf("Diff([%+v]) = %+v, want the candidate itself", c, got)
	}
	// Duplicates resolve deterministically to the first scanned.
	a, b := cand("t1", "vm-1", 2*time.Hour, false, false), cand("t1", "vm-2", 3*time.Hour, false, false)
	for range 20 {
		got := gc.Diff([]gc.Candidate{a, b}, nil, gc.Policy{Now: epoch})
		if len(got) != 1 || got[0] != a {
			t.Fatalf("Diff([%+v %+v]) = %+v, want the first", a, b, got)
		}
	}
}

func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{1, 64, 512, 4096} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			scanned := make([]gc.Candidate, n)
			live := make(map[string]struct{}, n/2)
			for i := range scanned {
				owner := fmt.Sprintf("vm-%06d", i)
				scanned[i] = cand(fmt.Sprintf("bt%06d-0", n-i), owner, time.Duration(i%3)*time.Hour, i%7 == 0, i%11 == 0)
				if i%2 == 0 {
					live[owner] = struct{}{}
				}
			}
			p := gc.Policy{Now: epoch, Grace: time.Hour}
			b.ReportAllocs()
			for b.Loop() {
				gc.Diff(scanned, live, p)
			}
		})
	}
}
