package rtnl_test

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

func TestIntegrationSetLink(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	tests := []struct {
		name  string
		setup []string // ip arguments run first, on TAP t0 and bridge br0
		ch    func(br uint32) *rtnl.LinkChange
		check func(t *testing.T, l *testutil.IPLink)
	}{
		{
			name: "MTU",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{MTU: 1400} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.MTU != 1400 {
					t.Errorf("mtu = %d, want 1400", l.MTU)
				}
			},
		},
		{
			name: "txqueuelen",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{TxQueueLen: ptr(uint32(5000))} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.TxQLen != 5000 {
					t.Errorf("txqlen = %d, want 5000", l.TxQLen)
				}
			},
		},
		{
			name: "txqueuelen 0",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{TxQueueLen: ptr(uint32(0))} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.TxQLen != 0 {
					t.Errorf("txqlen = %d, want 0", l.TxQLen)
				}
			},
		},
		{
			name: "MAC",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Address: mac} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Address != mac.String() {
					t.Errorf("address = %s, want %s", l.Address, mac)
				}
			},
		},
		{
			name: "up",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Up: ptr(true)} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if !l.HasFlag("UP") {
					t.Errorf("flags = %v, want UP", l.Flags)
				}
			},
		},
		{
			name:  "down",
			setup: []string{"link set t0 up"},
			ch:    func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Up: ptr(false)} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.HasFlag("UP") {
					t.Errorf("flags = %v, want no UP", l.Flags)
				}
			},
		},
		{
			name: "master",
			ch:   func(br uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Master: &br} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Master != "br0" || l.LinkInfo.SlaveKind != "bridge" {
					t.Errorf("master = %q, slave kind %q, want br0, bridge", l.Master, l.LinkInfo.SlaveKind)
				}
			},
		},
		{
			name:  "nomaster",
			setup: []string{"link set t0 master br0"},
			ch:    func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Master: ptr(uint32(0))} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Master != "" {
					t.Errorf("master = %q, want none", l.Master)
				}
			},
		},
		{
			name: "group",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Group: ptr(uint32(7))} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Group != "7" {
					t.Errorf("group = %q, want 7", l.Group)
				}
			},
		},
		{
			name:  "group back to default",
			setup: []string{"link set t0 group 7"},
			ch:    func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Group: ptr(uint32(0))} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Group != "default" {
					t.Errorf("group = %q, want default", l.Group)
				}
			},
		},
		{
			name: "alias",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Alias: ptr("vm 42 net0")} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Alias != "vm 42 net0" {
					t.Errorf("ifalias = %q, want %q", l.Alias, "vm 42 net0")
				}
			},
		},
		{
			name:  "alias cleared",
			setup: []string{"link set t0 alias old"},
			ch:    func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Alias: ptr("")} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Alias != "" {
					t.Errorf("ifalias = %q, want none", l.Alias)
				}
			},
		},
		{
			name: "addrgenmode none",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{AddrGenModeNone: true} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.AddrGen != "none" {
					t.Errorf("inet6_addr_gen_mode = %q, want none", l.AddrGen)
				}
			},
		},
		{
			name: "rename",
			ch:   func(uint32) *rtnl.LinkChange { return &rtnl.LinkChange{Name: "renamed0"} },
			check: func(t *testing.T, l *testutil.IPLink) {
				if l.Name != "renamed0" {
					t.Errorf("name = %q, want renamed0", l.Name)
				}
			},
		},
		{
			name: "everything at once",
			ch: func(br uint32) *rtnl.LinkChange {
				return &rtnl.LinkChange{
					Name: "vm0", MTU: 9000, TxQueueLen: ptr(uint32(10000)), Address: mac, Up: ptr(true),
					Master: &br, Group: ptr(uint32(3)), Alias: ptr("vm0"), AddrGenModeNone: true,
				}
			},
			check: func(t *testing.T, l *testutil.IPLink) {
				got := []any{l.Name, l.MTU, l.TxQLen, l.Address, l.HasFlag("UP"), l.Master, l.Group, l.Alias, l.AddrGen}
				want := []any{"vm0", 9000, 10000, mac.String(), true, "br0", "3", "vm0", "none"}
				if !slices.Equal(got, want) {
					t.Errorf("name, mtu, txqlen, address, up, master, group, alias, addrgenmode = %v, want %v", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newNS(t)
			br := e.bridge("br0")
			idx := e.tap("t0", tap.Options{VnetHdr: true})
			for _, s := range tt.setup {
				e.ip(strings.Fields(s)...)
			}
			ch := tt.ch(br)
			ch.Index = idx
			if err := e.c.SetLink(t.Context(), ch); err != nil {
				t.Fatalf("SetLink(%+v) = %v, want nil", ch, err)
			}
			var ipl *testutil.IPLink
			for _, l := range testutil.IPLinks(t, e.ns) {
				if uint32(l.Index) == idx {
					ipl = l
				}
			}
			if ipl == nil {
				t.Fatalf("link %d is gone after SetLink", idx)
			}
			tt.check(t, ipl)
			l, err := e.c.LinkByIndex(t.Context(), idx)
			if err != nil {
				t.Fatalf("LinkByIndex(%d) = %v", idx, err)
			}
			checkAgainstIP(t, l, ipl, e.nameOf())
		})
	}
}

