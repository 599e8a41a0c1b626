package bridge

import (
	"slices"
	"sync"
)

// vmLocks serializes the calls for one VM ID within a Bridge.
type vmLocks struct {
	mu sync.Mutex
	m  map[string]*vmLock // guarded by mu; an entry lives while refs > 0
}

type vmLock struct {
	mu   sync.Mutex
	refs int // guarded by vmLocks.mu
}

// lock locks id and returns the function that unlocks it.
func (l *vmLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*vmLock)
	}
	v := l.m[id]
	if v == nil {
		v = &vmLock{}
		l.m[id] = v
	}
	v.refs++
	l.mu.Unlock()
	v.mu.Lock()
	return func() {
		v.mu.Unlock()
		l.mu.Lock()
		if v.refs--; v.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// lockAll locks every ID of ids (which must hold no duplicates) in sorted
// order, so that two calls on overlapping sets cannot deadlock, and
// returns the function that unlocks them all.
func (l *vmLocks) lockAll(ids []string) (unlock func()) {
	sorted := slices.Sorted(slices.Values(ids))
	unlocks := make([]func(), len(sorted))
	for i, id := range sorted {
		unlocks[i] = l.lock(id)
	}
	return func() {
		for _, u := range unlocks {
			u()
		}
	}
}
