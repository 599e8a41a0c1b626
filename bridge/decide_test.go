package bridge

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/gc"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/types"
)

// The decision tables: pure functions over requests, probed links and
// parsed tags. They need no root and no kernel.

var (
	testOwn = ownership{inst: owner.InstanceOf("/test/a"), group: owner.InstanceOf("/test/a").Group()}
	testMAC = [6]byte{0x02, 1, 2, 3, 4, 5}
	testTgt = &target{bridgeDev: "br0", netnsPath: "/run/netns/x", hypervisor: config.CloudHypervisor, guard: guard.ModeL2}
)

// tapLink is a TAP as a probe would find it: the instance's tag for NIC
// nic of vmID, idle, single-queue and persistent unless edit changes it.
func tapLink(vmID string, nic int, edit ...func(*rtnl.Link, *owner.Tag)) rtnl.Link {
	tag := owner.Tag{Instance: testOwn.inst, VMID: vmID, NIC: nic, NICs: 2, MAC: testMAC, Queues: 2, QueueSize: 512,
		Hypervisor: config.CloudHypervisor, Created: 1700000000000}
	l := rtnl.Link{Index: 40 + uint32(nic), Name: owner.Name(vmID, nic, 0), Kind: "tun", Group: 0,
		Tun: &rtnl.TunInfo{TAP: true, VnetHdr: true, Persist: true}}
	for _, e := range edit {
		e(&l, &tag)
	}
	l.Alias = tag.String()
	return l
}

func mustPlan(t *testing.T, vmID string, nics int, vmCfg *types.VMConfig, handoff bool, existing ...*types.NetworkConfig) *vmPlan {
	t.Helper()
	p, err := newPlan(testTgt, vmID, nics, vmCfg, existing, handoff)
	if err != nil {
		t.Fatalf("newPlan(%q, %d, %+v) = %v", vmID, nics, vmCfg, err)
	}
	return p
}

