// Package lock defines Locker, the interface shared by tapbridge's
// cross-process locks.
//
// Implementations live in subpackages; see package
// github.com/tapbridge/tapbridge/lock/flock for one based on flock(2).
package lock