// Renaming an up link: refused with EBUSY before Linux 6.3, allowed since
// (net/core/dev.c: dev_change_name). Either way the outcome is coherent.
func TestIntegrationRenameUp(t *testing.T) {
	e := newNS(t)
	idx := e.tap("t0", tap.Options{})
	e.ip("link", "set", "t0", "up")
	err := e.c.SetLink(t.Context(), &rtnl.LinkChange{Index: idx, Name: "t9"})
	want := []string{"lo", "t9"}
	if errors.Is(err, unix.EBUSY) {
		want = []string{"lo", "t0"}
	} else if err != nil {
		t.Fatalf("SetLink(rename up link) = %v, want nil or EBUSY", err)
	}
	if got := e.names(); !slices.Equal(got, want) {
		t.Errorf("links after SetLink(rename up link) = %v: %q, want %q", err, got, want)
	}
	t.Logf("SetLink(rename up link) = %v", err)
}

func TestIntegrationAltNames(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	idx := e.tap("t0", tap.Options{})
	const (
		long  = "vm-0123456789abcdef-net0" // longer than IFNAMSIZ
		other = "t0-second"
	)
	for _, n := range []string{long, other} {
		if err := e.c.AddAltName(ctx, idx, n); err != nil {
			t.Fatalf("AddAltName(%d, %s) = %v", idx, n, err)
		}
	}
	if got, want := e.link("t0").AltNames, []string{long, other}; !slices.Equal(got, want) {
		t.Errorf("ip altnames = %q, want %q", got, want)
	}

	gets := []struct {
		name string
		get  func() (*rtnl.Link, error)
	}{
		{"LinkByAltName(long)", func() (*rtnl.Link, error) { return e.c.LinkByAltName(ctx, long) }},
		{"LinkByAltName(other)", func() (*rtnl.Link, error) { return e.c.LinkByAltName(ctx, other) }},
		{"LinkByName(other)", func() (*rtnl.Link, error) { return e.c.LinkByName(ctx, other) }},
		{"LinkByIndex", func() (*rtnl.Link, error) { return e.c.LinkByIndex(ctx, idx) }},
	}
	for _, g := range gets {
		l, err := g.get()
		if err != nil || l.Index != idx || l.Name != "t0" || !slices.Equal(l.AltNames, []string{long, other}) {
			t.Errorf("%s = %+v, %v, want link %d t0 with both alternative names", g.name, l, err, idx)
		}
	}
	if got, err := e.c.IndexByName(ctx, other); got != idx || err != nil {
		t.Errorf("IndexByName(%s) = %d, %v, want %d, nil", other, got, err, idx)
	}

	if err := e.c.DelAltName(ctx, idx, long); err != nil {
		t.Fatalf("DelAltName(%d, %s) = %v", idx, long, err)
	}
	if got, want := e.link("t0").AltNames, []string{other}; !slices.Equal(got, want) {
		t.Errorf("ip altnames after DelAltName = %q, want %q", got, want)
	}
	if l, err := e.c.LinkByAltName(ctx, long); !errors.Is(err, unix.ENODEV) {
		t.Errorf("LinkByAltName(removed name) = %+v, %v, want ENODEV", l, err)
	}
	if err := e.c.DelAltName(ctx, idx, long); err != nil {
		t.Errorf("DelAltName(%d, %s) again = %v, want nil", idx, long, err)
	}
	if err := e.c.DelAltName(ctx, 99999, long); err != nil {
		t.Errorf("DelAltName(absent link) = %v, want nil", err)
	}
}

