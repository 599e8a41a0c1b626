// Package flock implements lock.Locker on top of flock(2) advisory file
// locks.
//
// A Lock excludes both goroutines in this process and other processes
// (or other Lock values) using the same lock file. Each Lock opens its own
// file description when it is first acquired and closes it when it is last
// released, so two Lock values for one path in one process exclude each
// other exactly as two processes do.
//
// flock(2) locks are advisory: they only exclude other users of flock on
// the same file. They are released by the kernel when the owning process
// exits, so a crashed holder never leaves a stale lock behind.
//
// Locking is implemented on Linux only; on other platforms every
// operation that needs the file returns an error wrapping
// errors.ErrUnsupported.
package flock
