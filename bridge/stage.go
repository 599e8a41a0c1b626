package bridge

import (
	"errors"
	"fmt"
	"net"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
)

// ErrNoCarrier is wrapped by Activate's error for a staged NIC whose TAP
// no process holds open (no carrier, so its bridge port is disabled): the
// bridge ignores the take-over of the MAC on such a port
// (net/bridge/br_fdb.c: __br_fdb_add, nbp_state_should_learn). Start the
// VMM on the TAP first, then activate.
var ErrNoCarrier = errors.New("the NIC's TAP is not open (no carrier)")

// stagedPort is the bridge-port setting of a staged NIC: learning off,
// locked (with no FDB entry for the guest MAC, nothing the guest sends is
// forwarded) and every kind of flooding off (nothing reaches the guest).
// A disabled STP state would not do: carrier-up enables the port again
// (net/bridge/br_if.c: br_port_carrier_check -> br_stp_enable_port).
func stagedPort(isolated bool) rtnl.BridgePort {
	on, off := true, false
	return rtnl.BridgePort{
		Learning: &off, Isolated: &isolated, Locked: &on,
		UnicastFlood: &off, McastFlood: &off, BcastFlood: &off,
	}
}

// stagedConflict decides, for a NIC being staged on port index, about
// the bridge's entry e for its guest MAC: another host's entry
// (extern_learn, a control plane's, on the vxlan port) is expected, the
// NIC's own is fine, and a local entry on any other port is an error,
// as it is for Config.
func stagedConflict(e *rtnl.FDBEntry, index uint32) error {
	if e == nil || e.ExtLearned || e.Port == index {
		return nil
	}
	return fmt.Errorf("%w: guest MAC %s is already in the forwarding table on another port (ifindex %d, %s)",
		ErrInvalidArgument, e.MAC, e.Port, e.State)
}

// activationReady decides whether NIC l (staged or not) can be activated
// now: the take-over needs its port learning or forwarding, which is
// what an open TAP's carrier gives (use reports whether to send the
// take-over at all). An active NIC whose TAP is closed needs no take-over
// (its static entry is in place) and is only repaired.
func activationReady(l *rtnl.Link, staged bool) (use bool, err error) {
	if l.Port == nil {
		return false, fmt.Errorf("TAP %s is not a bridge port", l.Name)
	}
	switch l.Port.State {
	case rtnl.PortLearning, rtnl.PortForwarding:
		return true, nil
	}
	if staged {
		return false, fmt.Errorf("TAP %s (port %s): %w", l.Name, l.Port.State, ErrNoCarrier)
	}
	return false, nil
}

// checkTakeover decides whether the take-over (NTF_USE) of mac on port
// index worked, from the entry the bridge has for it afterwards: it must
// be on the port and no longer a control plane's (extern_learn). The
// kernel acknowledges a take-over that it ignored, so this is the only
// proof. A sticky remote entry never moves: the source host must
// withdraw it first.
func checkTakeover(e *rtnl.FDBEntry, index uint32, mac net.HardwareAddr) error {
	switch {
	case e.Port != index && e.Sticky:
		return fmt.Errorf("guest MAC %s is sticky on ifindex %d: withdraw it on the source first (Delete there), then activate", mac, e.Port)
	case e.Port != index:
		return fmt.Errorf("the bridge did not take guest MAC %s over: its entry stays on ifindex %d", mac, e.Port)
	case e.ExtLearned:
		return fmt.Errorf("guest MAC %s moved to the TAP but is still marked extern_learn", mac)
	}
	return nil
}

// activePort is the port setting Activate restores: what Config gives a
// NIC of guard mode tagMode (the tag's; "" is the default l2).
func activePort(tagMode string, isolated, locked bool) (rtnl.BridgePort, error) {
	m := guard.ModeL2
	if tagMode != "" {
		var err error
		if m, err = guard.ParseMode(tagMode); err != nil {
			return rtnl.BridgePort{}, err
		}
	}
	return portFor(m, isolated, locked), nil
}

// fdbDiff is Verify's view of NIC l's FDB entry e (nil: none) for its
// guest MAC: an active NIC must have a static entry on its port; a staged
// one has none yet, which is not a difference, but a staged one whose
// entry points to it is no longer what Stage made.
func fdbDiff(e *rtnl.FDBEntry, l *rtnl.Link, nic int, staged bool) string {
	here := e != nil && e.Port == l.Index
	var d string
	switch {
	case staged && here:
		d = "staged, but has an FDB entry for its guest MAC"
	case staged:
		return ""
	case !here:
		d = "no FDB entry for its guest MAC on its port"
	case e.State != rtnl.FDBStatic:
		d = fmt.Sprintf("FDB entry for its guest MAC is %s, want static", e.State)
	case e.ExtLearned:
		d = "FDB entry for its guest MAC is marked extern_learn"
	default:
		return ""
	}
	return fmt.Sprintf("nic %d (%s): %s", nic, l.Name, d)
}
