package bridge

// hookFunc is a test hook: when a test sets it (Bridge.hook, which
// RegisterGC copies into the GC module), the create, delete, reaper and GC
// paths call it between their steps at the points named below, so that a
// test can stop the process there (the fault tests SIGKILL themselves) and
// check what a crash at that point leaves in the kernel. A point inside a
// batch (between the requests of one Exec) is reached through the conn
// seam instead (Bridge.wrap). nil outside tests: no global state, nothing
// exported.
type hookFunc func(point string)

// Hook points.
const (
	// hookAfterCreate: Config made the NICs' TAPs (TUNSETIFF), which are
	// neither tagged nor enslaved yet and are held only by their files.
	hookAfterCreate = "after-create"
	// hookAfterSetup: Config's setup batch (tag, MAC, MTU, master, port
	// flags, FDB) went through; the new TAPs are not persistent yet.
	hookAfterSetup = "after-setup"
	// hookPersisted: Config made one more new TAP persistent (called once
	// per TAP).
	hookPersisted = "persisted"
	// hookDeleteQueued: Delete doomed VMs' TAPs for the background
	// deletion and is returning.
	hookDeleteQueued = "delete-queued"
	// hookReaping: the background deletion is about to delete the
	// reserved group.
	hookReaping = "reaping"
	// hookGCRechecked: GC's collect re-read the orphans and has not yet
	// deleted them.
	hookGCRechecked = "gc-rechecked"
)

// at calls h, if any, with point.
func (h hookFunc) at(point string) {
	if h != nil {
		h(point)
	}
}
