package rtnl_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
)

// fdbPayload encodes e as the kernel sends an AF_BRIDGE RTM_NEWNEIGH
// (net/bridge/br_fdb.c: fdb_fill_info), with only the attributes the
// decoder reads.
func fdbPayload(t testing.TB, e *rtnl.FDBEntry) []byte {
	t.Helper()
	b := make([]byte, unix.SizeofNdMsg)
	b[0] = unix.AF_BRIDGE
	ne := binary.NativeEndian
	ne.PutUint32(b[4:8], e.Port)
	ne.PutUint16(b[8:10], uint16(e.State))
	var flags uint8
	for _, f := range []struct {
		on  bool
		bit uint8
	}{{e.Self, unix.NTF_SELF}, {e.ExtLearned, unix.NTF_EXT_LEARNED}, {e.Sticky, 0x40}, {e.Offloaded, unix.NTF_OFFLOADED}} {
		if f.on {
			flags |= f.bit
		}
	}
	b[10] = flags
	ae := netlink.NewAttributeEncoder()
	if e.MAC != nil {
		ae.Bytes(unix.NDA_LLADDR, e.MAC)
	}
	if e.Master != 0 {
		ae.Uint32(unix.NDA_MASTER, e.Master)
	}
	if e.VLAN != 0 {
		ae.Uint16(unix.NDA_VLAN, e.VLAN)
	}
	if e.VNI != 0 {
		ae.Uint32(unix.NDA_VNI, e.VNI)
	}
	if e.Dst.IsValid() {
		ae.Bytes(unix.NDA_DST, e.Dst.AsSlice())
	}
	a, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, a...)
}

func testFDBEntries() []rtnl.FDBEntry {
	return []rtnl.FDBEntry{
		{MAC: net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}, Port: 7, Master: 3, State: rtnl.FDBStatic, Sticky: true},
		{MAC: net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}, Port: 9, Master: 3, State: rtnl.FDBReachable, ExtLearned: true},
		{MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}, Port: 9, State: rtnl.FDBPermanent, Self: true,
			Dst: netip.MustParseAddr("192.0.2.2")},
		{MAC: net.HardwareAddr{2, 0xaa, 0, 0, 0, 3}, Port: 9, State: rtnl.FDBReachable, Self: true, Offloaded: true,
			Dst: netip.MustParseAddr("2001:db8::2"), VNI: 200, VLAN: 10},
	}
}

func TestFDBDumpDecodes(t *testing.T) {
	want := testFDBEntries()
	var req netlink.Message
	c := rtnl.NewConn(nltest.Dial(func(r []netlink.Message) ([]netlink.Message, error) {
		req = r[0]
		var ps [][]byte
		for i := range want {
			ps = append(ps, fdbPayload(t, &want[i]))
		}
		return dumpAnswerOf(r[0], unix.RTM_NEWNEIGH, netlink.Multi, ps...), nil
	}))
	defer c.Close()
	got, err := c.FDB(t.Context(), &rtnl.FDBFilter{Master: 3})
	if err != nil {
		t.Fatalf("FDB(master 3) = %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FDB(master 3) = %+v, want %+v", got, want)
	}
	if req.Header.Type != unix.RTM_GETNEIGH || req.Header.Flags != netlink.Request|netlink.Dump {
		t.Errorf("FDB request header = %+v, want RTM_GETNEIGH, Request|Dump", req.Header)
	}
}

func TestGoldenFDBDumpRequest(t *testing.T) {
	skipBigEndian(t)
	tests := []struct {
		filter *rtnl.FDBFilter
		want   string
	}{
		{nil, `07 00 0000  00000000  0000 00 00`},
		{&rtnl.FDBFilter{Port: 7}, `07 00 0000  07000000  0000 00 00`},
		{&rtnl.FDBFilter{Master: 3}, `07 00 0000  00000000  0000 00 00  0800 0900  03000000`}, // NDA_MASTER (9)
	}
	for _, tt := range tests {
		var got []byte
		c := rtnl.NewConn(nltest.Dial(func(r []netlink.Message) ([]netlink.Message, error) {
			got = r[0].Data
			return dumpAnswerOf(r[0], unix.RTM_NEWNEIGH, netlink.Multi), nil
		}))
		if _, err := c.FDB(t.Context(), tt.filter); err != nil {
			t.Fatalf("FDB(%+v) = %v", tt.filter, err)
		}
		c.Close()
		if want := unhex(t, tt.want); !bytes.Equal(got, want) {
			t.Errorf("FDB(%+v) encodes\n%x\nwant\n%x", tt.filter, got, want)
		}
	}
}