func TestIntegrationNotFound(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	tests := []struct {
		name string
		err  error
	}{
		{"LinkByName(nope)", func() error { _, err := e.c.LinkByName(ctx, "nope"); return err }()},
		{"LinkByIndex(99999)", func() error { _, err := e.c.LinkByIndex(ctx, 99999); return err }()},
		{"LinkByAltName(nope-alt)", func() error { _, err := e.c.LinkByAltName(ctx, "nope-alt"); return err }()},
		{"IndexByName(nope)", func() error { _, err := e.c.IndexByName(ctx, "nope"); return err }()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, unix.ENODEV) {
			t.Errorf("%s = %v, want an error satisfying errors.Is(err, ENODEV)", tt.name, tt.err)
		}
	}
}

func TestIntegrationIndexByName(t *testing.T) {
	e := newNS(t)
	e.bridge("br0")
	e.tap("t0", tap.Options{})
	e.veth("v0", "v1")
	e.ip("link", "set", "v0", "mtu", "1400")
	for name, l := range testutil.IPLinks(t, e.ns) {
		if got, err := e.c.IndexByName(t.Context(), name); int(got) != l.Index || err != nil {
			t.Errorf("IndexByName(%s) = %d, %v, want %d, nil", name, got, err, l.Index)
		}
		if idx, mtu, err := e.c.IndexMTUByName(t.Context(), name); int(idx) != l.Index || int(mtu) != l.MTU || err != nil {
			t.Errorf("IndexMTUByName(%s) = %d, %d, %v, want %d, %d, nil", name, idx, mtu, err, l.Index, l.MTU)
		}
	}
	for _, name := range []string{"nope", "0123456789abcdef0"} {
		if _, _, err := e.c.IndexMTUByName(t.Context(), name); err == nil {
			t.Errorf("IndexMTUByName(%q) = nil error, want one", name)
		}
	}
	if _, _, err := e.c.IndexMTUByName(t.Context(), "nope"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("IndexMTUByName(nope) = %v, want ENODEV", err)
	}
}

// TestIntegrationSetLinkByAltName selects the link by alternative name:
// the change lands on the link carrying it, and a name nobody carries is
// ENODEV, changing nothing.
func TestIntegrationSetLinkByAltName(t *testing.T) {
	e := newNS(t)
	e.tap("t0", tap.Options{})
	e.ip("link", "property", "add", "dev", "t0", "altname", "tb.0123abcd.0.vm-alt-1")
	g := uint32(77)
	var b rtnl.Batch
	b.SetLink(&rtnl.LinkChange{AltName: "tb.0123abcd.0.vm-alt-1", Group: &g})
	b.SetLink(&rtnl.LinkChange{AltName: "tb.0123abcd.0.vm-alt-2", Group: &g})
	res, _ := e.c.Exec(t.Context(), &b)
	if res[0] != nil || !errors.Is(res[1], unix.ENODEV) {
		t.Fatalf("Exec(SetLink by altname present, absent) = %v, want nil and ENODEV", res)
	}
	if l := testutil.IPLinkByName(t, e.ns, "t0"); l.Group != "77" {
		t.Errorf("ip link show t0: group %q, want 77", l.Group)
	}
}

