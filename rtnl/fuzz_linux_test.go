package rtnl_test

import (
	"encoding/binary"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
)

// The corpus under testdata/fuzz/FuzzLinkDecode holds RTM_NEWLINK payloads
// captured from the kernel (files named kernel-*, written by
// TestIntegrationKernelLinkMessages with RTNL_WRITE_CORPUS=1) besides what
// the fuzzer found.
const linkCorpus = "testdata/fuzz/FuzzLinkDecode"

// FuzzLinkDecode feeds RTM_NEWLINK payloads to the decoder. Properties:
//   - it never panics;
//   - a decoded Link is self-consistent: TunInfo only for kind "tun",
//     PortInfo only for bridge ports, AddrGenMode -1 or a u8;
//   - decoding is stable: encoding the decoded Link canonically and
//     decoding that gives the same Link;
//   - where github.com/jsimonetti/rtnetlink/v2 decodes the same bytes too
//     (and reads every attribute, see rtnetlinkReadsAll), both agree on
//     index, flags, type, name, MTU, txqueuelen, master, alias, group and
//     operational state.
func FuzzLinkDecode(f *testing.F) {
	f.Add(tapPayload(f))
	f.Add(linkPayload(f, 1, unix.IFF_LOOPBACK|unix.IFF_UP, nil))
	f.Add(linkPayload(f, 2, 0, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.IFLA_IFNAME, "br0")
		ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
			ae.String(unix.IFLA_INFO_KIND, "bridge")
			ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
				ae.Uint32(1, 1500) // IFLA_BR_FORWARD_DELAY
				return nil
			})
			return nil
		})
	}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := rtnl.UnmarshalLink(b)
		if err != nil {
			if l != nil {
				t.Errorf("UnmarshalLink(%x) = %+v, %v, want nil with an error", b, l, err)
			}
			return
		}
		if l.Tun != nil && l.Kind != "tun" {
			t.Errorf("UnmarshalLink(%x): TunInfo for kind %q", b, l.Kind)
		}
		if l.Port != nil && l.SlaveKind != "bridge" {
			t.Errorf("UnmarshalLink(%x): PortInfo for slave kind %q", b, l.SlaveKind)
		}
		if l.AddrGenMode < -1 || l.AddrGenMode > 255 {
			t.Errorf("UnmarshalLink(%x): AddrGenMode %d", b, l.AddrGenMode)
		}

		canon := encodeLink(t, l)
		l2, err := rtnl.UnmarshalLink(canon)
		if err != nil || !reflect.DeepEqual(l2, l) {
			t.Errorf("UnmarshalLink(encode(UnmarshalLink(%x))) = %+v, %v, want %+v", b, l2, err, l)
		}

		checkAgainstRtnetlink(t, b, l)
	})
}

// checkAgainstRtnetlink compares what rtnl decoded from b with what
// rtnetlink decodes from it, where rtnetlink decodes all of it. It reports
// whether there was something to compare.
func checkAgainstRtnetlink(t *testing.T, b []byte, l *rtnl.Link) bool {
	t.Helper()
	lm, ok := rtnetlinkDecode(b)
	if !ok || !rtnetlinkReadsAll(b) {
		return false
	}
	a := lm.Attributes
	if a == nil {
		a = &rtnetlink.LinkAttributes{}
	}
	got := []any{l.Index, l.Flags, l.Type, l.Name, l.MTU, l.TxQueueLen, l.Master, l.Alias, l.Group, l.OperState}
	want := []any{
		lm.Index, lm.Flags, lm.Type, a.Name, a.MTU, deref(a.TxQueueLen), deref(a.Master),
		deref(a.Alias), deref(a.NetDevGroup), uint8(a.OperationalState),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UnmarshalLink(%x): index, flags, type, name, MTU, txqlen, master, alias, group, operstate = %v, rtnetlink says %v", b, got, want)
	}
	return true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// rtnetlinkDecode runs the reference decoder; a panic in it is its own bug,
// not ours, and only means there is nothing to compare with.
func rtnetlinkDecode(b []byte) (lm rtnetlink.LinkMessage, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return lm, lm.UnmarshalBinary(b) == nil
}

// rtnetlinkReadsAll reports whether rtnetlink's decoder reads every
// attribute of b. It stops silently, without an error, at the first
// integer attribute of the wrong size (it never checks its decoder's Err),
// so fields after one are missing on its side; it also skips XDP and VF
// data of the wrong shape the same way.
func rtnetlinkReadsAll(b []byte) bool {
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return false
	}
	for ad.Next() {
		n := len(ad.Bytes())
		switch ad.Type() {
		case unix.IFLA_CARRIER, unix.IFLA_LINKMODE, unix.IFLA_OPERSTATE:
			if n != 1 {
				return false
			}
		case unix.IFLA_CARRIER_CHANGES, unix.IFLA_CARRIER_UP_COUNT, unix.IFLA_CARRIER_DOWN_COUNT,
			unix.IFLA_GROUP, unix.IFLA_MTU, unix.IFLA_LINK, unix.IFLA_MASTER, unix.IFLA_TXQLEN, unix.IFLA_NUM_VF:
			if n != 4 {
				return false
			}
		case unix.IFLA_XDP:
			if !sizesAre(ad.Bytes(), map[uint16]int{
				unix.IFLA_XDP_FD: 4, unix.IFLA_XDP_EXPECTED_FD: 4, unix.IFLA_XDP_ATTACHED: 1,
				unix.IFLA_XDP_FLAGS: 4, unix.IFLA_XDP_PROG_ID: 4,
			}) {
				return false
			}
		case unix.IFLA_VFINFO_LIST:
			return false
		}
	}
	return ad.Err() == nil
}

