// Package netns runs small functions inside another network namespace.
//
// A network namespace is a property of an OS thread, not of a goroutine or a
// process, so entering one safely takes three precautions (the same ones as
// mdlayher/socket's withNetNS and the CNI plugins' ns.Do):
//
//   - the function runs on a fresh goroutine whose OS thread is locked, never
//     on the caller's goroutine;
//   - the thread's own namespace is opened through /proc/thread-self, not
//     /proc/self, which names the main thread's namespace;
//   - the thread is unlocked only after it was switched back. If the switch
//     back fails, the goroutine exits with its thread still locked and the Go
//     runtime destroys that thread instead of reusing it.
//
// Keep the function tiny: it must not start goroutines, because they would run
// on other threads in other namespaces.
package netns
