package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

// Config creates the network of VM vmID: numNICs TAPs on the bridge, and
// returns one record per NIC, in NIC order.
//
// existing carries the records of a VM being recovered (after a host
// reboot, say): existing[i] gives NIC i its guest MAC (and, if it is one of
// the NIC's name candidates, its TAP name). NICs without a record get a
// random locally administered MAC.
//
// Config is idempotent: for a VM whose TAPs exist and carry this instance's
// tag for vmID, it checks and repairs them (bridge, MTU, MAC, up, port
// flags, FDB entry) and returns the same records; NICs beyond numNICs that
// an earlier Config made are deleted. It never attaches to a device of
// another VM or instance: a name held by one makes it try the next
// candidate, and an alternative name held by one fails with an error
// wrapping ErrNameCollision. Doomed TAPs of vmID (a Delete whose background
// deletion has not run yet) are deleted first, so that the ID can be
// reused.
//
// On any failure every TAP made by this call is destroyed; TAPs that existed
// before are left as they were. Errors wrap ErrInvalidArgument (bad VM ID,
// numNICs outside 1..MaxNICs, a CPU count needing more than 256 queue
// pairs, a bad existing record, a guest MAC that the bridge's forwarding
// table already has on another port), ErrBridgeNotFound, ErrNotBridge,
// ErrBridgeFull, ErrNameCollision, or the kernel's errno.
//
// If the bridge was deleted and made again since New (it has another
// ifindex), Config puts the VM's TAPs on the new one, and, on a Bridge made
// by New, first pins the new bridge's MAC as New pinned the old one.
func (b *Bridge) Config(ctx context.Context, vmID string, numNICs int, vmCfg *types.VMConfig, existing ...*types.NetworkConfig) ([]*types.NetworkConfig, error) {
	p, err := b.configure(ctx, vmID, numNICs, vmCfg, existing, false, false)
	if err != nil {
		return nil, err
	}
	return p.records(&b.target), nil
}

// ConfigHandoff is Config for VMMs that take TAP file descriptors (Cloud
// Hypervisor --net fd=, QEMU -netdev tap,fds=): the TAPs are not persistent,
// and their queue files (one per queue pair; Firecracker: one) are returned
// to the caller. When the last file closes, in the VMM or here, the kernel
// destroys the TAP, so a crashed VMM leaves nothing for GC. An existing
// persistent TAP of the VM that nothing holds open is replaced; while the
// VM's handed-off TAPs are still open, ConfigHandoff fails and changes
// nothing.
func (b *Bridge) ConfigHandoff(ctx context.Context, vmID string, numNICs int, vmCfg *types.VMConfig, existing ...*types.NetworkConfig) ([]*Handoff, error) {
	p, err := b.configure(ctx, vmID, numNICs, vmCfg, existing, true, false)
	if err != nil {
		return nil, err
	}
	recs := p.records(&b.target)
	out := make([]*Handoff, len(p.nics))
	for i, n := range p.nics {
		out[i] = &Handoff{Config: recs[i], Queues: n.dev.Release()}
	}
	return out, nil
}

func (b *Bridge) configure(ctx context.Context, vmID string, numNICs int, vmCfg *types.VMConfig, existing []*types.NetworkConfig, handoff, staged bool) (_ *vmPlan, err error) {
	p, err := newPlan(&b.target, vmID, numNICs, vmCfg, existing, handoff)
	if err != nil {
		return nil, err
	}
	p.staged = staged
	unlock := b.vms.lock(vmID)
	defer unlock()
	if err := b.inflight.Lock(ctx); err != nil {
		return nil, fmt.Errorf("config vm %s: in-flight lock: %w", vmID, err)
	}
	defer b.inflight.Unlock(context.WithoutCancel(ctx))
	b.beginCreate(vmID)
	defer b.endCreate(vmID)

	setup := false // setupLinks ran: adopted TAPs may have changed
	defer func() {
		if err != nil {
			err = errors.Join(err, b.rollback(ctx, p))
			if setup {
				err = errors.Join(err, b.restoreAdopted(ctx, p))
			}
		}
	}()
	if err := b.probe(ctx, p); err != nil {
		return nil, err
	}
	if err := b.create(ctx, p); err != nil {
		return nil, err
	}
	if err := b.readFilters(ctx, p); err != nil {
		return nil, err
	}
	b.hook.at(hookAfterCreate)
	setup = true
	if err := b.setupLinks(ctx, p); err != nil {
		return nil, err
	}
	b.hook.at(hookAfterSetup)
	if !handoff {
		if err := p.persist(b.hook); err != nil {
			return nil, fmt.Errorf("config vm %s: %w", vmID, err)
		}
	}
	if err := b.bringUp(ctx, p); err != nil {
		return nil, err
	}
	b.remember(p)
	return p, nil
}

