package rtnl_test

import (
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/tapbridge/tapbridge/rtnl"
)

// FuzzFDBDecode feeds AF_BRIDGE RTM_NEWNEIGH payloads to the decoder
// (corpus: kernel captures written by TestIntegrationFDBOptions with
// RTNL_WRITE_CORPUS=1). Properties: it never panics, fails with a nil
// entry, a decoded MAC does not alias the input, and decoding is stable
// under a canonical re-encoding.
func FuzzFDBDecode(f *testing.F) {
	for _, e := range testFDBEntries() {
		f.Add(fdbPayload(f, &e))
	}
	f.Add(fdbPayload(f, &rtnl.FDBEntry{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Dst: netip.MustParseAddr("::1")})[:14])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := rtnl.UnmarshalFDBEntry(b)
		if err != nil {
			if e != nil {
				t.Errorf("UnmarshalFDBEntry(%x) = %+v, %v, want nil with an error", b, e, err)
			}
			return
		}
		if len(e.MAC) > 0 {
			saved := append([]byte(nil), e.MAC...)
			for i := range b {
				b[i] ^= 0xff
			}
			if !reflect.DeepEqual([]byte(e.MAC), saved) {
				t.Fatalf("UnmarshalFDBEntry: MAC aliases the input")
			}
			for i := range b {
				b[i] ^= 0xff
			}
		}
		e2, err := rtnl.UnmarshalFDBEntry(fdbPayload(t, e))
		if err != nil || !reflect.DeepEqual(e2, e) {
			t.Errorf("UnmarshalFDBEntry(encode(UnmarshalFDBEntry(%x))) = %+v, %v, want %+v", b, e2, err, e)
		}
	})
}
