// Package fuzz holds the fuzz targets on tapbridge's exported parsing: TAP
// names, VM IDs, interface names and owner tags. Targets that reach
// unexported decoders live next to them (rtnl/fuzz_test.go,
// gc/fuzz_test.go).
//
// Each target's corpus is committed under testdata/fuzz/<Target>, so a plain
// `go test ./fuzz` replays it. To fuzz, one target at a time:
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzTag$' -fuzztime 60s
//
// or every target of the module with `make fuzz FUZZTIME=60s`. A failure
// writes the crashing input to testdata/fuzz/<Target>/; commit it with the
// fix.
package fuzz