// probe looks up the bridge and each NIC's alternative name in one batch,
// judges what it found (judgeProbe), and deletes the TAPs of the VM that
// must go first (doomed, made with other flags, beyond numNICs).
func (b *Bridge) probe(ctx context.Context, p *vmPlan) error {
	// The bridge's ifindex and MTU, with two ioctls. A device that has the
	// ifindex of the bridge already checked is that bridge (the kernel does
	// not reuse an ifindex before its 31-bit space wraps); any other (a
	// bridge re-created, or something else under the name) gets the full
	// look-up and check below.
	index, mtu, err := b.conn.IndexMTUByName(ctx, b.bridgeDev)
	if err != nil {
		return fmt.Errorf("config vm %s: %w", p.vmID, bridgeErr(b.bridgeDev, err))
	}
	b.brMu.Lock()
	checked := index == b.checked
	b.brMu.Unlock()
	var batch rtnl.Batch
	if checked {
		p.bridge = rtnl.Link{Index: index, Name: b.bridgeDev, MTU: mtu, Kind: "bridge"}
	} else {
		batch.GetLinkByName(b.bridgeDev, &p.bridge)
	}
	first := batch.Len()
	for _, n := range p.nics {
		batch.GetLinkByAltName(owner.AltName(b.inst, p.vmID, n.nic), &n.link)
	}
	res, _ := b.conn.Exec(ctx, &batch) // per-request results below
	if !checked {
		if res[0] != nil {
			return fmt.Errorf("config vm %s: %w", p.vmID, bridgeErr(b.bridgeDev, res[0]))
		}
		if p.bridge.Kind != "bridge" {
			return fmt.Errorf("config vm %s: %w", p.vmID, notBridgeErr(&p.bridge))
		}
		if err := b.repin(ctx, &p.bridge); err != nil {
			return fmt.Errorf("config vm %s: %w", p.vmID, err)
		}
		b.brMu.Lock()
		b.checked = p.bridge.Index
		b.brMu.Unlock()
	}
	var doomed []uint32
	recorded := len(p.nics)
	for i, n := range p.nics {
		switch err := res[first+i]; {
		case errors.Is(err, unix.ENODEV):
			continue
		case err != nil:
			return fmt.Errorf("config vm %s: %w", p.vmID, err)
		}
		v, nics, err := judgeProbe(b.ownership, p, n, &n.link)
		if err != nil {
			return err
		}
		recorded = max(recorded, nics)
		if v == probeReplace {
			doomed = append(doomed, n.link.Index)
		}
	}
	if recorded > len(p.nics) {
		// An earlier Config gave the VM more NICs: the extra ones go.
		extra, err := b.lookupVMs(ctx, []string{p.vmID}, len(p.nics), recorded)
		if err != nil {
			return fmt.Errorf("config vm %s: %w", p.vmID, err)
		}
		for _, r := range refsOf(extra) {
			doomed = append(doomed, r.index)
		}
	}
	if err := b.deleteNow(ctx, doomed); err != nil {
		return fmt.Errorf("config vm %s: delete stale TAPs: %w", p.vmID, err)
	}
	return nil
}

