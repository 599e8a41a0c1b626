package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"

	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/types"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// instanceFlags are the flags that name an instance and its namespace.
type instanceFlags struct {
	root  string
	netns string
}

func addInstanceFlags(f *cmdFlags) *instanceFlags {
	i := &instanceFlags{}
	f.StringVar(&i.root, "root", config.DefaultRootDir,
		"the instance's root `DIR` (locks, recorded settings); its path is the owner identity in every TAP")
	f.StringVar(&i.netns, "netns", "",
		"network namespace `NAME|PATH`: a NAME in /run/netns, or a path (default: the one recorded in the root dir, else the caller's)")
	return i
}

// netnsPath turns a --netns value into a path: a value with a '/' is a
// path, anything else a name under /run/netns.
func netnsPath(v string) string {
	if v == "" || strings.Contains(v, "/") {
		return v
	}
	return "/run/netns/" + v
}

// instance is an instance's settings as the command line and the root
// directory give them.
type instance struct {
	conf      *config.Config
	bridgeDev string // recorded bridge, "" if none
	recorded  bool   // the root dir holds settings recorded by New
	netnsSet  bool   // --netns was given
	recNetns  string // the recorded namespace path
}

// load reads what New recorded in the root dir, if anything, and applies
// --netns over it.
func (i *instanceFlags) load(f *cmdFlags) (*instance, error) {
	return loadInstance(i.root, i.netns, f.isSet("netns"))
}

// loadInstance is load for root and, when netnsSet, the --netns value
// netns.
func loadInstance(root, netns string, netnsSet bool) (*instance, error) {
	in := &instance{netnsSet: netnsSet}
	conf, dev, err := bridge.Recorded(root)
	switch {
	case err == nil:
		in.conf, in.bridgeDev, in.recorded, in.recNetns = conf, dev, true, conf.NetnsPath
	case errors.Is(err, fs.ErrNotExist):
		c := (&config.Config{RootDir: root}).WithDefaults()
		in.conf = &c
	default:
		return nil, err
	}
	if in.netnsSet {
		in.conf.NetnsPath = netnsPath(netns)
	}
	return in, nil
}

// where describes the namespace for messages.
func where(c *config.Config) string {
	if c.NetnsPath == "" {
		return "the caller's network namespace"
	}
	return "network namespace " + c.NetnsPath
}

