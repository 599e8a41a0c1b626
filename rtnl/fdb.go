package rtnl

import (
	"net"
	"net/netip"
	"strconv"
)

// The states of an FDB entry (ndm_state, NUD_* in
// include/uapi/linux/neighbour.h, as net/bridge/br_fdb.c: fdb_to_nud
// reports them).
const (
	FDBReachable FDBState = 0x02 // learned (or added as reachable): it ages
	FDBStale     FDBState = 0x04 // learned and aged past the bridge's ageing time
	FDBStatic    FDBState = 0x40 // NUD_NOARP: added, never ages; frames go to its port
	FDBPermanent FDBState = 0x80 // NUD_PERMANENT: local; frames for the MAC go to the host
)

// FDBState is the state of an FDB entry.
type FDBState uint16

// String returns the state as `bridge fdb` prints it (iproute2
// bridge/fdb.c: state_n2a): "permanent" if FDBPermanent is set (a vxlan
// device reports its own entries as NOARP|PERMANENT), else "static" if
// FDBStatic is, else "stale", and "reachable" for learned entries, which
// iproute2 prints without a state.
func (s FDBState) String() string {
	switch {
	case s&FDBPermanent != 0:
		return "permanent"
	case s&FDBStatic != 0:
		return "static"
	case s&FDBStale != 0:
		return "stale"
	case s == FDBReachable:
		return "reachable"
	}
	return "state 0x" + strconv.FormatUint(uint64(s), 16)
}

// FDBEntry is a forwarding-database entry as an AF_BRIDGE RTM_NEWNEIGH
// message describes it. There are two kinds: the bridge's own entries
// (Master is the bridge; net/bridge/br_fdb.c: fdb_fill_info), which say
// to which port the bridge forwards frames for MAC, and the entries a
// device keeps itself (Self; Master 0), such as the unicast and multicast
// addresses of a port (ndo_dflt_fdb_dump) or a vxlan device's remote VTEPs.
type FDBEntry struct {
	MAC net.HardwareAddr

	// Port is ndm_ifindex: the port the entry forwards to (the bridge
	// itself for the bridge's own addresses), or the device that keeps a
	// Self entry.
	Port uint32

	// Master is the bridge of a bridge entry (NDA_MASTER), 0 for a Self
	// entry.
	Master uint32

	State FDBState

	Self       bool // NTF_SELF: the device's own entry, not the bridge's
	ExtLearned bool // NTF_EXT_LEARNED: added by a control plane (FRR for EVPN)
	Sticky     bool // NTF_STICKY: never moves to another port on its own
	Offloaded  bool // NTF_OFFLOADED: in hardware too

	VLAN uint16 // NDA_VLAN, 0 for none

	// Dst is the remote VTEP of a vxlan entry (NDA_DST); the zero Addr
	// when absent.
	Dst netip.Addr

	// VNI is a vxlan entry's remote VNI (NDA_VNI); the kernel reports it
	// only where it differs from the device's own, 0 otherwise.
	VNI uint32
}

// FDBFilter asks the kernel to filter an FDB dump (net/core/rtnetlink.c:
// rtnl_fdb_dump with strict checking, valid_fdb_dump_strict). The zero
// value lists the entries of every device of the namespace.
type FDBFilter struct {
	// Master keeps the entries of this bridge: its own, those of each of
	// its ports, and those its ports keep themselves (Self).
	Master uint32

	// Port keeps the entries of this device: the bridge entries that
	// point to it and those it keeps itself.
	Port uint32
}

// FDBOptions are the options of AddFDBWith. The zero value adds what
// AddFDB adds.
type FDBOptions struct {
	// Sticky (NTF_STICKY) pins the entry to its port: frames from the
	// MAC on another port do not move it (net/bridge/br_fdb.c:
	// br_fdb_update). It is a property of the entry that every add sets
	// or clears: AddFDB on a sticky entry makes it not sticky.
	Sticky bool

	// Exclusive refuses to take over an entry for the MAC on any port, as
	// AddFDBExclusive (EEXIST).
	Exclusive bool

	// Use (NTF_USE, `bridge fdb replace MAC dev PORT master use`) makes
	// the bridge learn mac on the port as if a frame from mac had
	// arrived there (net/bridge/br_fdb.c: __br_fdb_add -> br_fdb_update)
	// instead of adding a static entry: a dynamic entry is made, or an
	// existing non-sticky one moves to the port, and a moved entry loses
	// NTF_EXT_LEARNED ("Take over HW learned entry"). That is the only
	// way to take over an entry a control plane (FRR's zebra, for EVPN)
	// installed on a vxlan port without the entry keeping its
	// extern_learn mark; follow it with a static AddFDB to pin it.
	// The kernel acknowledges Use and does nothing when the port is not
	// in the learning or forwarding state (nbp_state_should_learn; a TAP
	// without carrier is disabled): check the result with FDBEntry.
	// Use excludes Sticky and Exclusive (an encoding error).
	Use bool
}