// create makes the TAPs of the NICs that have none, trying each name
// candidate in turn. The TAPs stay non-persistent, held by their files,
// until persist.
func (b *Bridge) create(ctx context.Context, p *vmPlan) error {
	queues := 1
	if p.handoff && p.mq {
		queues = p.pairs
	}
	opts := tap.Options{
		MultiQueue: p.mq,
		Queues:     queues,
		VnetHdr:    true,
		Exclusive:  true,
		Owner:      b.conf.TAPOwner,
		Group:      b.conf.TAPGroup,
		NetNS:      b.nsFD,
	}
	for _, n := range p.nics {
		if n.adopted {
			continue
		}
		if !n.macGiven {
			copy(n.mac[:], randomMAC())
		}
		var busy []string
		for _, name := range candidates(p.vmID, n) {
			files, err := b.tunFiles(queues)
			if err != nil {
				return fmt.Errorf("config vm %s nic %d: %w", p.vmID, n.nic, err)
			}
			opts.Files = files // tap.Create owns them from here, even on failure
			dev, err := b.createTAP(name, &opts)
			if err == nil {
				n.dev, n.name = dev, name
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("config vm %s nic %d: %w", p.vmID, n.nic, err)
			}
			// The name is taken. If by this VM's own TAP that lost its
			// alternative name, adopt it; otherwise try the next.
			if l, err := getLink(ctx, b.conn, name); err == nil && judgeByName(b.ownership, p, n, l) {
				break
			}
			busy = append(busy, name)
		}
		if n.dev == nil && !n.adopted {
			return fmt.Errorf("config vm %s nic %d: %w: names %v are all held by other devices", p.vmID, n.nic, ErrNameCollision, busy)
		}
		if n.dev != nil {
			idx, err := b.conn.IndexByName(ctx, n.name)
			if err != nil {
				return fmt.Errorf("config vm %s nic %d: %w", p.vmID, n.nic, err)
			}
			n.index = idx
			n.created = b.now().UnixMilli()
		}
	}
	// An adopted TAP gets a new creation time in its tag too: the tag then
	// changes, so a GC cycle that scanned the TAP before this Config sees
	// that it changed when it re-checks it before reclaiming, and the TAP
	// is as young to the GC grace period as one this Config made.
	now := b.now().UnixMilli()
	for _, n := range p.nics {
		if n.adopted {
			n.created = now
		}
	}
	return nil
}

// readFilters reads the filters of the adopted NICs (one batch; none when
// no NIC was adopted): each keeps the bindings its filter holds, unless
// its record gave others, and restoreAdopted can put the filter back.
func (b *Bridge) readFilters(ctx context.Context, p *vmPlan) error {
	var batch rtnl.Batch
	var adopted []*nicPlan
	for _, n := range p.nics {
		if n.adopted {
			adopted = append(adopted, n)
			batch.GetIngressBPF(n.index, &n.oldProg)
		}
	}
	if len(adopted) == 0 {
		return nil
	}
	res, _ := b.conn.Exec(ctx, &batch) // per-request results below
	for i, n := range adopted {
		if res[i] != nil {
			return fmt.Errorf("config vm %s nic %d: read its filter: %w", p.vmID, n.nic, res[i])
		}
		if len(n.oldProg) == 0 {
			n.oldProg = nil
		}
		if old := installed(n.oldProg); old != nil && !n.boundGiven {
			n.bound, n.gateway = old.Addrs, old.Gateway
		}
	}
	return nil
}