func TestNewPlanRejects(t *testing.T) {
	rec := func(mac string) *types.NetworkConfig { return &types.NetworkConfig{Mac: mac} }
	tests := []struct {
		desc     string
		vmID     string
		nics     int
		vmCfg    *types.VMConfig
		existing []*types.NetworkConfig
		want     string // in the error
	}{
		{"empty VM ID", "", 1, nil, nil, "invalid VM ID"},
		{"VM ID with a slash", "a/b", 1, nil, nil, "invalid VM ID"},
		{"no NIC", "vm", 0, nil, nil, "0 NICs, want 1..16"},
		{"17 NICs", "vm", 17, nil, nil, "17 NICs, want 1..16"},
		{"negative CPUs", "vm", 1, &types.VMConfig{CPU: -1}, nil, "-1 CPUs"},
		{"257 CPUs", "vm", 1, &types.VMConfig{CPU: 257}, nil, "257 CPUs"},
		{"queue size not a power of two", "vm", 1, &types.VMConfig{QueueSize: 3}, nil, "queue size 3"},
		{"queue size too large", "vm", 1, &types.VMConfig{QueueSize: 65536}, nil, "queue size 65536"},
		{"more records than NICs", "vm", 1, nil, []*types.NetworkConfig{rec("02:00:00:00:00:01"), rec("02:00:00:00:00:02")}, "2 existing records for 1 NICs"},
		{"nil record", "vm", 1, nil, []*types.NetworkConfig{nil}, "existing record 0 is nil"},
		{"bad MAC", "vm", 1, nil, []*types.NetworkConfig{rec("zz")}, `MAC "zz"`},
		{"multicast MAC", "vm", 1, nil, []*types.NetworkConfig{rec("03:00:00:00:00:01")}, "multicast"},
		{"zero MAC", "vm", 1, nil, []*types.NetworkConfig{rec("00:00:00:00:00:00")}, "all zeros"},
		{"host-side MAC", "vm", 1, nil, []*types.NetworkConfig{rec("fe:00:00:00:00:01")}, "reserved for TAP host sides"},
		{"8-byte MAC", "vm", 1, nil, []*types.NetworkConfig{rec("02:00:00:00:00:00:00:01")}, "8 bytes"},
		{"duplicate MAC", "vm", 2, nil, []*types.NetworkConfig{rec("02:00:00:00:00:01"), rec("02:00:00:00:00:01")}, "records 0 and 1 have the same MAC"},
		{"other bridge", "vm", 1, nil, []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", BridgeDev: "br9"}}, "for bridge br9"},
		{"other backend", "vm", 1, nil, []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", Backend: "cni"}}, `backend "cni"`},
		{"other namespace", "vm", 1, nil, []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", NetnsPath: "/run/netns/y"}}, "namespace /run/netns/y"},
		{"bad TAP name", "vm", 1, nil, []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", Tap: "a%d"}}, "invalid interface name"},
		{"duplicate TAP", "vm", 2, nil, []*types.NetworkConfig{{Mac: "02:00:00:00:00:01", Tap: "t0"}, {Mac: "02:00:00:00:00:02", Tap: "t0"}}, "the same TAP t0"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			p, err := newPlan(testTgt, tt.vmID, tt.nics, tt.vmCfg, tt.existing, false)
			if p != nil || !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newPlan(%q, %d, %+v, %v) = %v, %v; want an ErrInvalidArgument error containing %q", tt.vmID, tt.nics, tt.vmCfg, tt.existing, p, err, tt.want)
			}
		})
	}
}

func TestNewPlan(t *testing.T) {
	tests := []struct {
		hv            string
		cpu           int
		mq            bool
		queues, qsize int
	}{
		{config.CloudHypervisor, 0, false, 2, 512},
		{config.CloudHypervisor, 1, false, 2, 512},
		{config.CloudHypervisor, 2, true, 4, 512},
		{config.QEMU, 8, true, 16, 512},
		{config.Firecracker, 8, false, 16, 512},
	}
	for _, tt := range tests {
		tg := *testTgt
		tg.hypervisor = tt.hv
		p, err := newPlan(&tg, "vm", 2, &types.VMConfig{CPU: tt.cpu}, nil, false)
		if err != nil {
			t.Fatalf("newPlan(%s, %d CPUs) = %v", tt.hv, tt.cpu, err)
		}
		if p.mq != tt.mq || p.queues != tt.queues || p.queueSize != tt.qsize || len(p.nics) != 2 {
			t.Errorf("newPlan(%s, %d CPUs) = mq %v, %d queues of %d, %d NICs; want mq %v, %d queues of %d, 2 NICs",
				tt.hv, tt.cpu, p.mq, p.queues, p.queueSize, len(p.nics), tt.mq, tt.queues, tt.qsize)
		}
	}
	// A record gives its NIC the MAC and the first name candidate; its
	// namespace and bridge may be left empty or match.
	p := mustPlan(t, "vm-000002", 2, &types.VMConfig{QueueSize: 1024}, false,
		&types.NetworkConfig{Mac: "02:aa:00:00:00:01", Tap: owner.Name("vm-000002", 0, 2), BridgeDev: "br0", NetnsPath: "/run/netns/x", Backend: Backend})
	n0, n1 := p.nics[0], p.nics[1]
	if !n0.macGiven || n0.mac != [6]byte{2, 0xaa, 0, 0, 0, 1} || n1.macGiven {
		t.Errorf("plan NICs = %+v, %+v; want NIC 0 with the record's MAC, NIC 1 without", n0, n1)
	}
	if got := candidates("vm-000002", n0); got[0] != owner.Name("vm-000002", 0, 2) || len(got) != owner.Candidates {
		t.Errorf("candidates(NIC 0) = %q, want the record's name first, %d in all", got, owner.Candidates)
	}
	if got, want := candidates("vm-000002", n1), []string{owner.Name("vm-000002", 1, 0), owner.Name("vm-000002", 1, 1), owner.Name("vm-000002", 1, 2), owner.Name("vm-000002", 1, 3)}; !slices.Equal(got, want) {
		t.Errorf("candidates(NIC 1) = %q, want %q", got, want)
	}
	n0.name, n1.name = "t0", "t1"
	recs := p.records(testTgt)
	want := types.NetworkConfig{Tap: "t0", Mac: "02:aa:00:00:00:01", NumQueues: 2, QueueSize: 1024, Backend: Backend, BridgeDev: "br0", NetnsPath: "/run/netns/x"}
	if *recs[0] != want || recs[1].Tap != "t1" {
		t.Errorf("records() = %+v, %+v; want %+v and t1", *recs[0], *recs[1], want)
	}
}

func TestJudgeProbe(t *testing.T) {
	foreignTag := func(l *rtnl.Link, tg *owner.Tag) { tg.Instance = owner.InstanceOf("/test/b") }
	tests := []struct {
		desc    string
		link    rtnl.Link
		mq      bool // the request's multi-queue flag
		handoff bool
		given   bool // the request gives NIC 0 a MAC
		want    probeVerdict
		wantErr string
		// what the verdict fills in
		mac      [6]byte
		nameHint string
	}{
		{desc: "our TAP, right flags", link: tapLink("vm", 0), want: probeAdopt, mac: testMAC},
		{desc: "our TAP, request gives another MAC", link: tapLink("vm", 0), given: true, want: probeAdopt, mac: [6]byte{2, 9, 9, 9, 9, 9}},
		{desc: "doomed, idle", link: tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Group = testOwn.group }), want: probeReplace},
		{desc: "doomed, still open", link: tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Group = testOwn.group; l.Carrier = true }), want: probeReplace},
		{desc: "other flags, idle", link: tapLink("vm", 0), mq: true, want: probeReplace, mac: testMAC, nameHint: owner.Name("vm", 0, 0)},
		{desc: "other flags, open", link: tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Carrier = true }), mq: true, wantErr: "is open (1 queues) with other flags"},
		{desc: "other flags, multi-queue open", link: tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Tun.MultiQueue = true; l.Tun.Queues = 3 }), wantErr: "is open (3 queues)"},
		{desc: "persistent, handoff wanted", link: tapLink("vm", 0), handoff: true, want: probeReplace, mac: testMAC, nameHint: owner.Name("vm", 0, 0)},
		{desc: "handed off, still open", link: tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Tun.Persist = false; l.Carrier = true }), handoff: true, wantErr: "was handed off and is still open"},
		{desc: "another instance's TAP", link: tapLink("vm", 0, foreignTag), wantErr: "not this instance's TAP"},
		{desc: "another VM's TAP", link: tapLink("vm-other", 0), wantErr: "not this instance's TAP"},
		{desc: "another NIC's TAP", link: tapLink("vm", 1), wantErr: "not this instance's TAP"},
		{desc: "a TUN device", link: tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Tun.TAP = false }), wantErr: "not this instance's TAP"},
		{desc: "a veth with our tag", link: tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Kind, l.Tun = "veth", nil }), wantErr: "not this instance's TAP"},
		{desc: "an untagged TAP", link: func() rtnl.Link { l := tapLink("vm", 0); l.Alias = ""; return l }(), wantErr: "not this instance's TAP"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			p := mustPlan(t, "vm", 1, nil, tt.handoff)
			p.mq = tt.mq
			n := p.nics[0]
			if tt.given {
				n.mac, n.macGiven = [6]byte{2, 9, 9, 9, 9, 9}, true
			}
			l := tt.link
			v, recorded, err := judgeProbe(testOwn, p, n, &l)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("judgeProbe(%s) = %v, %v; want an error containing %q", tt.desc, v, err, tt.wantErr)
				}
				if strings.Contains(tt.wantErr, "instance's TAP") && !errors.Is(err, ErrNameCollision) {
					t.Errorf("judgeProbe(%s) error %v does not wrap ErrNameCollision", tt.desc, err)
				}
				return
			}
			if err != nil || v != tt.want || recorded != 2 {
				t.Fatalf("judgeProbe(%s) = %v, %d, %v; want %v, 2, nil", tt.desc, v, recorded, err, tt.want)
			}
			if n.mac != tt.mac || n.nameHint != tt.nameHint {
				t.Errorf("judgeProbe(%s) left NIC with MAC %x, name hint %q; want %x, %q", tt.desc, n.mac, n.nameHint, tt.mac, tt.nameHint)
			}
			if adopted := v == probeAdopt; n.adopted != adopted || n.hasAlt != adopted || adopted && (n.index != l.Index || n.name != l.Name || n.oldMAC != testMAC) {
				t.Errorf("judgeProbe(%s) = %v and NIC %+v: adopted/hasAlt/index/name/oldMAC wrong", tt.desc, v, n)
			}
		})
	}
}

