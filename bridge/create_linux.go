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
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

const (
	// DefaultQueueSize is the virtio queue size when VMConfig.QueueSize is 0.
	DefaultQueueSize = 512
	// maxQueueSize is the largest virtio split-queue size.
	maxQueueSize = 32768
)

// Handoff is one NIC made by ConfigHandoff: its record and the queue files
// to give the VMM (one per queue pair). The caller owns the files.
type Handoff struct {
	Config *types.NetworkConfig
	Queues []*os.File
}

// vmPlan is one Config call: the validated request and, per NIC, what was
// found and made.
type vmPlan struct {
	vmID      string
	nics      []*nicPlan
	pairs     int // queue pairs: one per vCPU
	queues    int // virtio queues: 2 per pair
	queueSize int
	mq        bool
	handoff   bool
	bridge    rtnl.Link
}

type nicPlan struct {
	nic      int
	mac      [6]byte
	macGiven bool   // from existing: keep it
	nameHint string // from existing: try this candidate first
	name     string
	index    uint32
	created  int64
	adopted  bool    // the TAP existed and is ours: repair, do not roll back
	oldMAC   [6]byte // adopted: the guest MAC its tag had
	// persisted: made by this call and already persistent, so rollback
	// deletes it by ifindex rather than by closing its file.
	persisted bool
	hasAlt    bool // adopted: already carries its alternative name
	dev       *tap.Device
	link      rtnl.Link // probe result
}

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
// wrapping ErrNameCollision. Doomed TAPs of vmID (a Delete the reaper has
// not finished yet) are deleted first, so that the ID can be reused.
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
	p, err := b.configure(ctx, vmID, numNICs, vmCfg, existing, false)
	if err != nil {
		return nil, err
	}
	return p.records(b.bridgeDev), nil
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
	p, err := b.configure(ctx, vmID, numNICs, vmCfg, existing, true)
	if err != nil {
		return nil, err
	}
	recs := p.records(b.bridgeDev)
	out := make([]*Handoff, len(p.nics))
	for i, n := range p.nics {
		out[i] = &Handoff{Config: recs[i], Queues: n.dev.Release()}
	}
	return out, nil
}

func (p *vmPlan) records(bridgeDev string) []*types.NetworkConfig {
	out := make([]*types.NetworkConfig, len(p.nics))
	for i, n := range p.nics {
		out[i] = &types.NetworkConfig{
			Tap:       n.name,
			Mac:       net.HardwareAddr(n.mac[:]).String(),
			NumQueues: p.queues,
			QueueSize: p.queueSize,
			Backend:   Backend,
			BridgeDev: bridgeDev,
		}
	}
	return out
}

