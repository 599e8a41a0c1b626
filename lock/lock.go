package lock

import "context"

// Locker is a lock that may be held across processes.
//
// Implementations must be safe for concurrent use by multiple goroutines.
type Locker interface {
	// Lock blocks until the lock is acquired or ctx is done. In the latter
	// case it returns an error wrapping ctx.Err() and holds nothing.
	Lock(ctx context.Context) error

	// Unlock releases a hold acquired by Lock or TryLock.
	Unlock(ctx context.Context) error

	// TryLock acquires the lock without waiting. It reports (false, nil)
	// when the lock is busy and (false, err) on any other failure.
	TryLock(ctx context.Context) (bool, error)
}