func validVMID(flagName, id string) error {
	if id == "" {
		return usagef("--%s is required", flagName)
	}
	if err := owner.ValidateVMID(id); err != nil {
		return usagef("--%s: %v", flagName, err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openBridge makes the Bridge for ls and verify: the bridge from --bridge
// or the recorded one.
func openBridge(in *instance, dev string) (*bridge.Bridge, error) {
	if dev == "" {
		dev = in.bridgeDev
	}
	if dev == "" {
		return nil, usagef("--bridge is required: nothing is recorded in %s", in.conf.RootDir)
	}
	// Open, not New: looking changes nothing (no MAC pinning, no record).
	b, err := bridge.Open(in.conf, dev)
	if errors.Is(err, bridge.ErrBridgeNotFound) {
		return nil, fmt.Errorf("bridge %s does not exist in %s (any TAPs left are off the bridge; 'tapbridge down' removes them)", dev, where(in.conf))
	}
	return b, err
}

func runUp(ctx context.Context, e *env, args []string) int {
	f := newFlags("up", "up --bridge BR --vm ID [flags]",
		`Create the TAPs of VM ID, one per NIC, on the existing bridge BR, and print
them: TAP name, guest MAC, virtio queues and queue size. For a VM whose TAPs
exist, check and repair them and print the same records (idempotent). Give
the VMM the TAP names and MACs; it must open each TAP with vnet_hdr, and
multi-queue as the --hypervisor profile says (more than one queue pair, except
firecracker which never does).`)
	dev := f.String("bridge", "", "the existing bridge `BR` to put the TAPs on (required)")
	vm := f.String("vm", "", "the VM `ID`: 1 to 64 letters, digits, '.', '_' or '-' (required)")
	nics := f.Int("nics", 1, "number of NICs `N`, 1 to 16")
	cpus := f.Int("cpus", 1, "vCPUs `C`: one virtio queue pair each")
	qsize := f.Int("queue-size", 0, "virtio queue size `Q`, a power of two (0: 512)")
	hv := f.String("hypervisor", config.CloudHypervisor, "the VMM `NAME` that opens the TAPs: cloud-hypervisor, firecracker or qemu")
	var macs stringList
	f.Var(&macs, "mac", "guest `MAC` of the next NIC, to recover a VM with its old MACs (repeat, one per NIC)")
	grace := f.Duration("gc-grace", 0, "the instance's GC grace `DURATION`, recorded for gc (0: keep the recorded one, else 1m; negative: none)")
	asJSON := f.Bool("json", false, "print a JSON array of NetworkConfig objects")
	printVMM := f.String("print", "", printFlagUsage)
	guardMode := f.String("guard", "", guardFlagUsage)
	staged := f.Bool("staged", false, "stage the NICs for a live migration's destination: made and guarded, but no FDB entry and not forwarding until 'tapbridge activate'")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		switch {
		case *dev == "":
			return usagef("--bridge is required")
		case *vm == "":
			return usagef("--vm is required")
		}
		if err := checkPrint(*printVMM, *hv, *cpus, *qsize, *asJSON); err != nil {
			return err
		}
		existing := make([]*types.NetworkConfig, len(macs))
		for i, m := range macs {
			existing[i] = &types.NetworkConfig{Mac: m}
		}
		in, err := inst.load(f)
		if err != nil {
			return err
		}
		in.conf.Hypervisor = *hv
		if *grace != 0 {
			in.conf.GCGrace = *grace
		}
		if _, err := guard.ParseMode(*guardMode); err != nil {
			return usagef("--guard: %v", err)
		}
		vmCfg := &types.VMConfig{CPU: *cpus, QueueSize: *qsize, Guard: *guardMode}
		// The library's own checks, before New changes anything.
		if err := bridge.CheckConfig(in.conf, *dev, *vm, *nics, vmCfg, existing...); err != nil {
			return err
		}
		b, err := bridge.New(in.conf, *dev)
		if errors.Is(err, bridge.ErrBridgeNotFound) {
			return fmt.Errorf("bridge %s does not exist in %s", *dev, where(in.conf))
		}
		if err != nil {
			return err
		}
		configure := b.Config
		if *staged {
			configure = b.Stage
		}
		recs, err := configure(ctx, *vm, *nics, vmCfg, existing...)
		if cerr := b.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if *printVMM != "" {
			return printLaunch(e.stdout, *printVMM, *hv, recs)
		}
		if *asJSON {
			return writeJSON(e.stdout, recs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NIC\tTAP\tMAC\tQUEUES\tQUEUE SIZE\tBRIDGE")
		for i, r := range recs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\n", i, r.Tap, r.Mac, r.NumQueues, r.QueueSize, r.BridgeDev)
		}
		return tw.Flush()
	}())
}

func runActivate(ctx context.Context, e *env, args []string) int {
	f := newFlags("activate", "activate --vm ID [--bridge BR] [flags]",
		`Make the staged NICs of VM ID (made by 'tapbridge up --staged') forward: take
the guest MAC over on the TAP, pin its static FDB entry (EVPN then moves the
MAC to this host), drop the vxlan ports' own entries for it and open the port.
Run it when the VMM resumes the migrated guest; the VMM must hold the TAPs
open. Idempotent: an active VM is only repaired. It prints nothing on success.`)
	dev := f.String("bridge", "", "the bridge `BR` (default: the recorded one)")
	vm := f.String("vm", "", "the VM `ID` (required)")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		if err := validVMID("vm", *vm); err != nil {
			return err
		}
		in, err := inst.load(f)
		if err != nil {
			return err
		}
		b, err := openBridge(in, *dev)
		if err != nil {
			return err
		}
		err = b.Activate(ctx, *vm)
		if cerr := b.Close(); err == nil {
			err = cerr
		}
		return err
	}())
}

func runDown(ctx context.Context, e *env, args []string) int {
	f := newFlags("down", "down --vm ID [--vm ID ...] [flags]",
		`Delete every TAP of the VMs, whatever their NIC count, in the instance's
namespace. Only TAPs tagged with this instance and VM are touched. No bridge
is needed. A VM without TAPs is not an error: down is idempotent. It prints
nothing on success.`)
	var vms stringList
	f.Var(&vms, "vm", "a VM `ID` whose TAPs go (required; repeat for more)")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		if len(vms) == 0 {
			return usagef("--vm is required")
		}
		for _, id := range vms {
			if err := validVMID("vm", id); err != nil {
				return err
			}
		}
		in, err := inst.load(f)
		if err != nil {
			return err
		}
		_, err = bridge.Cleanup(ctx, in.conf, vms)
		return err
	}())
}