// TestIntegrationLinks lists a mix of devices with every filter and checks
// both the set returned and each decoded field against iproute2.
func TestIntegrationLinks(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	br := e.bridge("br0")
	owner, group := uint32(4242), uint32(4343)
	e.tap("tq", tap.Options{MultiQueue: true, VnetHdr: true, Owner: &owner, Group: &group})
	e.tap("ts", tap.Options{})
	e.tap("tp0", tap.Options{VnetHdr: true})
	e.tap("tp1", tap.Options{MultiQueue: true})
	e.tap("tfree", tap.Options{})
	e.veth("v0", "v1")
	e.ip("link", "set", "tp0", "master", "br0")
	e.ip("link", "set", "tp1", "master", "br0")
	e.ip("link", "set", "v0", "master", "br0")
	e.ip("link", "set", "tp0", "alias", "vm 1 net0", "group", "9", "txqueuelen", "2000", "mtu", "1400")
	e.ip("link", "property", "add", "dev", "tp0", "altname", "vm-1-net0", "altname", "vm-1-eth0")
	e.ip("link", "set", "tp1", "up")
	e.ip("link", "set", "dev", "tp1", "type", "bridge_slave", "learning", "off", "isolated", "on", "neigh_suppress", "on")

	// Hold queues open on two TAPs, the way a VMM does, and disable one of
	// the multi-queue TAP's.
	q, err := tap.Open("tq", &tap.Options{MultiQueue: true, Queues: 3, VnetHdr: true, NetNS: e.ns})
	if err != nil {
		t.Fatalf("tap.Open(tq) = %v", err)
	}
	defer q.Close()
	ifr, err := unix.NewIfreq("")
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_DETACH_QUEUE)
	if err := unix.IoctlIfreq(int(q.Queues()[2].Fd()), unix.TUNSETQUEUE, ifr); err != nil {
		t.Fatalf("ioctl TUNSETQUEUE IFF_DETACH_QUEUE: %v", err)
	}
	s, err := tap.Open("ts", &tap.Options{NetNS: e.ns})
	if err != nil {
		t.Fatalf("tap.Open(ts) = %v", err)
	}
	defer s.Close()

	tests := []struct {
		name   string
		filter *rtnl.LinkFilter
		want   []string
	}{
		{"all", nil, []string{"lo", "br0", "tq", "ts", "tp0", "tp1", "tfree", "v1", "v0"}},
		{"kind tun", &rtnl.LinkFilter{Kind: "tun"}, []string{"tq", "ts", "tp0", "tp1", "tfree"}},
		{"kind veth", &rtnl.LinkFilter{Kind: "veth"}, []string{"v1", "v0"}},
		{"kind bridge", &rtnl.LinkFilter{Kind: "bridge"}, []string{"br0"}},
		{"kind absent", &rtnl.LinkFilter{Kind: "vxlan"}, nil},
		{"master br0", &rtnl.LinkFilter{Master: br}, []string{"tp0", "tp1", "v0"}},
		{"master br0 kind tun", &rtnl.LinkFilter{Master: br, Kind: "tun"}, []string{"tp0", "tp1"}},
		{"master br0 kind bridge", &rtnl.LinkFilter{Master: br, Kind: "bridge"}, nil},
		{"master without ports", &rtnl.LinkFilter{Master: 1}, nil},
	}
	ipls := testutil.IPLinks(t, e.ns)
	nameOf := e.nameOf()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			links, err := e.c.Links(ctx, tt.filter)
			if err != nil {
				t.Fatalf("Links(%+v) = %v", tt.filter, err)
			}
			var names []string
			for i := range links {
				names = append(names, links[i].Name)
				if i > 0 && links[i].Index <= links[i-1].Index {
					t.Errorf("Links(%+v): index %d after %d, want ascending", tt.filter, links[i].Index, links[i-1].Index)
				}
				ipl := ipls[links[i].Name]
				if ipl == nil {
					t.Errorf("Links(%+v) returned %s, which ip does not list", tt.filter, links[i].Name)
					continue
				}
				checkAgainstIP(t, &links[i], ipl, nameOf)
			}
			// The veth peers are made in the order v1, v0 (the peer
			// first); sort both sides by index to stay independent of it.
			want := slices.Clone(tt.want)
			slices.SortFunc(want, func(a, b string) int { return ipls[a].Index - ipls[b].Index })
			if !slices.Equal(names, want) {
				t.Errorf("Links(%+v) = %q, want %q", tt.filter, names, want)
			}
		})
	}

	// Explicit expectations, beyond agreeing with iproute2.
	get := func(name string) *rtnl.Link {
		t.Helper()
		l, err := e.c.LinkByName(ctx, name)
		if err != nil {
			t.Fatalf("LinkByName(%s) = %v", name, err)
		}
		return l
	}
	tunTests := []struct {
		name string
		want rtnl.TunInfo
	}{
		{"tq", rtnl.TunInfo{TAP: true, VnetHdr: true, Persist: true, MultiQueue: true, Queues: 2, DisabledQueues: 1, Owner: &owner, Group: &group}},
		// The kernel reports no queue count for single-queue devices,
		// attached or not (tun_fill_info).
		{"ts", rtnl.TunInfo{TAP: true, Persist: true}},
		{"tp0", rtnl.TunInfo{TAP: true, Persist: true, VnetHdr: true}},
		{"tp1", rtnl.TunInfo{TAP: true, Persist: true, MultiQueue: true}},
	}
	for _, tt := range tunTests {
		if l := get(tt.name); l.Tun == nil || !equalTun(l.Tun, &tt.want) {
			t.Errorf("LinkByName(%s).Tun = %+v, want %+v", tt.name, l.Tun, tt.want)
		}
	}
	l := get("tp0")
	if l.Master != br || l.Group != 9 || l.TxQueueLen != 2000 || l.MTU != 1400 || l.Alias != "vm 1 net0" ||
		!slices.Equal(l.AltNames, []string{"vm-1-net0", "vm-1-eth0"}) || l.Kind != "tun" || l.SlaveKind != "bridge" {
		t.Errorf("LinkByName(tp0) = %+v, want master %d, group 9, txqlen 2000, MTU 1400, alias, altnames, tun, bridge port", l, br)
	}
	// The kernel's defaults (bcast and mcast flood on; a port without
	// carrier is disabled).
	if want := (rtnl.PortInfo{Learning: true, UnicastFlood: true, BcastFlood: true, McastFlood: true}); l.Port == nil || *l.Port != want {
		t.Errorf("LinkByName(tp0).Port = %+v, want %+v", l.Port, want)
	}
	if want := (rtnl.PortInfo{UnicastFlood: true, Isolated: true, NeighSuppress: true, BcastFlood: true, McastFlood: true}); get("tp1").Port == nil || *get("tp1").Port != want {
		t.Errorf("LinkByName(tp1).Port = %+v, want %+v", get("tp1").Port, want)
	}
	if l := get("v0"); l.Kind != "veth" || l.Tun != nil || l.Port == nil {
		t.Errorf("LinkByName(v0) = %+v, want a veth bridge port without TunInfo", l)
	}
	if l := get("br0"); l.Kind != "bridge" || l.Tun != nil || l.Port != nil || l.SlaveKind != "" {
		t.Errorf("LinkByName(br0) = %+v, want a bridge, no TunInfo, no PortInfo", l)
	}
	if l := get("lo"); l.Index != 1 || l.Kind != "" || l.Flags&unix.IFF_LOOPBACK == 0 || l.Type != unix.ARPHRD_LOOPBACK {
		t.Errorf("LinkByName(lo) = %+v, want index 1, no kind, IFF_LOOPBACK, ARPHRD_LOOPBACK", l)
	}
}

