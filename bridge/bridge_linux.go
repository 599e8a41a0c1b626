package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/lock/flock"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

var _ network.Network = (*Bridge)(nil)

// Bridge is the TAP-on-bridge network provider of one instance.
//
// Its methods are safe for concurrent use. It owns a netlink socket and, if
// Config.NetnsPath is set, an fd of that namespace; Close releases them and
// waits for the background deletion.
type Bridge struct {
	ops // conn, ownership, hook

	conf      config.Config
	bridgeDev string
	target    target
	nsFD      int // owned; 0 for the caller's namespace

	// inflight is held shared by every Config; a GC that must prove that
	// no Config is in flight takes inflightEx (another open file
	// description of the same lock file) exclusively.
	inflight   *flock.Lock
	inflightEx *flock.Lock

	vms    vmLocks // serializes the calls for one VM
	reaper reaper  // the background deletion

	brMu    sync.Mutex
	pinned  uint32 // guarded by brMu: ifindex of the bridge whose MAC was pinned; 0: Open, pin nothing
	checked uint32 // guarded by brMu: ifindex of the bridge probe last checked (a bridge, re-pinned)

	tunMu sync.Mutex
	tun   []*os.File // guarded by tunMu: /dev/net/tun files opened in nsFD, not yet used (tunFiles)

	vmMu     sync.Mutex
	known    map[string][]nicRef // guarded by vmMu: the TAPs this Bridge made, by VM
	creating map[string]int      // guarded by vmMu: VMs whose Config is running here

	// Seams, set once by New; tests replace them before use.
	createTAP createFunc
	wrap      wrapFunc // nil: conns are used as dialled
	now       func() time.Time
}

// New returns the provider for the existing bridge bridgeDev.
//
// It fails with an error wrapping ErrBridgeNotFound (and unix.ENODEV) if
// there is no such device, ErrNotBridge if it is not a bridge, and
// ErrInvalidArgument for a nil conf, an invalid device name or an invalid
// setting. It creates conf.RootDir (0700) and records there the settings a
// Bridge-less GCModule needs.
//
// New pins the bridge's MAC: it sets it to its current value, which makes
// the kernel treat it as user-set and stop replacing it with the lowest MAC
// of the ports (if the bridge has no valid MAC at all, as happens after its
// last port left, it gets a random locally administered one).
func New(conf *config.Config, bridgeDev string) (*Bridge, error) {
	return open(conf, bridgeDev, true)
}

// Open is New for tools that only look (List, Inspect, Verify) or delete:
// it checks the bridge the same way but changes nothing on the host. It
// does not pin the bridge's MAC, create RootDir or record settings, so a
// GCModule or Cleanup keeps using what New last recorded. Config through an
// opened Bridge works, without the MAC pinning New provides.
func Open(conf *config.Config, bridgeDev string) (*Bridge, error) {
	return open(conf, bridgeDev, false)
}

