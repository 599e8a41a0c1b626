//go:build !linux

package main

import (
	"context"
	"fmt"
	"runtime"
)

// runDemo needs network namespaces, which only Linux has.
func runDemo(_ context.Context, e *env, _ []string) int {
	fmt.Fprintf(e.stderr, "tapbridge demo: not supported on %s: it needs Linux network namespaces\n", runtime.GOOS)
	return 1
}