func TestIntegrationDeleteLink(t *testing.T) {
	tests := []struct {
		name  string
		make  func(e *nsEnv)
		del   string
		after []string // links left
	}{
		{"TAP", func(e *nsEnv) { e.tap("t0", tap.Options{}) }, "t0", []string{"lo"}},
		{"bridge", func(e *nsEnv) { e.bridge("br0") }, "br0", []string{"lo"}},
		{"veth takes its peer", func(e *nsEnv) { e.veth("v0", "v1") }, "v0", []string{"lo"}},
		{"bridge keeps its ports", func(e *nsEnv) {
			e.bridge("br0")
			e.tap("t0", tap.Options{})
			e.ip("link", "set", "t0", "master", "br0")
		}, "br0", []string{"lo", "t0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newNS(t)
			tt.make(e)
			idx := e.index(tt.del)
			if err := e.c.DeleteLink(t.Context(), idx); err != nil {
				t.Fatalf("DeleteLink(%d) = %v", idx, err)
			}
			if got := e.names(); !slices.Equal(got, tt.after) {
				t.Errorf("links after DeleteLink(%s) = %q, want %q", tt.del, got, tt.after)
			}
			if err := e.c.DeleteLink(t.Context(), idx); err != nil {
				t.Errorf("DeleteLink(%d) again = %v, want nil", idx, err)
			}
		})
	}
}