// plan validates a Config request.
func (b *Bridge) plan(vmID string, numNICs int, vmCfg *types.VMConfig, existing []*types.NetworkConfig, handoff bool) (*vmPlan, error) {
	if err := owner.ValidateVMID(vmID); err != nil {
		return nil, fmt.Errorf("config: %w: %w", ErrInvalidArgument, err)
	}
	if numNICs < 1 || numNICs > owner.MaxNICs {
		return nil, fmt.Errorf("config vm %s: %w: %d NICs, want 1..%d", vmID, ErrInvalidArgument, numNICs, owner.MaxNICs)
	}
	if len(existing) > numNICs {
		return nil, fmt.Errorf("config vm %s: %w: %d existing records for %d NICs", vmID, ErrInvalidArgument, len(existing), numNICs)
	}
	cpu, qsize := 1, DefaultQueueSize
	if vmCfg != nil {
		if vmCfg.CPU < 0 || vmCfg.CPU > tap.MaxQueues {
			return nil, fmt.Errorf("config vm %s: %w: %d CPUs: one queue pair each, and a TAP holds 1..%d", vmID, ErrInvalidArgument, vmCfg.CPU, tap.MaxQueues)
		}
		if vmCfg.CPU > 0 {
			cpu = vmCfg.CPU
		}
		if vmCfg.QueueSize < 0 || vmCfg.QueueSize > maxQueueSize || vmCfg.QueueSize&(vmCfg.QueueSize-1) != 0 {
			return nil, fmt.Errorf("config vm %s: %w: queue size %d, want a power of two up to %d", vmID, ErrInvalidArgument, vmCfg.QueueSize, maxQueueSize)
		}
		if vmCfg.QueueSize > 0 {
			qsize = vmCfg.QueueSize
		}
	}
	p := &vmPlan{
		vmID:      vmID,
		pairs:     cpu,
		queues:    2 * cpu,
		queueSize: qsize,
		mq:        config.MultiQueue(b.conf.Hypervisor, cpu),
		handoff:   handoff,
		nics:      make([]*nicPlan, numNICs),
	}
	for i := range p.nics {
		p.nics[i] = &nicPlan{nic: i}
	}
	seen := make(map[[6]byte]int, len(existing))
	seenTAP := make(map[string]int, len(existing))
	for i, rec := range existing {
		n := p.nics[i]
		if rec == nil {
			return nil, fmt.Errorf("config vm %s: %w: existing record %d is nil", vmID, ErrInvalidArgument, i)
		}
		mac, err := parseGuestMAC(rec.Mac)
		if err != nil {
			return nil, fmt.Errorf("config vm %s: %w: existing record %d: %w", vmID, ErrInvalidArgument, i, err)
		}
		if j, dup := seen[mac]; dup {
			return nil, fmt.Errorf("config vm %s: %w: existing records %d and %d have the same MAC %s", vmID, ErrInvalidArgument, j, i, rec.Mac)
		}
		seen[mac] = i
		if rec.BridgeDev != "" && rec.BridgeDev != b.bridgeDev {
			return nil, fmt.Errorf("config vm %s: %w: existing record %d is for bridge %s, this provider serves %s", vmID, ErrInvalidArgument, i, rec.BridgeDev, b.bridgeDev)
		}
		if rec.Backend != "" && rec.Backend != Backend {
			return nil, fmt.Errorf("config vm %s: %w: existing record %d has backend %q", vmID, ErrInvalidArgument, i, rec.Backend)
		}
		if rec.Tap != "" {
			if err := tap.ValidateName(rec.Tap); err != nil {
				return nil, fmt.Errorf("config vm %s: %w: existing record %d: %w", vmID, ErrInvalidArgument, i, err)
			}
			if j, dup := seenTAP[rec.Tap]; dup {
				return nil, fmt.Errorf("config vm %s: %w: existing records %d and %d have the same TAP %s", vmID, ErrInvalidArgument, j, i, rec.Tap)
			}
			seenTAP[rec.Tap] = i
		}
		n.mac, n.macGiven, n.nameHint = mac, true, rec.Tap
	}
	return p, nil
}

// parseGuestMAC accepts a unicast MAC that is not all zeros and does not
// start with 0xfe, the host-side prefix.
func parseGuestMAC(s string) ([6]byte, error) {
	var m [6]byte
	hw, err := net.ParseMAC(s)
	if err != nil {
		return m, fmt.Errorf("MAC %q: %w", s, err)
	}
	if len(hw) != 6 {
		return m, fmt.Errorf("MAC %q: %d bytes, want 6", s, len(hw))
	}
	switch {
	case hw[0]&1 != 0:
		return m, fmt.Errorf("MAC %q is multicast or broadcast", s)
	case !validUnicast(hw):
		return m, fmt.Errorf("MAC %q is all zeros", s)
	case hw[0] == 0xfe:
		return m, fmt.Errorf("MAC %q starts with fe, reserved for TAP host sides", s)
	}
	copy(m[:], hw)
	return m, nil
}