// setupLinks configures every NIC, except bringing it up, in one pipelined
// batch. The link stays down until bringUp, after persist has closed the
// new TAPs' files: closing a TAP's last queue drops its carrier, which on a
// running bridge port costs a port-state change, and on a down one nothing.
func (b *Bridge) setupLinks(ctx context.Context, p *vmPlan) error {
	var batch rtnl.Batch
	// fdbNew is the request adding a new NIC's FDB entry exclusively, -1
	// for adopted NICs.
	// fdbGet is a staged NIC's read of the bridge's entry for its MAC,
	// -1 for the others.
	type span struct{ nic, first, n, fdbNew, fdbGet int }
	spans := make([]span, 0, len(p.nics))
	txq := b.conf.TxQueueLen
	port := portFor(p.mode, b.conf.Isolated, b.conf.Locked)
	if p.staged {
		port = stagedPort(b.conf.Isolated)
	}
	fdbs := make([]rtnl.FDBEntry, len(p.nics))
	for _, n := range p.nics {
		first := batch.Len()
		tag := p.tag(b.inst, b.conf.Hypervisor, n)
		alias := tag.String()
		// Before the link is up: the qdisc (else one per TX queue) and
		// address generation (else a link-local address). The MTU must
		// match the bridge's before enslaving, or the bridge lowers its own:
		// one message does it, since the kernel applies the address and MTU
		// before the master (net/core/rtnetlink.c: do_setlink).
		batch.SetNoQueue(n.index)
		// The guard's filter, installed over the one an adopted TAP has
		// (replaced in place: the NIC is never unfiltered), or removed
		// with its clsact qdisc when the mode is off.
		if p.mode != guard.ModeOff {
			prog, err := guard.Program(n.policy(p.mode))
			if err != nil {
				return fmt.Errorf("config vm %s nic %d: %w: %w", p.vmID, n.nic, ErrInvalidArgument, err)
			}
			batch.AddClsact(n.index)
			batch.SetIngressBPF(n.index, sockFilters(prog))
		} else if n.oldProg != nil {
			batch.DelClsact(n.index)
		}
		batch.SetLink(&rtnl.LinkChange{
			Index: n.index, MTU: p.bridge.MTU, TxQueueLen: &txq, Address: hostMAC(n.mac),
			AddrGenModeNone: true, Alias: &alias, Master: &p.bridge.Index,
		})
		if !n.hasAlt {
			batch.AddAltName(n.index, owner.AltName(b.inst, p.vmID, n.nic))
		}
		// Port settings need the port to exist: a separate message.
		batch.SetBridgePort(n.index, &port)
		fdbNew, fdbGet := -1, -1
		if p.staged {
			// No entry: the MAC stays where EVPN has it (another host's
			// extern_learn entry on the vxlan port) until Activate. A
			// re-staged NIC loses its own entry.
			if n.adopted {
				batch.DelFDB(n.index, net.HardwareAddr(n.oldMAC[:]))
			}
			batch.DelFDB(n.index, net.HardwareAddr(n.mac[:]))
			fdbGet = batch.Len()
			batch.GetFDBEntry(n.index, net.HardwareAddr(n.mac[:]), &fdbs[len(spans)])
		} else if n.adopted && n.oldMAC == n.mac {
			// Our own entry: restore it (on this port, static) whatever
			// happened to it.
			batch.AddFDBWith(n.index, net.HardwareAddr(n.mac[:]), &rtnl.FDBOptions{Sticky: b.conf.Sticky})
		} else {
			if n.adopted {
				batch.DelFDB(n.index, net.HardwareAddr(n.oldMAC[:]))
			}
			// A new MAC must be new to the bridge: never steal another
			// port's entry.
			fdbNew = batch.Len()
			batch.AddFDBWith(n.index, net.HardwareAddr(n.mac[:]), &rtnl.FDBOptions{Exclusive: true, Sticky: b.conf.Sticky})
		}
		spans = append(spans, span{n.nic, first, batch.Len() - first, fdbNew, fdbGet})
	}
	res, err := b.conn.Exec(ctx, &batch)
	if err == nil && !p.staged {
		return nil
	}
	// Report the first failure of each NIC: the requests after it fail
	// because of it (no port settings without a master, and so on).
	var errs []error
	for k, s := range spans {
		if s.fdbGet >= 0 && res[s.fdbGet] == nil {
			if err := stagedConflict(&fdbs[k], p.nics[s.nic].index); err != nil {
				errs = append(errs, fmt.Errorf("config vm %s nic %d: %w", p.vmID, s.nic, err))
				continue
			}
		}
		for i, e := range res[s.first : s.first+s.n] {
			if e == nil || s.first+i == s.fdbGet && errors.Is(e, unix.ENOENT) {
				continue
			}
			if s.first+i == s.fdbNew && errors.Is(e, unix.EEXIST) {
				mac := net.HardwareAddr(p.nics[s.nic].mac[:])
				errs = append(errs, fmt.Errorf("config vm %s nic %d: %w: guest MAC %s is already in the forwarding table of bridge %s: %w",
					p.vmID, s.nic, ErrInvalidArgument, mac, b.bridgeDev, e))
			} else {
				errs = append(errs, classify(p, s.nic, e))
			}
			break
		}
	}
	return errors.Join(errs...)
}

// bringUp sets every NIC up, in one batch.
func (b *Bridge) bringUp(ctx context.Context, p *vmPlan) error {
	var batch rtnl.Batch
	up := true
	for _, n := range p.nics {
		batch.SetLink(&rtnl.LinkChange{Index: n.index, Up: &up})
	}
	res, err := b.conn.Exec(ctx, &batch)
	if err == nil {
		return nil
	}
	var errs []error
	for i, e := range res {
		if e != nil {
			errs = append(errs, classify(p, p.nics[i].nic, e))
		}
	}
	return errors.Join(errs...)
}

// classify adds the library-level meaning of a setup failure.
func classify(p *vmPlan, nic int, err error) error {
	switch {
	case errors.Is(err, unix.EXFULL):
		return fmt.Errorf("config vm %s nic %d: %w (%d ports): %w", p.vmID, nic, ErrBridgeFull, MaxPorts, err)
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("config vm %s nic %d: %w: %w", p.vmID, nic, ErrNameCollision, err)
	}
	return fmt.Errorf("config vm %s nic %d: %w", p.vmID, nic, err)
}

