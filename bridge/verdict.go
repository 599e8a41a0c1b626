package bridge

import (
	"fmt"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/rtnl"
)

// ownership is what decides whether a link is one of an instance's TAPs.
type ownership struct {
	inst  owner.Instance
	group uint32 // the instance's reserved group: its doomed TAPs
}

// ours reports whether l is a TAP carrying o's tag, and parses the tag
// into t.
func (o ownership) ours(l *rtnl.Link, t *owner.Tag) bool {
	return l.Kind == "tun" && l.Tun != nil && l.Tun.TAP && owner.ParseTag(l.Alias, t) && t.Instance == o.inst
}

// oursFor reports whether l is o's TAP for NIC nic of VM vmID.
func (o ownership) oursFor(l *rtnl.Link, vmID string, nic int, t *owner.Tag) bool {
	return o.ours(l, t) && t.VMID == vmID && t.NIC == nic
}

// found is a TAP that a lookup proved to be the instance's TAP for a VM
// and NIC.
type found struct {
	nic  int
	link rtnl.Link
	tag  owner.Tag
}

// probeVerdict is what Config does about what it found under a NIC's
// alternative name.
type probeVerdict int

// The zero verdict is none: judgeProbe returns it only with an error.
const (
	// probeAdopt: this VM's TAP with the flags the request needs: repair
	// it in place.
	probeAdopt probeVerdict = iota + 1
	// probeReplace: this VM's TAP, but doomed (its Delete is not done) or
	// made with other flags (another profile or CPU count, persistent vs
	// handed off), and idle: delete it first, then make a new one.
	probeReplace
)

// judgeProbe decides, for NIC n of p, about the link found under its
// alternative name (l, when found). It fails when the name is held by
// something that is not o's TAP for that NIC (a collision), or when the TAP
// must be replaced but a process holds it. On probeAdopt and probeReplace
// it fills n from the TAP's tag: the guest MAC (unless the request gave
// one) and, for a TAP remade with other flags, its name as the first
// candidate, so that the NIC keeps its identity. recorded is the NIC count
// the tag records.
func judgeProbe(o ownership, p *vmPlan, n *nicPlan, l *rtnl.Link) (v probeVerdict, recorded int, err error) {
	var tag owner.Tag
	if !o.oursFor(l, p.vmID, n.nic, &tag) {
		return 0, 0, fmt.Errorf("config vm %s nic %d: %w: alternative name %s is held by %s, which is not this instance's TAP for it",
			p.vmID, n.nic, ErrNameCollision, owner.AltName(o.inst, p.vmID, n.nic), l.Name)
	}
	doomed := l.Group == o.group
	if doomed || l.Tun.MultiQueue != p.mq || p.handoff == l.Tun.Persist {
		if q := l.AttachedQueues(); q > 0 && !doomed {
			return 0, 0, fmt.Errorf("config vm %s nic %d: TAP %s is open (%d queues) with other flags (multi-queue %v, persistent %v)",
				p.vmID, n.nic, l.Name, q, l.Tun.MultiQueue, l.Tun.Persist)
		}
		if !doomed {
			// The same NIC of the same VM, remade with other flags: keep
			// its guest MAC and name, as an adopted TAP would.
			if !n.macGiven {
				n.mac, n.macGiven = tag.MAC, true
			}
			if n.nameHint == "" {
				n.nameHint = l.Name
			}
		}
		return probeReplace, tag.NICs, nil
	}
	if p.handoff {
		// A handed-off TAP lives only while its queue files are open, so
		// this one is held by a VMM (or the caller); more files would
		// change its queue count, and there are none to return.
		return 0, 0, fmt.Errorf("config vm %s nic %d: TAP %s was handed off and is still open (%d queues): close its queue files first",
			p.vmID, n.nic, l.Name, l.AttachedQueues())
	}
	n.adopt(l, &tag)
	n.hasAlt = true
	return probeAdopt, tag.NICs, nil
}

// judgeByName reports whether the link l that holds the name Config wanted
// for NIC n is that NIC's own TAP, one that lost its alternative name, and
// can be adopted as it is; if so it fills n as judgeProbe's probeAdopt does.
// Handed-off TAPs are never adopted (see judgeProbe).
func judgeByName(o ownership, p *vmPlan, n *nicPlan, l *rtnl.Link) bool {
	var tag owner.Tag
	if p.handoff || !o.oursFor(l, p.vmID, n.nic, &tag) || l.Group == o.group ||
		l.Tun.MultiQueue != p.mq || l.Tun.Persist == p.handoff {
		return false
	}
	n.adopt(l, &tag)
	return true
}

// adopt makes n describe the existing TAP l with tag t.
func (n *nicPlan) adopt(l *rtnl.Link, t *owner.Tag) {
	n.link = *l
	n.adopted = true
	n.name, n.index, n.created, n.oldMAC = l.Name, l.Index, t.Created, t.MAC
	if !n.macGiven {
		n.mac = t.MAC
	}
}
