package bridge

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/internal/netns"
	"github.com/tapbridge/tapbridge/lock/flock"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

var _ network.Network = (*Bridge)(nil)

// settingsFile is where New records what a Bridge-less GCModule needs.
const settingsFile = "bridge.json"

// Bridge is the TAP-on-bridge network provider of one instance.
//
// Its methods are safe for concurrent use. It owns a netlink socket and, if
// Config.NetnsPath is set, an fd of that namespace; Close releases them.
type Bridge struct {
	ops // conn, inst, group

	conf      config.Config
	bridgeDev string
	nsFD      int // owned; 0 for the caller's namespace

	// inflight is held shared by every Config; a GC that must prove that
	// no Config is in flight takes inflightEx (another open file
	// description of the same lock file) exclusively.
	inflight   *flock.Lock
	inflightEx *flock.Lock
	gcLock     *flock.Lock

	vms vmLocks

	mu       sync.Mutex
	pinned   uint32              // ifindex of the bridge whose MAC was pinned; 0: Open, pin nothing
	checked  uint32              // ifindex of the bridge probe last checked (a bridge, re-pinned)
	tun      []*os.File          // /dev/net/tun files opened in nsFD, not yet used (tunFiles)
	known    map[string][]uint32 // ifindexes of the TAPs this Bridge made, by VM
	creating map[string]int      // VMs whose Config is running here
	reaper   *reaper             // nil when deletion is synchronous
	last     ReaperStats         // of the reaper StopReaper stopped last

	// createTAP is tap.Create; tests replace it to inject failures.
	createTAP func(name string, o *tap.Options) (*tap.Device, error)
	now       func() time.Time
}

