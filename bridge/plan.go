package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
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

// target is what a Config request is checked against: the provider's
// settings, not the kernel's state.
type target struct {
	bridgeDev  string
	netnsPath  string
	hypervisor string     // a config profile, never empty
	guard      guard.Mode // the instance's guard mode, never empty
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
	mode      guard.Mode // the NICs' guard mode, never empty
	staged    bool       // Stage: no FDB entry, port blocked, tag marked
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
	link      rtnl.Link // what the probe found under the NIC's alternative name

	// The NIC's bindings (guard.Policy Addrs and Gateway): from its record
	// when boundGiven, else, for an adopted TAP, those its filter holds.
	bound      []netip.Prefix
	gateway    netip.Addr
	boundGiven bool
	// oldProg is an adopted TAP's filter as found (nil: none), for
	// restoreAdopted.
	oldProg []rtnl.SockFilter
}

// newPlan validates a Config request against t. Every error wraps
// ErrInvalidArgument and names the VM.
func newPlan(t *target, vmID string, numNICs int, vmCfg *types.VMConfig, existing []*types.NetworkConfig, handoff bool) (*vmPlan, error) {
	if err := owner.ValidateVMID(vmID); err != nil {
		return nil, fmt.Errorf("config: %w: %w", ErrInvalidArgument, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("config vm %s: %w: %s", vmID, ErrInvalidArgument, fmt.Sprintf(format, args...))
	}
	if numNICs < 1 || numNICs > owner.MaxNICs {
		return nil, bad("%d NICs, want 1..%d", numNICs, owner.MaxNICs)
	}
	if len(existing) > numNICs {
		return nil, bad("%d existing records for %d NICs", len(existing), numNICs)
	}
	cpu, qsize, mode := 1, DefaultQueueSize, t.guard
	if vmCfg != nil {
		if vmCfg.Guard != "" {
			m, err := guard.ParseMode(vmCfg.Guard)
			if err != nil {
				return nil, bad("%v", err)
			}
			mode = m
		}
		if vmCfg.CPU < 0 || vmCfg.CPU > tap.MaxQueues {
			return nil, bad("%d CPUs: one queue pair each, and a TAP holds 1..%d", vmCfg.CPU, tap.MaxQueues)
		}
		if vmCfg.CPU > 0 {
			cpu = vmCfg.CPU
		}
		if vmCfg.QueueSize < 0 || vmCfg.QueueSize > maxQueueSize || vmCfg.QueueSize&(vmCfg.QueueSize-1) != 0 {
			return nil, bad("queue size %d, want a power of two up to %d", vmCfg.QueueSize, maxQueueSize)
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
		mq:        config.MultiQueue(t.hypervisor, cpu),
		handoff:   handoff,
		mode:      mode,
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
			return nil, bad("existing record %d is nil", i)
		}
		mac, err := parseGuestMAC(rec.Mac)
		if err != nil {
			return nil, bad("existing record %d: %v", i, err)
		}
		if j, dup := seen[mac]; dup {
			return nil, bad("existing records %d and %d have the same MAC %s", j, i, rec.Mac)
		}
		seen[mac] = i
		switch {
		case rec.BridgeDev != "" && rec.BridgeDev != t.bridgeDev:
			return nil, bad("existing record %d is for bridge %s, this provider serves %s", i, rec.BridgeDev, t.bridgeDev)
		case rec.Backend != "" && rec.Backend != Backend:
			return nil, bad("existing record %d has backend %q", i, rec.Backend)
		case rec.NetnsPath != "" && rec.NetnsPath != t.netnsPath:
			return nil, bad("existing record %d is for network namespace %s, this provider works in %s", i, rec.NetnsPath, nsName(t.netnsPath))
		}
		if rec.Tap != "" {
			if err := tap.ValidateName(rec.Tap); err != nil {
				return nil, bad("existing record %d: %v", i, err)
			}
			if j, dup := seenTAP[rec.Tap]; dup {
				return nil, bad("existing records %d and %d have the same TAP %s", j, i, rec.Tap)
			}
			seenTAP[rec.Tap] = i
		}
		n.mac, n.macGiven, n.nameHint = mac, true, rec.Tap
		if rec.Network != nil {
			if n.bound, n.gateway, err = recordBindings(rec.Network); err != nil {
				return nil, bad("existing record %d: %v", i, err)
			}
			n.boundGiven = true
			if err := n.policy(mode).Validate(); err != nil {
				return nil, bad("existing record %d: %v", i, err)
			}
		}
	}
	return p, nil
}

// nsName describes a namespace path for messages.
func nsName(path string) string {
	if path == "" {
		return "the caller's"
	}
	return path
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

// candidates returns the TAP names to try for n, in order: the record's
// name first when it is one of the NIC's candidates.
func candidates(vmID string, n *nicPlan) []string {
	c := make([]string, 0, owner.Candidates)
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

// records returns the NICs' records, in NIC order.
func (p *vmPlan) records(t *target) []*types.NetworkConfig {
	out := make([]*types.NetworkConfig, len(p.nics))
	for i, n := range p.nics {
		out[i] = &types.NetworkConfig{
			Tap:       n.name,
			Mac:       net.HardwareAddr(n.mac[:]).String(),
			NumQueues: p.queues,
			QueueSize: p.queueSize,
			Backend:   Backend,
			BridgeDev: t.bridgeDev,
			NetnsPath: t.netnsPath,
			Network:   networkOf(n.policy(p.mode)),
		}
	}
	return out
}

// tag is the owner tag Config writes on NIC n.
func (p *vmPlan) tag(inst owner.Instance, hypervisor string, n *nicPlan) owner.Tag {
	t := owner.Tag{
		Instance: inst, VMID: p.vmID, NIC: n.nic, NICs: len(p.nics), MAC: n.mac,
		Queues: p.queues, QueueSize: p.queueSize, Hypervisor: hypervisor, Created: n.created,
		Staged: p.staged,
	}
	if p.mode != guard.ModeL2 {
		t.Guard = string(p.mode)
	}
	return t
}

// CheckConfig reports whether a Bridge made by New(conf, bridgeDev) would
// accept Config(ctx, vmID, numNICs, vmCfg, existing...), judging only the
// arguments: it makes no system call and needs no Bridge, for callers (the
// CLI) that must refuse a bad request before New touches the host. The
// error is the one New or Config would return, wrapping
// ErrInvalidArgument; nil does not promise that Config succeeds.
func CheckConfig(conf *config.Config, bridgeDev, vmID string, numNICs int, vmCfg *types.VMConfig, existing ...*types.NetworkConfig) error {
	t, err := newTarget(conf, bridgeDev)
	if err != nil {
		return err
	}
	_, err = newPlan(t, vmID, numNICs, vmCfg, existing, false)
	return err
}

// newTarget validates what New is given and returns the target Config
// requests are checked against.
func newTarget(conf *config.Config, bridgeDev string) (*target, error) {
	if conf == nil {
		return nil, fmt.Errorf("bridge: %w: nil config", ErrInvalidArgument)
	}
	if err := tap.ValidateName(bridgeDev); err != nil {
		return nil, fmt.Errorf("bridge: %w: bridge device: %w", ErrInvalidArgument, err)
	}
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("bridge: %w: %w", ErrInvalidArgument, err)
	}
	c := conf.WithDefaults()
	return &target{bridgeDev: bridgeDev, netnsPath: c.NetnsPath, hypervisor: c.Hypervisor, guard: c.Guard}, nil
}