func TestFDBEntryAnswer(t *testing.T) {
	mac := net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}
	want := &rtnl.FDBEntry{MAC: mac, Port: 7, Master: 3, State: rtnl.FDBStatic}
	c := rtnl.NewConn(nltest.Dial(func(r []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{answerOf(r[0], unix.RTM_NEWNEIGH, fdbPayload(t, want))}, nil
	}))
	defer c.Close()
	got, err := c.FDBEntry(t.Context(), 7, mac)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("FDBEntry(7, %s) = %+v, %v, want %+v", mac, got, err, want)
	}
}

// TestFDBErrnos pins which errors pass through: DelFDB treats ENOENT as
// done, DelFDBSelf and FDBEntry report it.
func TestFDBErrnos(t *testing.T) {
	mac := net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}
	tests := []struct {
		name  string
		errno unix.Errno
		call  func(c *rtnl.Conn) error
		want  error // nil: success
	}{
		{"DelFDB ENOENT", unix.ENOENT, func(c *rtnl.Conn) error { return c.DelFDB(t.Context(), 7, mac) }, nil},
		{"DelFDBSelf ENOENT", unix.ENOENT, func(c *rtnl.Conn) error { return c.DelFDBSelf(t.Context(), 9, mac) }, unix.ENOENT},
		{"DelFDBSelf ENODEV", unix.ENODEV, func(c *rtnl.Conn) error { return c.DelFDBSelf(t.Context(), 9, mac) }, unix.ENODEV},
		{"FDBEntry ENOENT", unix.ENOENT, func(c *rtnl.Conn) error {
			_, err := c.FDBEntry(t.Context(), 7, mac)
			return err
		}, unix.ENOENT},
		{"AddFDBWith Exclusive EEXIST", unix.EEXIST, func(c *rtnl.Conn) error {
			return c.AddFDBWith(t.Context(), 7, mac, &rtnl.FDBOptions{Exclusive: true})
		}, unix.EEXIST},
		{"AddFDBWith Use EINVAL", unix.EINVAL, func(c *rtnl.Conn) error {
			return c.AddFDBWith(t.Context(), 7, mac, &rtnl.FDBOptions{Use: true})
		}, unix.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rtnl.NewConn(nltest.Dial(func(r []netlink.Message) ([]netlink.Message, error) {
				return []netlink.Message{errAnswer(r[0], tt.errno)}, nil
			}))
			defer c.Close()
			err := tt.call(c)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("%s = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

// TestAddFDBWithHeaderFlags: Exclusive is NLM_F_EXCL, everything else
// NLM_F_REPLACE, so that a re-run is idempotent.
func TestAddFDBWithHeaderFlags(t *testing.T) {
	mac := net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}
	tests := []struct {
		o    *rtnl.FDBOptions
		want netlink.HeaderFlags
	}{
		{nil, netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace},
		{&rtnl.FDBOptions{Sticky: true}, netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace},
		{&rtnl.FDBOptions{Use: true}, netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace},
		{&rtnl.FDBOptions{Exclusive: true}, netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
	}
	for _, tt := range tests {
		h, _ := requestBytes(t, func(b *rtnl.Batch) { b.AddFDBWith(7, mac, tt.o) })
		if h.Type != unix.RTM_NEWNEIGH || h.Flags != tt.want {
			t.Errorf("AddFDBWith(%+v) header = type %d flags %v, want RTM_NEWNEIGH flags %v", tt.o, h.Type, h.Flags, tt.want)
		}
	}
}
