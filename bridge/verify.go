package bridge

import (
	"bytes"
	"cmp"
	"fmt"
	"net"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
)

// verifyDiffs lists how the TAPs found for one VM differ from what Config
// makes on bridge br (named bridgeDev): one line per difference, TAP by TAP
// in the order given, then the NICs the tags record that have no TAP. An
// empty result means the VM is intact. The TAPs' flags are checked against
// the VMM profile hypervisor, or, when it is empty, the profile each TAP's
// tag records (fallback for tags that record none).
func verifyDiffs(nics []found, br *rtnl.Link, bridgeDev, hypervisor, fallback string, group uint32) []string {
	var diffs []string
	want := 0
	have := make(map[int]bool, len(nics))
	for i := range nics {
		want = max(want, nics[i].tag.NICs)
		have[nics[i].nic] = true
		hv := hypervisor
		if hv == "" {
			hv = cmp.Or(nics[i].tag.Hypervisor, fallback)
		}
		diffs = append(diffs, verifyTAP(&nics[i], br, bridgeDev, hv, group)...)
	}
	for nic := range want {
		if !have[nic] {
			diffs = append(diffs, fmt.Sprintf("nic %d: TAP missing (the VM has %d NICs)", nic, want))
		}
	}
	return diffs
}

// verifyTAP lists how one TAP differs from what Config makes.
func verifyTAP(n *found, br *rtnl.Link, bridgeDev, hypervisor string, group uint32) []string {
	l, t := &n.link, &n.tag
	var d []string
	add := func(format string, args ...any) {
		d = append(d, fmt.Sprintf("nic %d (%s): ", n.nic, l.Name)+fmt.Sprintf(format, args...))
	}
	if l.Group == group {
		add("being deleted")
		return d
	}
	// The flags first: a mismatch there is what makes the VMM's open fail
	// (EINVAL from tun_set_iff), the rest only what makes traffic fail.
	tun := l.Tun
	if tun.PI || !tun.VnetHdr {
		add("flags pi=%v vnet_hdr=%v, want pi=false vnet_hdr=true", tun.PI, tun.VnetHdr)
	}
	pairs := max(t.Queues/2, 1)
	if want := config.MultiQueue(hypervisor, pairs); tun.MultiQueue != want {
		add("multi-queue %v, but %s opens a TAP with %d queue pairs multi-queue=%v", tun.MultiQueue, hypervisor, pairs, want)
	}
	if l.Master != br.Index {
		master := "none"
		if l.Master != 0 {
			master = fmt.Sprintf("ifindex %d", l.Master)
		}
		add("not a port of %s (master: %s)", bridgeDev, master)
	} else if l.Port != nil && l.Port.Learning {
		add("learning is on")
	}
	if !l.Up() {
		add("down")
	}
	if l.MTU != br.MTU {
		add("MTU %d, bridge has %d", l.MTU, br.MTU)
	}
	if want := hostMAC(t.MAC); !bytes.Equal(l.Address, want) {
		add("MAC %s, want %s", l.Address, want)
	}
	return d
}

// guardDiffs lists how the guard of the TAPs found for one VM differs from
// what Config makes for the mode each tag records (empty: l2): under a
// guard, the filter progs[i] is installed and is exactly the program this
// version generates for the policy it records, for the tag's guest MAC,
// and, when it is a port of the bridge brIndex (verifyTAP says when it is
// not), the port is locked with unicast flooding off; with the guard off,
// no filter. progs[i] is the program installed on nics[i] (nil: none).
func guardDiffs(nics []found, progs [][]rtnl.SockFilter, brIndex, group uint32) []string {
	var d []string
	for i := range nics {
		n := &nics[i]
		l := &n.link
		if l.Group == group {
			continue // being deleted, said by verifyTAP
		}
		add := func(format string, args ...any) {
			d = append(d, fmt.Sprintf("nic %d (%s): ", n.nic, l.Name)+fmt.Sprintf(format, args...))
		}
		mode, err := guard.ParseMode(n.tag.Guard)
		if err != nil {
			add("tag records guard mode %q: %v", n.tag.Guard, err)
			continue
		}
		if mode == guard.ModeOff {
			if len(progs[i]) > 0 {
				add("guard off, but a filter is installed on its ingress")
			}
			continue
		}
		if len(progs[i]) == 0 {
			add("guard %s, but no guard filter on its ingress", mode)
		} else {
			p, err := guard.Decode(instructions(progs[i]))
			switch {
			case err != nil && p == nil:
				add("guard %s, but its ingress filter is not the guard's: %v", mode, err)
			case err != nil:
				add("guard %s: filter program differs from what this version makes: %v", mode, err)
			case p.Mode != mode:
				add("guard filter enforces mode %s, want %s", p.Mode, mode)
			case p.MAC != n.tag.MAC:
				add("guard filter allows MAC %s, want the guest MAC %s", net.HardwareAddr(p.MAC[:]), net.HardwareAddr(n.tag.MAC[:]))
			}
		}
		if l.Master == brIndex && l.Port != nil {
			if !l.Port.Locked {
				add("guard %s, but the bridge port is not locked", mode)
			}
			if l.Port.UnicastFlood {
				add("guard %s, but the bridge port floods unknown unicast to the guest", mode)
			}
		}
	}
	return d
}