// settings is the part of a Config that GCModule needs without a Bridge.
type settings struct {
	NetnsPath string        `json:"netns_path,omitempty"`
	GCGrace   time.Duration `json:"gc_grace"`
	BridgeDev string        `json:"bridge_dev"`
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
	b := &Bridge{
		ops:       ops{inst: owner.InstanceOf(c.RootDir)},
		conf:      c,
		bridgeDev: bridgeDev,
		known:     make(map[string][]uint32),
		creating:  make(map[string]int),
		createTAP: tap.Create,
		now:       time.Now,
	}
	b.group = b.inst.Group()
	locks := filepath.Join(c.RootDir, "locks")
	b.inflight = flock.New(filepath.Join(locks, "inflight.lock"), flock.Shared)
	b.inflightEx = flock.New(filepath.Join(locks, "inflight.lock"), flock.Exclusive)
	b.gcLock = flock.New(filepath.Join(locks, "gc.lock"), flock.Exclusive)

	if c.NetnsPath != "" {
		fd, err := netns.Open(c.NetnsPath)
		if err != nil {
			return nil, fmt.Errorf("bridge: network namespace: %w", err)
		}
		b.nsFD = fd
	}
	conn, err := rtnl.Dial(&rtnl.Config{NetNS: b.nsFD})
	if err != nil {
		b.closeNS()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b.conn = conn
	check := b.setup
	if !setup {
		check = func(ctx context.Context) error {
			_, err := b.bridgeLink(ctx)
			return err
		}
	}
	if err := check(context.Background()); err != nil {
		b.conn.Close()
		b.closeNS()
		return nil, err
	}
	return b, nil
}

func (b *Bridge) setup(ctx context.Context) error {
	br, err := b.bridgeLink(ctx)
	if err != nil {
		return err
	}
	if err := b.pinMAC(ctx, br); err != nil {
		return err
	}
	b.pinned = br.Index
	if err := os.MkdirAll(b.conf.RootDir, 0o700); err != nil {
		return fmt.Errorf("bridge: root dir: %w", err)
	}
	s, err := json.Marshal(settings{NetnsPath: b.conf.NetnsPath, GCGrace: b.conf.GCGrace, BridgeDev: b.bridgeDev})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(b.conf.RootDir, settingsFile), s)
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
	if err := b.conn.SetLink(ctx, &rtnl.LinkChange{Index: br.Index, Address: mac}); err != nil {
		return fmt.Errorf("bridge %s: pin MAC: %w", b.bridgeDev, err)
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
	b.mu.Lock()
	stale := b.pinned != 0 && b.pinned != br.Index
	b.mu.Unlock()
	if !stale {
		return nil
	}
	if err := b.pinMAC(ctx, br); err != nil {
		return err
	}
	b.mu.Lock()
	b.pinned = br.Index
	b.mu.Unlock()
	return nil
}

// bridgeLink looks the bridge up and checks that it is one.
func (b *Bridge) bridgeLink(ctx context.Context) (*rtnl.Link, error) {
	br, err := b.conn.LinkByName(ctx, b.bridgeDev)
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

// Close stops the reaper (finishing queued deletions) and releases the
// Bridge's socket and namespace fd. The Bridge must not be used afterwards.
func (b *Bridge) Close() error {
	err := b.StopReaper(context.Background())
	err = errors.Join(err, b.conn.Close())
	b.mu.Lock()
	for _, f := range b.tun {
		err = errors.Join(err, f.Close())
	}
	b.tun = nil
	b.mu.Unlock()
	b.closeNS()
	return err
}

func (b *Bridge) closeNS() {
	if b.nsFD > 0 {
		unix.Close(b.nsFD)
		b.nsFD = 0
	}
}

// vmLocks serializes the calls for one VM ID.
type vmLocks struct {
	mu sync.Mutex
	m  map[string]*vmLock
}

type vmLock struct {
	mu   sync.Mutex
	refs int
}

func (l *vmLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*vmLock)
	}
	v := l.m[id]
	if v == nil {
		v = &vmLock{}
		l.m[id] = v
	}
	v.refs++
	l.mu.Unlock()
	v.mu.Lock()
	return func() {
		v.mu.Unlock()
		l.mu.Lock()
		if v.refs--; v.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// GCModule returns the garbage-collection module of the instance rooted at
// rootDir, for callers without a Bridge. It does no I/O until the cycle
// runs; then it uses the namespace and grace period New recorded in
// rootDir, or the caller's namespace and DefaultGCGrace if there is no
// record.
func GCModule(rootDir string) gc.Module[bridgeSnapshot] {
	c := (&config.Config{RootDir: rootDir}).WithDefaults()
	return newGCModule(c, nil)
}

// GCModuleConfig is GCModule for conf.RootDir with conf's NetnsPath and
// GCGrace, when set (non-empty, non-zero), taking precedence over what New
// recorded. Other fields are ignored. Like GCModule it does no I/O until the
// cycle runs.
func GCModuleConfig(conf *config.Config) gc.Module[bridgeSnapshot] {
	if conf == nil {
		conf = &config.Config{}
	}
	c := (&config.Config{RootDir: conf.RootDir}).WithDefaults()
	m := newGCModule(c, nil)
	m.Locker.(*gcModule).override = config.Config{NetnsPath: conf.NetnsPath, GCGrace: conf.GCGrace}
	return m
}

// RegisterGC registers the Bridge's GC module, with its own settings and
// its knowledge of the Configs in flight in this process, on orch.
func (b *Bridge) RegisterGC(orch *gc.Orchestrator) {
	gc.Register(orch, newGCModule(b.conf, b))
}

func validUnicast(mac net.HardwareAddr) bool {
	if len(mac) != 6 || mac[0]&1 != 0 {
		return false
	}
	for _, c := range mac {
		if c != 0 {
			return true
		}
	}
	return false
}

// randomMAC returns a random locally administered unicast MAC whose first
// byte is not 0xfe (reserved for TAP host sides).
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac) // crypto/rand.Read never fails
	mac[0] = mac[0]&0xfc | 0x02
	if mac[0] == 0xfe {
		mac[0] = 0xfa
	}
	return mac
}

// hostMAC is the TAP's own MAC for guest MAC g: 0xfe and g's last five
// bytes. It differs from g (whose first byte is never 0xfe) and, being
// high, never becomes the bridge's MAC.
func hostMAC(g [6]byte) net.HardwareAddr {
	return net.HardwareAddr{0xfe, g[1], g[2], g[3], g[4], g[5]}
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