func runLs(ctx context.Context, e *env, args []string) int {
	f := newFlags("ls", "ls [--bridge BR] [--json] [flags]",
		`List the instance's VMs with their NICs: TAP name, guest MAC, virtio queues
and queue size, multi-queue, attached queues (queue files open: a VMM holds
the TAP) and state (up or down, on the bridge or not, being deleted). TAPs off
the bridge are listed too, and per NIC its guard mode, bound addresses and
the frames the guard dropped. With --json: a JSON array of Network objects.`)
	dev := f.String("bridge", "", "the bridge `BR` (default: the one recorded in the root dir)")
	asJSON := f.Bool("json", false, "print a JSON array of Network objects")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		in, err := inst.load(f)
		if err != nil {
			return err
		}
		b, err := openBridge(in, *dev)
		if err != nil {
			return err
		}
		nets, err := b.List(ctx)
		if cerr := b.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if *asJSON {
			if nets == nil {
				nets = []*types.Network{}
			}
			return writeJSON(e.stdout, nets)
		}
		if len(nets) == 0 {
			fmt.Fprintf(e.stdout, "no VMs of instance %s in %s\n", in.conf.RootDir, where(in.conf))
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VM\tNIC\tTAP\tMAC\tQUEUES\tQSIZE\tMQ\tATTACHED\tSTATE\tGUARD\tBOUND\tDROPS")
		for _, n := range nets {
			for i, c := range n.NICs {
				l := n.Links[i]
				fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\t%d\n",
					n.VMID, l.NIC, l.NICs, c.Tap, c.Mac, c.NumQueues, c.QueueSize, yesNo(l.MultiQueue), l.AttachedQueues, state(l, n.BridgeDev),
					guardColumn(l.Guard), boundColumn(l.Bound), l.GuardDrops)
			}
		}
		return tw.Flush()
	}())
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// state is the STATE column of ls.
func state(l *types.LinkState, bridgeDev string) string {
	if l.Deleting {
		return "deleting"
	}
	s := "down"
	if l.Up {
		s = "up"
	}
	switch l.Master {
	case "":
		return s + ", no bridge"
	case bridgeDev:
		return s + ", on " + l.Master
	default:
		return s + ", on " + l.Master + " (not " + bridgeDev + ")"
	}
}

func runVerify(ctx context.Context, e *env, args []string) int {
	f := newFlags("verify", "verify --vm ID [--bridge BR] [flags]",
		`Check that VM ID's TAPs are intact: every NIC exists, carries this
instance's tag, is up, is a port of the bridge with learning off, has the
bridge's MTU and its host-side MAC, has the flags the --hypervisor profile
opens it with (by default the profile recorded in the TAPs' tags when up made
them), and, unless its guard is off, has its guard filter installed and its
port locked with unicast flooding off. Exit 0 when all hold; exit 1 with the
differences on stderr.`)
	vm := f.String("vm", "", "the VM `ID` (required)")
	dev := f.String("bridge", "", "the bridge `BR` (default: the one recorded in the root dir)")
	hv := f.String("hypervisor", "", "the VMM `NAME` that opens the TAPs: cloud-hypervisor, firecracker or qemu (default: the one recorded in the tags, else cloud-hypervisor)")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		if err := validVMID("vm", *vm); err != nil {
			return err
		}
		if err := (&config.Config{Hypervisor: *hv}).Validate(); err != nil {
			return usagef("--hypervisor: %v", err)
		}
		in, err := inst.load(f)
		if err != nil {
			return err
		}
		b, err := openBridge(in, *dev)
		if err != nil {
			return err
		}
		// "": the profile each TAP's tag records.
		err = b.VerifyProfile(ctx, *vm, *hv)
		if cerr := b.Close(); err == nil {
			err = cerr
		}
		switch {
		case errors.Is(err, network.ErrNotFound):
			return fmt.Errorf("vm %s has no TAPs of instance %s in %s", *vm, in.conf.RootDir, where(in.conf))
		case err != nil:
			return err
		}
		fmt.Fprintf(e.stdout, "vm %s: intact\n", *vm)
		return nil
	}())
}