func (b *Bridge) configure(ctx context.Context, vmID string, numNICs int, vmCfg *types.VMConfig, existing []*types.NetworkConfig, handoff bool) (_ *vmPlan, err error) {
	p, err := b.plan(vmID, numNICs, vmCfg, existing, handoff)
	if err != nil {
		return nil, err
	}
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
	b.at(hookAfterCreate)
	setup = true
	if err := b.setupLinks(ctx, p); err != nil {
		return nil, err
	}
	b.at(hookAfterSetup)
	if !handoff {
		if err := p.persist(b.at); err != nil {
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
// decides per NIC whether to adopt the TAP found or create one, and deletes
// TAPs of the VM that must go first (doomed, made for another hypervisor
// profile, beyond numNICs).
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
	b.mu.Lock()
	checked := index == b.checked
	b.mu.Unlock()
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
	res, _ := b.conn.Exec(ctx, &batch)
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
		b.mu.Lock()
		b.checked = p.bridge.Index
		b.mu.Unlock()
	}
	res = res[first:]
	var doomed []uint32
	recorded := len(p.nics)
	for i, n := range p.nics {
		switch err := res[i]; {
		case errors.Is(err, unix.ENODEV):
			continue
		case err != nil:
			return fmt.Errorf("config vm %s: %w", p.vmID, err)
		}
		var tag owner.Tag
		if !b.ours(&n.link, &tag) || tag.VMID != p.vmID || tag.NIC != n.nic {
			return fmt.Errorf("config vm %s nic %d: %w: alternative name %s is held by %s, which is not this instance's TAP for it",
				p.vmID, n.nic, ErrNameCollision, owner.AltName(b.inst, p.vmID, n.nic), n.link.Name)
		}
		recorded = max(recorded, tag.NICs)
		if n.link.Group == b.group || n.link.Tun.MultiQueue != p.mq || p.handoff == n.link.Tun.Persist {
			// Doomed, or made for other VMM flags: replace it, unless a
			// VMM still holds it.
			if q := n.link.AttachedQueues(); q > 0 && n.link.Group != b.group {
				return fmt.Errorf("config vm %s nic %d: TAP %s is open (%d queues) with other flags (multi-queue %v, persistent %v)",
					p.vmID, n.nic, n.link.Name, q, n.link.Tun.MultiQueue, n.link.Tun.Persist)
			}
			doomed = append(doomed, n.link.Index)
			if n.link.Group != b.group {
				// The same NIC of the same VM, remade with other flags:
				// keep its guest MAC and name, as an adopted TAP would.
				if !n.macGiven {
					n.mac, n.macGiven = tag.MAC, true
				}
				if n.nameHint == "" {
					n.nameHint = n.link.Name
				}
			}
			continue
		}
		if p.handoff {
			// A handed-off TAP lives only while its queue files are open,
			// so this one is held by a VMM (or the caller); more files
			// would change its queue count, and there are none to return.
			return fmt.Errorf("config vm %s nic %d: TAP %s was handed off and is still open (%d queues): close its queue files first",
				p.vmID, n.nic, n.link.Name, n.link.AttachedQueues())
		}
		n.adopted, n.hasAlt = true, true
		n.name, n.index, n.created, n.oldMAC = n.link.Name, n.link.Index, tag.Created, tag.MAC
		if !n.macGiven {
			n.mac = tag.MAC
		}
	}
	if recorded > len(p.nics) {
		// An earlier Config gave the VM more NICs: the extra ones go.
		extra, err := b.lookupNICs(ctx, p.vmID, len(p.nics), recorded)
		if err != nil {
			return fmt.Errorf("config vm %s: %w", p.vmID, err)
		}
		doomed = append(doomed, extra...)
	}
	if len(doomed) > 0 {
		if err := b.deleteIndexes(ctx, doomed); err != nil {
			return fmt.Errorf("config vm %s: delete stale TAPs: %w", p.vmID, err)
		}
	}
	return nil
}

// create makes the TAPs of the NICs that have none, trying each name
// candidate in turn. The TAPs stay non-persistent, held by their files,
// until persist.
func (b *Bridge) create(ctx context.Context, p *vmPlan) error {
	queues := 1
	if p.handoff {
		queues = p.pairs
		if !p.mq {
			queues = 1
		}
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
			if b.adoptByName(ctx, p, n, name) {
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

func candidates(vmID string, n *nicPlan) []string {
	c := make([]string, 0, owner.Candidates+1)
	for k := range owner.Candidates {
		c = append(c, owner.Name(vmID, n.nic, k))
	}
	if n.nameHint != "" {
		if i := slices.Index(c, n.nameHint); i > 0 {
			c = slices.Insert(slices.Delete(c, i, i+1), 0, n.nameHint)
		}
	}
	return c
}

func (b *Bridge) adoptByName(ctx context.Context, p *vmPlan, n *nicPlan, name string) bool {
	l, err := b.conn.LinkByName(ctx, name)
	if err != nil {
		return false
	}
	var tag owner.Tag
	// Handoff never adopts: see probe.
	if p.handoff || !b.ours(l, &tag) || tag.VMID != p.vmID || tag.NIC != n.nic || l.Group == b.group ||
		l.Tun.MultiQueue != p.mq || l.Tun.Persist == p.handoff {
		return false
	}
	n.link = *l
	n.adopted = true
	n.name, n.index, n.created, n.oldMAC = l.Name, l.Index, tag.Created, tag.MAC
	if !n.macGiven {
		n.mac = tag.MAC
	}
	return true
}

// setupLinks configures every NIC, except bringing it up, in one pipelined
// batch. The link stays down until bringUp, after persist has closed the
// new TAPs' files: closing a TAP's last queue drops its carrier, which on a
// running bridge port costs a port-state change, and on a down one nothing.
func (b *Bridge) setupLinks(ctx context.Context, p *vmPlan) error {
	var batch rtnl.Batch
	// fdbNew is the request adding a new NIC's FDB entry exclusively, -1
	// for adopted NICs.
	type span struct{ nic, first, n, fdbNew int }
	spans := make([]span, 0, len(p.nics))
	txq := b.conf.TxQueueLen
	learning := false
	port := rtnl.BridgePort{Learning: &learning, Isolated: &b.conf.Isolated, Locked: &b.conf.Locked}
	for _, n := range p.nics {
		first := batch.Len()
		tag := owner.Tag{
			Instance: b.inst, VMID: p.vmID, NIC: n.nic, NICs: len(p.nics), MAC: n.mac,
			Queues: p.queues, QueueSize: p.queueSize, Hypervisor: b.conf.Hypervisor, Created: n.created,
		}
		alias := tag.String()
		// Before the link is up: the qdisc (else one per TX queue) and
		// address generation (else a link-local address). The MTU must
		// match the bridge's before enslaving, or the bridge lowers its own:
		// one message does it, since the kernel applies the address and MTU
		// before the master (net/core/rtnetlink.c: do_setlink).
		batch.SetNoQueue(n.index)
		batch.SetLink(&rtnl.LinkChange{
			Index: n.index, MTU: p.bridge.MTU, TxQueueLen: &txq, Address: hostMAC(n.mac),
			AddrGenModeNone: true, Alias: &alias, Master: &p.bridge.Index,
		})
		if !n.hasAlt {
			batch.AddAltName(n.index, owner.AltName(b.inst, p.vmID, n.nic))
		}
		// Port settings need the port to exist: a separate message.
		batch.SetBridgePort(n.index, &port)
		fdbNew := -1
		if n.adopted && n.oldMAC == n.mac {
			// Our own entry: restore it (on this port, static) whatever
			// happened to it.
			batch.AddFDB(n.index, net.HardwareAddr(n.mac[:]))
		} else {
			if n.adopted {
				batch.DelFDB(n.index, net.HardwareAddr(n.oldMAC[:]))
			}
			// A new MAC must be new to the bridge: never steal another
			// port's entry.
			fdbNew = batch.Len()
			batch.AddFDBExclusive(n.index, net.HardwareAddr(n.mac[:]))
		}
		spans = append(spans, span{n.nic, first, batch.Len() - first, fdbNew})
	}
	res, err := b.conn.Exec(ctx, &batch)
	if err == nil {
		return nil
	}
	// Report the first failure of each NIC: the requests after it fail
	// because of it (no port settings without a master, and so on).
	var errs []error
	for _, s := range spans {
		for i, e := range res[s.first : s.first+s.n] {
			if e == nil {
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

// persist makes the new TAPs persistent and closes their files. If one
// fails, those already made persistent are made transient again, so that
// rollback's close destroys them all. at is the Bridge's test hook.
func (p *vmPlan) persist(at func(string)) error {
	for i, n := range p.nics {
		if n.dev == nil {
			continue
		}
		if err := n.dev.SetPersist(true); err != nil {
			for _, m := range p.nics[:i] {
				if m.dev != nil {
					_ = m.dev.SetPersist(false) // best effort; rollback deletes them anyway
				}
			}
			return err
		}
		n.persisted = true
		at(hookPersisted)
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
			_ = n.dev.Close() // closing a TUN file reports no useful error
			n.dev = nil
		}
		if n.persisted {
			made = append(made, n.index)
		}
	}
	if err := b.deleteIndexes(context.WithoutCancel(ctx), made); err != nil {
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
	b.mu.Lock()
	defer b.mu.Unlock()
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
	b.mu.Lock()
	b.creating[vmID]++
	b.mu.Unlock()
}

func (b *Bridge) endCreate(vmID string) {
	b.mu.Lock()
	if b.creating[vmID]--; b.creating[vmID] <= 0 {
		delete(b.creating, vmID)
	}
	b.mu.Unlock()
}

// remember records the VM's TAPs so that Delete finds them without probing.
func (b *Bridge) remember(p *vmPlan) {
	if p.handoff {
		return // transient: the VMM's exit deletes them
	}
	indexes := make([]uint32, len(p.nics))
	for i, n := range p.nics {
		indexes[i] = n.index
	}
	b.mu.Lock()
	b.known[p.vmID] = indexes
	b.mu.Unlock()
}
