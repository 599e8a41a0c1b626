package bridge

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/network"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

func TestIntegrationVerify(t *testing.T) {
	const vm = "vm-verify"
	tests := []struct {
		desc   string
		break_ func(t *testing.T, f *fixture, recs []*types.NetworkConfig)
		want   []string // lines of the error, after "verify vm vm-verify: ...:"
	}{
		{"port detached", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			f.ip(t, "link", "set", r[1].Tap, "nomaster")
		}, []string{"nic 1 (%[2]s): not a port of br0 (master: none)"}},
		{"port on another bridge", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			testBridgeAdd(t, f, "br1")
			f.ip(t, "link", "set", r[0].Tap, "master", "br1")
		}, []string{"nic 0 (%[1]s): not a port of br0 (master: ifindex %[4]s)"}},
		{"MAC rewritten", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			f.ip(t, "link", "set", r[0].Tap, "address", "02:00:00:00:00:09")
		}, []string{"nic 0 (%[1]s): MAC 02:00:00:00:00:09, want %[3]s"}},
		{"set down", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			f.ip(t, "link", "set", r[1].Tap, "down")
		}, []string{"nic 1 (%[2]s): down"}},
		{"bridge MTU changed", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			f.ip(t, "link", "set", testBridge, "mtu", "1450")
		}, []string{"nic 0 (%[1]s): MTU 1500, bridge has 1450", "nic 1 (%[2]s): MTU 1500, bridge has 1450"}},
		{"TAP MTU lowered", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			// The bridge follows its smallest port (br_mtu_auto_adjust),
			// so the other NIC is the one that differs.
			f.ip(t, "link", "set", r[1].Tap, "mtu", "1400")
		}, []string{"nic 0 (%[1]s): MTU 1500, bridge has 1400"}},
		{"learning on", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			f.run(t, "bridge", "link", "set", "dev", r[1].Tap, "learning", "on")
		}, []string{"nic 1 (%[2]s): learning is on"}},
		{"NIC deleted by someone else", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			f.ip(t, "link", "del", r[1].Tap)
		}, []string{"nic 1: TAP missing (the VM has 2 NICs)"}},
		{"several differences", func(t *testing.T, f *fixture, r []*types.NetworkConfig) {
			f.ip(t, "link", "set", r[0].Tap, "down")
			f.ip(t, "link", "set", r[0].Tap, "nomaster")
			f.ip(t, "link", "del", r[1].Tap)
		}, []string{
			"nic 0 (%[1]s): not a port of br0 (master: none)",
			"nic 0 (%[1]s): down",
			"nic 1: TAP missing (the VM has 2 NICs)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			f := newFixture(t, nil)
			recs := f.config(t, vm, 2, &types.VMConfig{CPU: 2})
			if err := f.b.Verify(t.Context(), vm); err != nil {
				t.Fatalf("Verify(%s) of an intact VM = %v, want nil", vm, err)
			}
			tt.break_(t, f, recs)
			err := f.b.Verify(t.Context(), vm)
			errIs(t, "Verify after "+tt.desc, err, ErrMismatch)
			if err == nil {
				return
			}
			br1 := ""
			if l := f.links(t)["br1"]; l != nil {
				br1 = strconv.Itoa(l.Index)
			}
			lines := strings.Split(err.Error(), "\n")
			if lines[0] != "verify vm "+vm+": "+ErrMismatch.Error()+":" {
				t.Errorf("Verify error first line = %q", lines[0])
			}
			var want []string
			for _, w := range tt.want {
				if strings.Contains(w, "%") {
					w = fmt.Sprintf(w, recs[0].Tap, recs[1].Tap, hostMACOf(t, recs[0].Mac), br1)
				}
				want = append(want, w)
			}
			if got := lines[1:]; !slices.Equal(got, want) {
				t.Errorf("Verify after %s lists\n%s\nwant\n%s", tt.desc, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func testBridgeAdd(t *testing.T, f *fixture, name string) {
	t.Helper()
	f.ip(t, "link", "add", name, "type", "bridge")
	f.ip(t, "link", "set", name, "up")
}

func TestIntegrationVerifyNotFound(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	errIs(t, "Verify(vm-none)", f.b.Verify(ctx, "vm-none"), network.ErrNotFound)
	errIs(t, "Verify(bad/id)", f.b.Verify(ctx, "bad/id"), ErrInvalidArgument)
	// Another instance's VM and a foreign device named like our TAP are
	// not ours.
	other := f.newBridge(t, nil)
	mustConfig(t, other, "vm-other", 1, nil)
	errIs(t, "Verify(vm-other) of another instance's VM", f.b.Verify(ctx, "vm-other"), network.ErrNotFound)
	f.addForeignTAP(t, "btvm-fore-0")
	errIs(t, "Verify(vm-foreign) with a foreign btvm-fore-0", f.b.Verify(ctx, "vm-foreign"), network.ErrNotFound)
	// Every NIC deleted by someone else.
	recs := f.config(t, "vm-gone", 2, nil)
	for _, r := range recs {
		f.ip(t, "link", "del", r.Tap)
	}
	errIs(t, "Verify(vm-gone) after its TAPs were deleted", f.b.Verify(ctx, "vm-gone"), network.ErrNotFound)
	// The bridge itself gone.
	f.config(t, "vm-here", 1, nil)
	f.ip(t, "link", "del", testBridge)
	errIs(t, "Verify(vm-here) without the bridge", f.b.Verify(ctx, "vm-here"), ErrBridgeNotFound)
	_, err := f.b.Config(ctx, "vm-new", 1, nil)
	errIs(t, "Config(vm-new) without the bridge", err, ErrBridgeNotFound)
	f.checkNoTAPs(t, "vm-new")
}

// TestIntegrationVerifyProfile makes a TAP with one hypervisor profile and
// verifies it with another of the same instance: the VMM of the other
// profile would fail to open it (EINVAL), and Verify says so first.
func TestIntegrationVerifyProfile(t *testing.T) {
	tests := []struct {
		made, verified string
		cpu            int
		wantMismatch   bool
	}{
		{config.QEMU, config.Firecracker, 2, true},
		{config.Firecracker, config.QEMU, 2, true},
		{config.Firecracker, config.CloudHypervisor, 4, true},
		{config.QEMU, config.CloudHypervisor, 2, false},
		{config.QEMU, config.Firecracker, 1, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-cpu%d-verified-by-%s", tt.made, tt.cpu, tt.verified), func(t *testing.T) {
			f := newFixture(t, &config.Config{Hypervisor: tt.made})
			by := f.newBridge(t, &config.Config{RootDir: f.dir, Hypervisor: tt.verified})
			const vm = "vm-profile"
			recs := f.config(t, vm, 1, &types.VMConfig{CPU: tt.cpu})
			if err := f.b.Verify(t.Context(), vm); err != nil {
				t.Errorf("%s Verify(%s) = %v, want nil", tt.made, vm, err)
			}
			err := by.Verify(t.Context(), vm)
			mqMade := tt.made != config.Firecracker && tt.cpu > 1
			mqWanted := tt.verified != config.Firecracker && tt.cpu > 1
			if !tt.wantMismatch {
				if err != nil {
					t.Errorf("%s Verify(%s) = %v, want nil", tt.verified, vm, err)
				}
				return
			}
			errIs(t, tt.verified+" Verify", err, ErrMismatch)
			want := fmt.Sprintf("nic 0 (%s): multi-queue %v, but %s opens a TAP with %d queue pairs multi-queue=%v",
				recs[0].Tap, mqMade, tt.verified, tt.cpu, mqWanted)
			if err != nil && !strings.Contains(err.Error(), want) {
				t.Errorf("%s Verify(%s) = %q, want it to say %q", tt.verified, vm, err, want)
			}
			// The kernel agrees: the other profile's VMM cannot open it.
			if d, err := tap.Open(recs[0].Tap, &tap.Options{MultiQueue: mqWanted, Queues: 1, VnetHdr: true, NetNS: f.ns}); err == nil {
				d.Close()
				t.Errorf("tap.Open(%s, mq=%v) = nil error, want EINVAL", recs[0].Tap, mqWanted)
			}
			// Config with the other profile replaces the TAP, keeping its
			// name and MAC, and then both agree with the kernel.
			got := mustConfig(t, by, vm, 1, &types.VMConfig{CPU: tt.cpu})
			if *got[0] != *recs[0] {
				t.Errorf("%s Config(%s) = %+v, want %+v", tt.verified, vm, *got[0], *recs[0])
			}
			if err := by.Verify(t.Context(), vm); err != nil {
				t.Errorf("%s Verify(%s) after its Config = %v, want nil", tt.verified, vm, err)
			}
		})
	}
}

func TestIntegrationInspect(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	const vm = "vm-inspect"
	start := time.Now().Add(-time.Second)
	recs := f.config(t, vm, 3, &types.VMConfig{CPU: 2, QueueSize: 1024})
	single := f.config(t, "vm-single", 1, nil)

	// A VMM holds NIC 1 open with one queue; NIC 2 was put in the
	// instance's doomed group (as a deletion cut short leaves it).
	d, err := tap.Open(recs[1].Tap, &tap.Options{MultiQueue: true, Queues: 1, VnetHdr: true, NetNS: f.ns})
	if err != nil {
		t.Fatalf("tap.Open(%s) = %v", recs[1].Tap, err)
	}
	defer d.Close()
	s, err := tap.Open(single[0].Tap, &tap.Options{VnetHdr: true, NetNS: f.ns})
	if err != nil {
		t.Fatalf("tap.Open(%s) = %v", single[0].Tap, err)
	}
	defer s.Close()
	f.ip(t, "link", "set", recs[2].Tap, "group", strconv.Itoa(int(f.b.group)))

	n, err := f.b.Inspect(ctx, vm)
	if err != nil {
		t.Fatalf("Inspect(%s) = %v", vm, err)
	}
	if n.VMID != vm || n.BridgeDev != testBridge || len(n.NICs) != 3 || len(n.Links) != 3 {
		t.Fatalf("Inspect(%s) = %+v, want 3 NICs of %s on %s", vm, n, vm, testBridge)
	}
	links := f.links(t)
	for i, rec := range recs {
		if *n.NICs[i] != *rec {
			t.Errorf("Inspect(%s) NIC %d = %+v, want %+v", vm, i, *n.NICs[i], *rec)
		}
		st := n.Links[i]
		want := types.LinkState{
			NIC: i, NICs: 3, Index: links[rec.Tap].Index, Master: testBridge, Up: true, MultiQueue: true, Hypervisor: config.CloudHypervisor,
			AttachedQueues: numQueues(t, links[rec.Tap]), Deleting: i == 2, Created: st.Created,
			Guard: "l2", Bound: []string{}, FDB: true,
		}
		if !reflect.DeepEqual(*st, want) {
			t.Errorf("Inspect(%s) link %d = %+v, want %+v", vm, i, *st, want)
		}
		if st.Created.Before(start) || st.Created.After(time.Now()) {
			t.Errorf("Inspect(%s) link %d created %v, want between %v and now", vm, i, st.Created, start)
		}
	}
	if got := n.Links[1].AttachedQueues; got != 1 {
		t.Errorf("Inspect(%s) NIC 1 attached queues = %d, want 1 (tap.Open holds one)", vm, got)
	}
	if err := f.b.Verify(ctx, vm); err == nil || !strings.Contains(err.Error(), "nic 2 ("+recs[2].Tap+"): being deleted") {
		t.Errorf("Verify(%s) with NIC 2 in the doomed group = %v, want it to say nic 2 is being deleted", vm, err)
	}
	ns, err := f.b.Inspect(ctx, "vm-single")
	if err != nil {
		t.Fatalf("Inspect(vm-single) = %v", err)
	}
	if st := ns.Links[0]; st.MultiQueue || st.AttachedQueues != 1 || *ns.NICs[0] != *single[0] {
		t.Errorf("Inspect(vm-single) = %+v %+v, want single-queue with 1 attached queue", *ns.NICs[0], *st)
	}
	// Detached: no master.
	f.ip(t, "link", "set", single[0].Tap, "nomaster")
	if ns, err := f.b.Inspect(ctx, "vm-single"); err != nil || ns.Links[0].Master != "" {
		t.Errorf("Inspect(vm-single) of a detached TAP = %+v, %v; want no master", ns, err)
	}

	_, err = f.b.Inspect(ctx, "vm-none")
	errIs(t, "Inspect(vm-none)", err, network.ErrNotFound)
	_, err = f.b.Inspect(ctx, "vm:bad")
	errIs(t, "Inspect(vm:bad)", err, ErrInvalidArgument)
	other := f.newBridge(t, nil)
	mustConfig(t, other, "vm-other", 1, nil)
	_, err = f.b.Inspect(ctx, "vm-other")
	errIs(t, "Inspect(vm-other) of another instance's VM", err, network.ErrNotFound)
}

func TestIntegrationList(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	if l, err := f.b.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("List() of an empty namespace = %v, %v; want none", l, err)
	}
	// Made out of order, with a shared prefix, a gap, another instance's
	// VM and foreign TAPs around.
	ids := []string{"vm-000002", "b-vm", "vm-000001", "a-vm"}
	want := map[string][]*types.NetworkConfig{}
	for i, id := range ids {
		want[id] = f.config(t, id, i+1, &types.VMConfig{CPU: i + 1})
	}
	f.ip(t, "link", "del", want["a-vm"][1].Tap)
	want["a-vm"] = slices.Delete(want["a-vm"], 1, 2)
	other := f.newBridge(t, nil)
	mustConfig(t, other, "c-vm", 1, nil)
	f.addForeignTAP(t, "btd-vm-0")
	f.run(t, "ip", "link", "set", "btd-vm-0", "alias", "tb1 not a tag")

	got, err := f.b.List(ctx)
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	var gotIDs []string
	for _, n := range got {
		gotIDs = append(gotIDs, n.VMID)
		w := want[n.VMID]
		if len(n.NICs) != len(w) || len(n.Links) != len(w) || n.BridgeDev != testBridge {
			t.Errorf("List() %s = %d NICs, %d links on %s; want %d on %s", n.VMID, len(n.NICs), len(n.Links), n.BridgeDev, len(w), testBridge)
			continue
		}
		for i := range w {
			if *n.NICs[i] != *w[i] {
				t.Errorf("List() %s NIC %d = %+v, want %+v", n.VMID, i, *n.NICs[i], *w[i])
			}
		}
		if !slices.IsSortedFunc(n.Links, func(a, b *types.LinkState) int { return a.NIC - b.NIC }) {
			t.Errorf("List() %s links not in NIC order", n.VMID)
		}
		// List agrees with Inspect.
		in, err := f.b.Inspect(ctx, n.VMID)
		if err != nil {
			t.Errorf("Inspect(%s) = %v", n.VMID, err)
			continue
		}
		for i := range in.NICs {
			if !reflect.DeepEqual(*in.NICs[i], *n.NICs[i]) || !reflect.DeepEqual(*in.Links[i], *n.Links[i]) {
				t.Errorf("Inspect(%s) NIC %d = %+v %+v, List has %+v %+v", n.VMID, i, *in.NICs[i], *in.Links[i], *n.NICs[i], *n.Links[i])
			}
		}
	}
	if wantIDs := []string{"a-vm", "b-vm", "vm-000001", "vm-000002"}; !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("List() VMs = %q, want %q (sorted, this instance only)", gotIDs, wantIDs)
	}
}