func TestIntegrationDeleteGroup(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	e.veth("v0", "v1")
	var b rtnl.Batch
	for _, n := range []string{"g10a", "g10b", "g10c", "g10d", "g10e"} {
		b.SetLink(&rtnl.LinkChange{Index: e.tap(n, tap.Options{MultiQueue: true}), Group: ptr(uint32(10))})
	}
	for _, n := range []string{"g11a", "g11b"} {
		b.SetLink(&rtnl.LinkChange{Index: e.tap(n, tap.Options{}), Group: ptr(uint32(11))})
	}
	if _, err := e.c.Exec(ctx, &b); err != nil {
		t.Fatalf("Exec(move TAPs into groups) = %v", err)
	}

	if err := e.c.DeleteGroup(ctx, 10); err != nil {
		t.Fatalf("DeleteGroup(10) = %v", err)
	}
	want := []string{"g11a", "g11b", "lo", "v0", "v1"}
	if got := e.names(); !slices.Equal(got, want) {
		t.Errorf("links after DeleteGroup(10) = %q, want %q", got, want)
	}
	if err := e.c.DeleteGroup(ctx, 10); err != nil {
		t.Errorf("DeleteGroup(10) again, now empty = %v, want nil", err)
	}
	if err := e.c.DeleteGroup(ctx, 12); err != nil {
		t.Errorf("DeleteGroup(12), never used = %v, want nil", err)
	}
	if err := e.c.DeleteGroup(ctx, 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("DeleteGroup(0) = %v, want EPERM", err)
	}
	if got := e.names(); !slices.Equal(got, want) {
		t.Errorf("links after refused deletes = %q, want %q", got, want)
	}

	// lo has no rtnl_link_ops and cannot be deleted: a group holding it
	// is deleted all or nothing.
	if err := e.c.SetLink(ctx, &rtnl.LinkChange{Index: 1, Group: ptr(uint32(11))}); err != nil {
		t.Fatalf("SetLink(lo, group 11) = %v", err)
	}
	if got := e.link("lo").Group; got != "11" {
		t.Fatalf("lo group = %q after SetLink, want 11", got)
	}
	if err := e.c.DeleteGroup(ctx, 11); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("DeleteGroup(11) with lo in it = %v, want EOPNOTSUPP", err)
	}
	if got := e.names(); !slices.Equal(got, want) {
		t.Errorf("links after DeleteGroup(11) with lo in it = %q, want %q (nothing deleted)", got, want)
	}
	if err := e.c.SetLink(ctx, &rtnl.LinkChange{Index: 1, Group: ptr(uint32(0))}); err != nil {
		t.Fatalf("SetLink(lo, group 0) = %v", err)
	}
	if err := e.c.DeleteGroup(ctx, 11); err != nil {
		t.Errorf("DeleteGroup(11) without lo = %v", err)
	}
	if got, want := e.names(), []string{"lo", "v0", "v1"}; !slices.Equal(got, want) {
		t.Errorf("links after DeleteGroup(11) = %q, want %q", got, want)
	}
}

