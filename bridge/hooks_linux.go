package bridge

// hookFunc is a test hook: when a test sets it (the hook field of a Bridge,
// promoted from ops, or of a gcModule), the create, delete, reaper and GC
// paths call it at the named points below, so that a test can stop the
// process there (the fault tests SIGKILL themselves) and check what a crash
// at that point leaves in the kernel. It is nil outside tests, and at is
// then a no-op: no global state, nothing exported.
type hookFunc func(point string)

// Hook points.
const (
	// hookAfterCreate: Config made the NICs' TAPs (TUNSETIFF), which are
	// neither tagged nor enslaved yet and are held only by their files.
	hookAfterCreate = "after-create"
	// hookAfterSetup: Config's setup batch (tag, MAC, MTU, master, up, port
	// flags, FDB) went through; the new TAPs are not persistent yet.
	hookAfterSetup = "after-setup"
	// hookPersisted: Config made one more new TAP persistent (called once
	// per TAP).
	hookPersisted = "persisted"
	// hookDeleteQueued: Delete doomed VMs' TAPs for the reaper and is
	// returning.
	hookDeleteQueued = "delete-queued"
	// hookReaping: the reaper is about to delete the reserved group.
	hookReaping = "reaping"
	// hookDeleteMarked: a deletion (a synchronous Delete, Config's doomed
	// TAPs, GC) moved TAPs into the reserved group and has not yet deleted
	// the group.
	hookDeleteMarked = "delete-marked"
	// hookGCRechecked: GC's collect re-read the orphans and has not yet
	// deleted them.
	hookGCRechecked = "gc-rechecked"
)

// at calls the hook, if any, with point.
func (o *ops) at(point string) {
	if o.hook != nil {
		o.hook(point)
	}
}

// at calls the module's hook, if any, with point.
func (m *gcModule) at(point string) {
	if m.hook != nil {
		m.hook(point)
	}
}