// sizesAre reports whether the attributes in b are well formed and those
// of the types in sizes have those sizes.
func sizesAre(b []byte, sizes map[uint16]int) bool {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return false
	}
	for ad.Next() {
		if n, ok := sizes[ad.Type()]; ok && len(ad.Bytes()) != n {
			return false
		}
	}
	return ad.Err() == nil
}

// encodeLink encodes l as the kernel would, with only the attributes rtnl
// decodes.
func encodeLink(t *testing.T, l *rtnl.Link) []byte {
	t.Helper()
	b := make([]byte, unix.SizeofIfInfomsg)
	ne := binary.NativeEndian
	ne.PutUint16(b[2:4], l.Type)
	ne.PutUint32(b[4:8], l.Index)
	ne.PutUint32(b[8:12], l.Flags)
	flag := func(ae *netlink.AttributeEncoder, typ uint16, v bool) {
		var u uint8
		if v {
			u = 1
		}
		ae.Uint8(typ, u)
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, l.Name)
	ae.Uint32(unix.IFLA_MTU, l.MTU)
	ae.Uint32(unix.IFLA_TXQLEN, l.TxQueueLen)
	ae.Uint32(unix.IFLA_MASTER, l.Master)
	ae.Uint32(unix.IFLA_GROUP, l.Group)
	ae.String(unix.IFLA_IFALIAS, l.Alias)
	ae.Uint8(unix.IFLA_OPERSTATE, l.OperState)
	flag(ae, unix.IFLA_CARRIER, l.Carrier)
	if l.Address != nil {
		ae.Bytes(unix.IFLA_ADDRESS, l.Address)
	}
	if l.AltNames != nil {
		ae.Nested(unix.IFLA_PROP_LIST, func(ae *netlink.AttributeEncoder) error {
			for _, n := range l.AltNames {
				ae.String(unix.IFLA_ALT_IFNAME, n)
			}
			return nil
		})
	}
	ae.Nested(unix.IFLA_LINKINFO, func(ae *netlink.AttributeEncoder) error {
		if l.Kind != "" {
			ae.String(unix.IFLA_INFO_KIND, l.Kind)
		}
		if l.Tun != nil {
			ae.Nested(unix.IFLA_INFO_DATA, func(ae *netlink.AttributeEncoder) error {
				typ := uint8(unix.IFF_TUN)
				if l.Tun.TAP {
					typ = unix.IFF_TAP
				}
				ae.Uint8(unix.IFLA_TUN_TYPE, typ)
				flag(ae, unix.IFLA_TUN_PI, l.Tun.PI)
				flag(ae, unix.IFLA_TUN_VNET_HDR, l.Tun.VnetHdr)
				flag(ae, unix.IFLA_TUN_PERSIST, l.Tun.Persist)
				flag(ae, unix.IFLA_TUN_MULTI_QUEUE, l.Tun.MultiQueue)
				ae.Uint32(unix.IFLA_TUN_NUM_QUEUES, l.Tun.Queues)
				ae.Uint32(unix.IFLA_TUN_NUM_DISABLED_QUEUES, l.Tun.DisabledQueues)
				if l.Tun.Owner != nil {
					ae.Uint32(unix.IFLA_TUN_OWNER, *l.Tun.Owner)
				}
				if l.Tun.Group != nil {
					ae.Uint32(unix.IFLA_TUN_GROUP, *l.Tun.Group)
				}
				return nil
			})
		}
		if l.SlaveKind != "" {
			ae.String(unix.IFLA_INFO_SLAVE_KIND, l.SlaveKind)
		}
		if l.Port != nil {
			ae.Nested(unix.IFLA_INFO_SLAVE_DATA, func(ae *netlink.AttributeEncoder) error {
				flag(ae, unix.IFLA_BRPORT_LEARNING, l.Port.Learning)
				flag(ae, unix.IFLA_BRPORT_UNICAST_FLOOD, l.Port.UnicastFlood)
				flag(ae, unix.IFLA_BRPORT_ISOLATED, l.Port.Isolated)
				flag(ae, unix.IFLA_BRPORT_LOCKED, l.Port.Locked)
				flag(ae, unix.IFLA_BRPORT_NEIGH_SUPPRESS, l.Port.NeighSuppress)
				flag(ae, unix.IFLA_BRPORT_BCAST_FLOOD, l.Port.BcastFlood)
				flag(ae, unix.IFLA_BRPORT_MCAST_FLOOD, l.Port.McastFlood)
				ae.Uint8(unix.IFLA_BRPORT_STATE, uint8(l.Port.State))
				return nil
			})
		}
		return nil
	})
	if l.AddrGenMode >= 0 {
		ae.Nested(unix.IFLA_AF_SPEC, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.AF_INET6, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(unix.IFLA_INET6_ADDR_GEN_MODE, uint8(l.AddrGenMode))
				return nil
			})
			return nil
		})
	}
	a, err := ae.Encode()
	if err != nil {
		t.Fatalf("encode %+v: %v", l, err)
	}
	return append(b, a...)
}

