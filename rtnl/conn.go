package rtnl

import "errors"

// ErrDumpInterrupted is wrapped by the error of a dump that the kernel kept
// marking inconsistent (NLM_F_DUMP_INTR) through every retry. No partial
// result is ever returned as complete.
var ErrDumpInterrupted = errors.New("rtnetlink dump interrupted by concurrent changes")

// Config configures Dial. A nil *Config means the zero value.
type Config struct {
	// NetNS is an fd of the network namespace the Conn works in. Zero means
	// the namespace of the calling thread at Dial time. The fd is borrowed:
	// Dial does not close it and the Conn does not need it afterwards.
	NetNS int
}