func open(conf *config.Config, bridgeDev string, setup bool) (*Bridge, error) {
	t, err := newTarget(conf, bridgeDev)
	if err != nil {
		return nil, err
	}
	c := conf.WithDefaults()
	inst := owner.InstanceOf(c.RootDir)
	b := &Bridge{
		ops:       ops{ownership: ownership{inst: inst, group: inst.Group()}},
		conf:      c,
		bridgeDev: bridgeDev,
		target:    *t,
		known:     make(map[string][]nicRef),
		creating:  make(map[string]int),
		createTAP: tap.Create,
		now:       time.Now,
	}
	b.reaper.init(&c)
	locks := filepath.Join(c.RootDir, "locks")
	b.inflight = flock.New(filepath.Join(locks, "inflight.lock"), flock.Shared)
	b.inflightEx = flock.New(filepath.Join(locks, "inflight.lock"), flock.Exclusive)

	if c.NetnsPath != "" {
		fd, err := netns.Open(c.NetnsPath)
		if err != nil {
			return nil, fmt.Errorf("bridge: network namespace: %w", err)
		}
		b.nsFD = fd
	}
	b.conn, err = dialConn(b.nsFD, nil)
	if err != nil {
		b.closeNS()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	br, err := b.bridgeLink(context.Background())
	if err == nil && setup {
		err = b.pinMAC(context.Background(), br)
		if err == nil {
			b.pinned = br.Index
			err = record(&c, bridgeDev)
		}
	}
	if err != nil {
		b.conn.Close()
		b.closeNS()
		return nil, err
	}
	return b, nil
}

// pinMAC sets the bridge's MAC to its current value, which the kernel then
// treats as user-set (NET_ADDR_SET: br_stp_recalculate_bridge_id stops
// replacing it with the lowest port MAC), or to a random locally
// administered one if it has no valid MAC.
func (b *Bridge) pinMAC(ctx context.Context, br *rtnl.Link) error {
	mac := br.Address
	if len(mac) != 6 || !validUnicast(mac) {
		mac = randomMAC()
	}
	var batch rtnl.Batch
	batch.SetLink(&rtnl.LinkChange{Index: br.Index, Address: mac})
	if res, _ := b.conn.Exec(ctx, &batch); res[0] != nil {
		return fmt.Errorf("bridge %s: pin MAC: %w", b.bridgeDev, res[0])
	}
	return nil
}

// repin pins the MAC of a bridge that was deleted and made again since New
// pinned the old one: the new device (another ifindex) has a random MAC
// that is not user-set, so the kernel would replace it with the lowest MAC
// of its ports, a TAP's 0xfe host-side MAC, and change it again as TAPs
// come and go, moving every guest's gateway MAC. A Bridge made by Open pins
// nothing.
func (b *Bridge) repin(ctx context.Context, br *rtnl.Link) error {
	b.brMu.Lock()
	stale := b.pinned != 0 && b.pinned != br.Index
	b.brMu.Unlock()
	if !stale {
		return nil
	}
	if err := b.pinMAC(ctx, br); err != nil {
		return err
	}
	b.brMu.Lock()
	b.pinned = br.Index
	b.brMu.Unlock()
	return nil
}

// bridgeLink looks the bridge up and checks that it is one.
func (b *Bridge) bridgeLink(ctx context.Context) (*rtnl.Link, error) {
	br, err := getLink(ctx, b.conn, b.bridgeDev)
	if err != nil {
		return nil, bridgeErr(b.bridgeDev, err)
	}
	if br.Kind != "bridge" {
		return nil, notBridgeErr(br)
	}
	return br, nil
}

func bridgeErr(dev string, err error) error {
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("bridge %s: %w: %w", dev, ErrBridgeNotFound, err)
	}
	return fmt.Errorf("bridge %s: %w", dev, err)
}

func notBridgeErr(l *rtnl.Link) error {
	kind := l.Kind
	if kind == "" {
		kind = "a device without a kind"
	}
	return fmt.Errorf("bridge %s: %w: it is %s", l.Name, ErrNotBridge, kind)
}

// Type returns "bridge".
func (b *Bridge) Type() string { return Type }

// Close deletes the TAPs Delete left to the background deletion and waits
// for it, then releases the Bridge's socket and namespace fd. It returns
// the error of that last deletion, if any. The Bridge must not be used
// afterwards. A process that exits without Close leaves its last Deletes'
// TAPs doomed (tagged, in the reserved group, carrying no traffic) for GC.
func (b *Bridge) Close() error {
	err := b.reaper.stop(context.Background(), b)
	err = errors.Join(err, b.conn.Close())
	b.tunMu.Lock()
	for _, f := range b.tun {
		err = errors.Join(err, f.Close())
	}
	b.tun = nil
	b.tunMu.Unlock()
	b.closeNS()
	return err
}

func (b *Bridge) closeNS() {
	if b.nsFD > 0 {
		unix.Close(b.nsFD)
		b.nsFD = 0
	}
}