// TestIntegrationBadInput checks that each refused request fails with a
// clear errno and leaves the namespace and the process as they were.
func TestIntegrationBadInput(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	// Everything stays down: an up link's carrier and operational state
	// settle asynchronously and would show up as changes.
	e.ip("link", "add", "br0", "type", "bridge")
	br := e.index("br0")
	port := e.tap("t0", tap.Options{})
	free := e.tap("t1", tap.Options{})
	other := e.tap("t2", tap.Options{})
	e.ip("link", "set", "t0", "master", "br0")
	if err := e.c.AddAltName(ctx, port, "t0-alt"); err != nil {
		t.Fatalf("AddAltName = %v", err)
	}
	const absent = 99999
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"LinkByName name too long", func() error { _, err := e.c.LinkByName(ctx, "sixteen-bytes-xx"); return err }, unix.ERANGE},
		{"SetLink absent index", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: absent, MTU: 1400}) }, unix.ENODEV},
		{"SetLink MTU below minimum", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, MTU: 10}) }, unix.EINVAL},
		{"SetLink MTU above maximum", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, MTU: 1 << 20}) }, unix.EINVAL},
		{"SetLink rename to a used name", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Name: "t0"}) }, unix.EEXIST},
		{"SetLink rename to a used alternative name", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Name: "t0-alt"}) }, unix.EEXIST},
		{"SetLink invalid name", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Name: "a/b"}) }, unix.EINVAL},
		{"SetLink MAC of 5 bytes", func() error {
			return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Address: net.HardwareAddr{2, 0, 0, 0, 1}})
		}, unix.EINVAL},
		{"SetLink multicast MAC", func() error {
			return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Address: net.HardwareAddr{1, 0, 0, 0, 0, 1}})
		}, unix.EADDRNOTAVAIL},
		{"SetLink alias of 256 bytes", func() error {
			return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Alias: ptr(strings.Repeat("a", 256))})
		}, unix.ERANGE},
		{"SetLink master not a master", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Master: &other}) }, unix.EOPNOTSUPP},
		{"SetLink master absent", func() error { return e.c.SetLink(ctx, &rtnl.LinkChange{Index: free, Master: ptr(uint32(absent))}) }, unix.EINVAL},
		{"SetBridgePort absent index", func() error {
			return e.c.SetBridgePort(ctx, absent, &rtnl.BridgePort{Learning: ptr(false)})
		}, unix.ENODEV},
		{"SetBridgePort not a port", func() error {
			return e.c.SetBridgePort(ctx, free, &rtnl.BridgePort{Learning: ptr(false)})
		}, unix.EOPNOTSUPP},
		{"SetBridgePort on the bridge", func() error {
			return e.c.SetBridgePort(ctx, br, &rtnl.BridgePort{Learning: ptr(false)})
		}, unix.EOPNOTSUPP},
		{"SetNoQueue absent index", func() error { return e.c.SetNoQueue(ctx, absent) }, unix.ENODEV},
		{"AddAltName absent index", func() error { return e.c.AddAltName(ctx, absent, "x-alt") }, unix.ENODEV},
		{"AddAltName used alternative name", func() error { return e.c.AddAltName(ctx, free, "t0-alt") }, unix.EEXIST},
		{"AddAltName used on the same link", func() error { return e.c.AddAltName(ctx, port, "t0-alt") }, unix.EEXIST},
		{"AddAltName used name", func() error { return e.c.AddAltName(ctx, free, "t0") }, unix.EEXIST},
		{"AddAltName own name", func() error { return e.c.AddAltName(ctx, free, "t1") }, unix.EEXIST},
		{"AddAltName of 128 bytes", func() error { return e.c.AddAltName(ctx, free, strings.Repeat("a", 128)) }, unix.ERANGE},
		{"AddFDB absent index", func() error { return e.c.AddFDB(ctx, absent, mac) }, unix.ENODEV},
		{"AddFDB not a port", func() error { return e.c.AddFDB(ctx, free, mac) }, unix.EOPNOTSUPP},
		{"DelFDB not a port", func() error { return e.c.DelFDB(ctx, free, mac) }, unix.EOPNOTSUPP},
		{"DeleteLink lo", func() error { return e.c.DeleteLink(ctx, 1) }, unix.EOPNOTSUPP},
	}
	snapshot := func() []byte {
		var b bytes.Buffer
		// Without -d: the detailed output carries running timers.
		b.Write(e.ip("-j", "link", "show"))
		b.Write(testutil.Run(t, e.ns, "bridge", "-j", "link", "show"))
		b.Write(testutil.Run(t, e.ns, "bridge", "-j", "fdb", "show"))
		b.Write(testutil.Run(t, e.ns, "tc", "-j", "qdisc", "show"))
		return b.Bytes()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, fds := snapshot(), testutil.FDCount(t)
			err := tt.do()
			t.Logf("%s: %v", tt.name, err)
			if !errors.Is(err, tt.want) {
				t.Errorf("%s = %v, want an error satisfying errors.Is(err, %s)", tt.name, err, unix.ErrnoName(tt.want.(unix.Errno)))
			}
			if after := snapshot(); !bytes.Equal(before, after) {
				t.Errorf("%s changed the namespace:\nbefore %s\nafter  %s", tt.name, before, after)
			}
			if got := testutil.FDCount(t); got != fds {
				t.Errorf("%s: open fds = %d, want %d as before", tt.name, got, fds)
			}
		})
	}
}