func TestJudgeByName(t *testing.T) {
	tests := []struct {
		desc    string
		link    rtnl.Link
		handoff bool
		want    bool
	}{
		{"our TAP that lost its alternative name", tapLink("vm", 0), false, true},
		{"our TAP, but handoff", tapLink("vm", 0), true, false},
		{"doomed", tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Group = testOwn.group }), false, false},
		{"other flags", tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Tun.MultiQueue = true }), false, false},
		{"transient", tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Tun.Persist = false }), false, false},
		{"another VM's", tapLink("vm2", 0), false, false},
		{"another instance's", tapLink("vm", 0, func(_ *rtnl.Link, tg *owner.Tag) { tg.Instance[0]++ }), false, false},
	}
	for _, tt := range tests {
		p := mustPlan(t, "vm", 1, nil, tt.handoff)
		n := p.nics[0]
		l := tt.link
		if got := judgeByName(testOwn, p, n, &l); got != tt.want || n.adopted != tt.want {
			t.Errorf("judgeByName(%s) = %v (adopted %v), want %v", tt.desc, got, n.adopted, tt.want)
		}
		if tt.want && (n.hasAlt || n.mac != testMAC || n.index != l.Index) {
			t.Errorf("judgeByName(%s) NIC = %+v: want the TAP's MAC and index, no alternative name", tt.desc, n)
		}
	}
}