// persist makes the new TAPs persistent and closes their files. A TAP made
// persistent is marked so, and if a later one fails, rollback deletes it
// by ifindex (closing its file would no longer destroy it).
func (p *vmPlan) persist(hook hookFunc) error {
	for _, n := range p.nics {
		if n.dev == nil {
			continue
		}
		if err := n.dev.SetPersist(true); err != nil {
			return err
		}
		n.persisted = true
		hook.at(hookPersisted)
	}
	var errs []error
	for _, n := range p.nics {
		if n.dev != nil {
			errs = append(errs, n.dev.Close())
			n.dev = nil
		}
	}
	return errors.Join(errs...)
}

// restoreAdopted gives the TAPs that existed before a failed call their
// owner tag, host-side MAC and FDB entry back, so that they still describe
// the VM as it was (its NIC count, queues and guest MACs) rather than the
// request that failed. The repairs setupLinks made (bridge, up, MTU, port
// flags) stay. The error says what could not be restored.
func (b *Bridge) restoreAdopted(ctx context.Context, p *vmPlan) error {
	var batch rtnl.Batch
	for _, n := range p.nics {
		if !n.adopted {
			continue
		}
		alias := n.link.Alias
		batch.SetLink(&rtnl.LinkChange{Index: n.index, Alias: &alias, Address: hostMAC(n.oldMAC)})
		if n.oldProg != nil {
			batch.AddClsact(n.index)
			batch.SetIngressBPF(n.index, n.oldProg)
		} else if p.mode != guard.ModeOff {
			batch.DelClsact(n.index)
		}
		if n.oldMAC != n.mac {
			batch.DelFDB(n.index, net.HardwareAddr(n.mac[:]))
			batch.AddFDB(n.index, net.HardwareAddr(n.oldMAC[:]))
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	if _, err := b.conn.Exec(context.WithoutCancel(ctx), &batch); err != nil {
		return fmt.Errorf("config vm %s: restore the TAPs it found: %w", p.vmID, err)
	}
	return nil
}

// rollback destroys the TAPs this call made. Those not persistent yet go
// when their files close; those already persistent (a failure after
// persist) are deleted by ifindex.
func (b *Bridge) rollback(ctx context.Context, p *vmPlan) error {
	var made []uint32
	for _, n := range p.nics {
		if n.dev != nil {
			// Closing a TUN file reports no error worth returning: the
			// kernel's release (tun_chr_close) cannot fail.
			_ = n.dev.Close()
			n.dev = nil
		}
		if n.persisted {
			made = append(made, n.index)
		}
	}
	if err := b.deleteNow(context.WithoutCancel(ctx), made); err != nil {
		return fmt.Errorf("config vm %s: roll back: %w", p.vmID, err)
	}
	return nil
}

// tunPool is how many /dev/net/tun files the Bridge opens at a time in
// its namespace: entering the namespace (a locked thread, two setns) costs
// about as much as a tenth of a TAP, so it is paid once per tunPool TAPs.
const tunPool = 16

// tunFiles returns n files of /dev/net/tun in the Bridge's namespace for
// tap.Options.Files, from the Bridge's stock, refilled tunPool at a time.
// In the caller's own namespace it returns nil: tap.Create opens them
// itself at no extra cost.
func (b *Bridge) tunFiles(n int) ([]*os.File, error) {
	if b.nsFD <= 0 {
		return nil, nil
	}
	b.tunMu.Lock()
	defer b.tunMu.Unlock()
	if len(b.tun) < n {
		more, err := tap.OpenFiles(b.nsFD, max(n-len(b.tun), tunPool))
		if err != nil {
			return nil, err
		}
		b.tun = append(b.tun, more...)
	}
	files := slices.Clone(b.tun[len(b.tun)-n:])
	clear(b.tun[len(b.tun)-n:])
	b.tun = b.tun[:len(b.tun)-n]
	return files, nil
}

func (b *Bridge) beginCreate(vmID string) {
	b.vmMu.Lock()
	b.creating[vmID]++
	b.vmMu.Unlock()
}

func (b *Bridge) endCreate(vmID string) {
	b.vmMu.Lock()
	if b.creating[vmID]--; b.creating[vmID] <= 0 {
		delete(b.creating, vmID)
	}
	b.vmMu.Unlock()
}

// remember records the VM's TAPs so that Delete finds them without probing.
func (b *Bridge) remember(p *vmPlan) {
	if p.handoff {
		return // transient: the VMM's exit deletes them
	}
	refs := make([]nicRef, len(p.nics))
	for i, n := range p.nics {
		refs[i] = nicRef{index: n.index, mac: n.mac}
	}
	b.vmMu.Lock()
	b.known[p.vmID] = refs
	b.vmMu.Unlock()
}