// TestKernelCorpus decodes the committed kernel captures: they must
// decode, and agree with rtnetlink.
func TestKernelCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(linkCorpus, "kernel-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("%d kernel captures in %s, want at least 4 (TAP port, bridge, veth, lo)", len(files), linkCorpus)
	}
	for _, f := range files {
		b := readCorpusFile(t, f)
		l, err := rtnl.UnmarshalLink(b)
		if err != nil {
			t.Errorf("%s: UnmarshalLink = %v", f, err)
			continue
		}
		if !checkAgainstRtnetlink(t, b, l) {
			t.Errorf("%s: rtnetlink does not decode all of a kernel message", f)
		}
		if l.Name == "" || l.Index == 0 {
			t.Errorf("%s: UnmarshalLink = %+v, want a name and an index", f, l)
		}
		if filepath.Base(f) != "kernel-tap-port" {
			continue
		}
		// What TestIntegrationKernelLinkMessages set up.
		owner, group := uint32(4242), uint32(4343)
		wantTun := rtnl.TunInfo{TAP: true, VnetHdr: true, Persist: true, MultiQueue: true, Queues: 2, Owner: &owner, Group: &group}
		// The kernel's defaults flood broadcast and multicast; the port
		// is down, so disabled.
		wantPort := rtnl.PortInfo{UnicastFlood: true, Isolated: true, BcastFlood: true, McastFlood: true, State: rtnl.PortDisabled}
		if l.Name != "t0" || l.Kind != "tun" || l.SlaveKind != "bridge" || l.Master == 0 || l.MTU != 1400 ||
			l.TxQueueLen != 10000 || l.Group != 9 || l.Alias != "vm 7 net0" || l.AddrGenMode != 1 ||
			!reflect.DeepEqual(l.AltNames, []string{"vm-7-net0-longer-than-ifnamsiz"}) || len(l.Address) != 6 ||
			l.Tun == nil || !equalTun(l.Tun, &wantTun) || l.Port == nil || *l.Port != wantPort {
			t.Errorf("%s: UnmarshalLink = %+v (Tun %+v, Port %+v), want the TAP port that was captured", f, l, l.Tun, l.Port)
		}
	}
}