func TestVerifyDiffs(t *testing.T) {
	br := &rtnl.Link{Index: 7, Name: "br0", MTU: 1500, Kind: "bridge"}
	good := func(nic int, edit ...func(*rtnl.Link, *owner.Tag)) found {
		e := append([]func(*rtnl.Link, *owner.Tag){func(l *rtnl.Link, tg *owner.Tag) {
			l.Master, l.MTU, l.Flags, l.Address = 7, 1500, 1, hostMAC(testMAC) // IFF_UP
			l.Port = &rtnl.PortInfo{}
		}}, edit...)
		l := tapLink("vm", nic, e...)
		var tag owner.Tag
		owner.ParseTag(l.Alias, &tag)
		return found{nic: nic, link: l, tag: tag}
	}
	name0, name1 := owner.Name("vm", 0, 0), owner.Name("vm", 1, 0)
	tests := []struct {
		desc     string
		nics     []found
		hv       string // "" : each tag's
		fallback string
		want     []string
	}{
		{"intact", []found{good(0), good(1)}, "", config.CloudHypervisor, nil},
		{"missing NIC", []found{good(0)}, "", config.CloudHypervisor, []string{"nic 1: TAP missing (the VM has 2 NICs)"}},
		{"doomed: only that", []found{good(0, func(l *rtnl.Link, _ *owner.Tag) { l.Group = testOwn.group; l.Master = 0 }), good(1)}, "", "",
			[]string{"nic 0 (" + name0 + "): being deleted"}},
		{"off the bridge, down, learning", []found{good(0, func(l *rtnl.Link, _ *owner.Tag) { l.Master, l.Flags = 0, 0 }), good(1, func(l *rtnl.Link, _ *owner.Tag) { l.Port.Learning = true })}, "", "",
			[]string{"nic 0 (" + name0 + "): not a port of br0 (master: none)", "nic 0 (" + name0 + "): down", "nic 1 (" + name1 + "): learning is on"}},
		{"other master, MTU, MAC", []found{good(0, func(l *rtnl.Link, _ *owner.Tag) { l.Master, l.MTU, l.Address = 9, 1400, hostMAC([6]byte{2}) }), good(1)}, "", "",
			[]string{"nic 0 (" + name0 + "): not a port of br0 (master: ifindex 9)", "nic 0 (" + name0 + "): MTU 1400, bridge has 1500", "nic 0 (" + name0 + "): MAC fe:00:00:00:00:00, want fe:01:02:03:04:05"}},
		{"flags first", []found{good(0, func(l *rtnl.Link, _ *owner.Tag) { l.Flags, l.Tun.VnetHdr = 0, false }), good(1)}, "", "",
			[]string{"nic 0 (" + name0 + "): flags pi=false vnet_hdr=false, want pi=false vnet_hdr=true", "nic 0 (" + name0 + "): down"}},
		// 2 CPUs recorded (4 queues): Cloud Hypervisor and QEMU open it
		// multi-queue, Firecracker never.
		{"profile given, mismatch", []found{good(0, func(_ *rtnl.Link, tg *owner.Tag) { tg.Queues = 4 }), good(1, func(_ *rtnl.Link, tg *owner.Tag) { tg.Queues = 4 })}, config.QEMU, "",
			[]string{"nic 0 (" + name0 + "): multi-queue false, but qemu opens a TAP with 2 queue pairs multi-queue=true", "nic 1 (" + name1 + "): multi-queue false, but qemu opens a TAP with 2 queue pairs multi-queue=true"}},
		{"the tag's profile", []found{good(0, func(_ *rtnl.Link, tg *owner.Tag) { tg.Queues, tg.Hypervisor = 4, config.Firecracker }), good(1)}, "", config.QEMU, nil},
		{"no recorded profile: the fallback", []found{good(0, func(_ *rtnl.Link, tg *owner.Tag) { tg.Queues, tg.Hypervisor = 4, "" }), good(1)}, "", config.QEMU,
			[]string{"nic 0 (" + name0 + "): multi-queue false, but qemu opens a TAP with 2 queue pairs multi-queue=true"}},
	}
	for _, tt := range tests {
		got := verifyDiffs(tt.nics, br, "br0", tt.hv, tt.fallback, testOwn.group)
		if !slices.Equal(got, tt.want) {
			t.Errorf("verifyDiffs(%s) =\n%s\nwant\n%s", tt.desc, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}

// liveSnap is a snapshot of another module that reports a live set.
type liveSnap map[string]struct{}

func (l liveSnap) ActiveVMIDs() map[string]struct{} { return l }

func TestGCSnapshotOrphans(t *testing.T) {
	now := time.Unix(1700000000, 0)
	cand := func(id, vm string, age time.Duration, inUse, doomed bool) gc.Candidate {
		return gc.Candidate{ID: id, Owner: vm, Created: now.Add(-age), InUse: inUse, Doomed: doomed}
	}
	s := bridgeSnapshot{
		candidates: []gc.Candidate{
			cand("bt-live", "live", time.Hour, false, false),
			cand("bt-dead", "dead", time.Hour, false, false),
			cand("bt-young", "dead2", time.Second, false, false),
			cand("bt-open", "dead3", time.Hour, true, false),
			cand("bt-doomed", "live", time.Hour, false, true),
			cand("bt-creating", "new", time.Hour, false, false),
		},
		taps:     []scannedTAP{{1, "a"}, {2, "b"}, {3, "c"}, {4, "d"}, {5, "e"}, {6, "f"}},
		policy:   gc.Policy{Now: now, Grace: time.Minute},
		creating: map[string]struct{}{"new": {}},
	}
	withLive := map[string]any{"bridge": s, "vms": liveSnap{"live": {}}}
	if got, want := s.orphans(withLive), []string{"bt-dead", "bt-doomed"}; !slices.Equal(got, want) {
		t.Errorf("orphans(with a live set) = %q, want %q", got, want)
	}
	if got, want := s.orphans(map[string]any{"bridge": s}), []string{"bt-doomed"}; !slices.Equal(got, want) {
		t.Errorf("orphans(no live set) = %q, want only the doomed %q", got, want)
	}
	// An empty live set is a live set: every idle, old TAP is an orphan.
	if got, want := s.orphans(map[string]any{"bridge": s, "vms": gc.Live(nil)}), []string{"bt-dead", "bt-doomed", "bt-live"}; !slices.Equal(got, want) {
		t.Errorf("orphans(empty live set) = %q, want %q", got, want)
	}
	reasons := s.Explain(withLive)
	for id, want := range map[string]gc.ReasonCode{
		"bt-live": gc.ReasonLive, "bt-dead": gc.ReasonNotLive, "bt-young": gc.ReasonYoung,
		"bt-open": gc.ReasonInUse, "bt-doomed": gc.ReasonDoomed, "bt-creating": gc.ReasonCreating,
	} {
		if got := reasons[id]; got.Code != want || got.Reclaim != (want == gc.ReasonNotLive || want == gc.ReasonDoomed) {
			t.Errorf("Explain()[%s] = %+v, want code %s", id, got, want)
		}
	}
	if got := s.Explain(map[string]any{"bridge": s})["bt-dead"]; got.Code != gc.ReasonNoLiveSet || got.Reclaim {
		t.Errorf("Explain(no live set)[bt-dead] = %+v, want kept: %s", got, gc.ReasonNoLiveSet)
	}
	if got, want := s.scanned([]string{"bt-open", "bt-nope", "bt-live"}), []scannedTAP{{4, "d"}, {}, {1, "a"}}; !slices.Equal(got, want) {
		t.Errorf("scanned() = %v, want %v", got, want)
	}
	if got := s.ScannedIDs(); len(got) != 6 || got[0] != "bt-live" {
		t.Errorf("ScannedIDs() = %q", got)
	}
}

func TestRecheck(t *testing.T) {
	sc := scannedTAP{index: 40, alias: tapLink("vm", 0).Alias}
	name := owner.Name("vm", 0, 0)
	tests := []struct {
		desc string
		link rtnl.Link
		gone bool
		del  bool
		why  error
	}{
		{"unchanged", tapLink("vm", 0), false, true, nil},
		{"gone", rtnl.Link{}, true, false, nil},
		{"re-tagged", tapLink("vm", 0, func(_ *rtnl.Link, tg *owner.Tag) { tg.Created++ }), false, false, errChangedSinceScan},
		{"renamed", tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Name = "x" }), false, false, errChangedSinceScan},
		{"opened", tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Carrier = true }), false, false, errOpenedSinceScan},
		{"not a TUN any more", tapLink("vm", 0, func(l *rtnl.Link, _ *owner.Tag) { l.Tun = nil }), false, false, errOpenedSinceScan},
	}
	for _, tt := range tests {
		l := tt.link
		if del, why := recheck(name, sc, &l, tt.gone); del != tt.del || why != tt.why {
			t.Errorf("recheck(%s) = %v, %v; want %v, %v", tt.desc, del, why, tt.del, tt.why)
		}
	}
}

func TestCleanupTargets(t *testing.T) {
	other := owner.InstanceOf("/test/b")
	tag := func(inst owner.Instance, vm string, nic int) owner.Tag {
		return owner.Tag{Instance: inst, VMID: vm, NIC: nic, NICs: 2}
	}
	taps := []taggedTAP{
		{1, tag(testOwn.inst, "a", 0)}, {2, tag(testOwn.inst, "a", 1)}, {3, tag(other, "a", 0)},
		{4, tag(testOwn.inst, "b", 0)}, {5, tag(other, "c", 0)},
	}
	got := cleanupTargets(taps, []string{"a", "c", "none"})
	if len(got) != 2 || !slices.Equal(got[testOwn.inst]["a"], []uint32{1, 2}) || !slices.Equal(got[other]["a"], []uint32{3}) ||
		!slices.Equal(got[other]["c"], []uint32{5}) || got[testOwn.inst]["b"] != nil || len(got[testOwn.inst]) != 1 {
		t.Errorf("cleanupTargets(a, c, none) = %v, want a's TAPs of both instances and c's", got)
	}
	if got := cleanupTargets(taps, nil); len(got) != 0 {
		t.Errorf("cleanupTargets(nil) = %v, want none", got)
	}
}

func TestValidIDs(t *testing.T) {
	got, err := validIDs("delete", []string{"a", "", "b", "a", "x/y", "b", "c"})
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("validIDs() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, owner.ErrInvalidVMID) || !strings.Contains(err.Error(), `"x/y"`) || !strings.HasPrefix(err.Error(), "delete: ") {
		t.Errorf("validIDs() error = %v, want both invalid IDs reported, wrapping ErrInvalidArgument", err)
	}
	if got, err := validIDs("cleanup", nil); len(got) != 0 || err != nil {
		t.Errorf("validIDs(nil) = %q, %v", got, err)
	}
}

func TestVMLocks(t *testing.T) {
	var l vmLocks
	unlock := l.lockAll([]string{"b", "a"})
	done := make(chan struct{})
	go func() {
		u := l.lock("a")
		u()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("lock(a) succeeded while lockAll held it")
	case <-time.After(20 * time.Millisecond):
	}
	unlock()
	<-done
	if len(l.m) != 0 {
		t.Errorf("vmLocks holds %d entries after every unlock, want 0", len(l.m))
	}
}
