package bridge

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
)

func TestGuardDiffs(t *testing.T) {
	prog := func(t *testing.T, p *guard.Policy) []rtnl.SockFilter {
		t.Helper()
		if p.MAC == [6]byte{} {
			p.MAC = testMAC
		}
		in, err := guard.Program(p)
		if err != nil {
			t.Fatal(err)
		}
		return sockFilters(in)
	}
	nic := func(mode string, edit ...func(*found)) found {
		f := found{nic: 0, link: rtnl.Link{Index: 40, Name: "btvm-0", Master: 7,
			Port: &rtnl.PortInfo{Locked: true}}}
		f.tag.MAC, f.tag.Guard = testMAC, mode
		for _, e := range edit {
			e(&f)
		}
		return f
	}
	l2 := prog(t, &guard.Policy{Mode: guard.ModeL2})
	bound := prog(t, &guard.Policy{Mode: guard.ModeL2, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24")}})
	strict := prog(t, &guard.Policy{Mode: guard.ModeStrict})
	other := prog(t, &guard.Policy{Mode: guard.ModeL2, MAC: [6]byte{2, 9, 9, 9, 9, 9}})
	tampered := slices.Clone(l2)
	tampered[0].K ^= 1
	foreign := []rtnl.SockFilter{{Op: 0x06, K: 0xffffffff}} // ret #-1: pass all
	unlocked := func(f *found) { f.link.Port.Locked = false }
	flooding := func(f *found) { f.link.Port.UnicastFlood = true }
	doomed := func(f *found) { f.link.Group = testOwn.group }

	tests := []struct {
		desc string
		nic  found
		prog []rtnl.SockFilter
		want []string
	}{
		{"l2, as made", nic(""), l2, nil},
		{"l2, bound", nic(""), bound, nil},
		{"strict, as made", nic("strict"), strict, nil},
		{"off, no filter, port as before", nic("off", unlocked, flooding), nil, nil},
		{"filter removed", nic(""), nil, []string{"nic 0 (btvm-0): guard l2, but no guard filter on its ingress"}},
		{"strict filter removed", nic("strict"), nil, []string{"nic 0 (btvm-0): guard strict, but no guard filter on its ingress"}},
		{"port unlocked, flooding", nic("", unlocked, flooding), l2, []string{
			"nic 0 (btvm-0): guard l2, but the bridge port is not locked",
			"nic 0 (btvm-0): guard l2, but the bridge port floods unknown unicast to the guest"}},
		{"l2 filter on a strict NIC", nic("strict"), l2, []string{"nic 0 (btvm-0): guard filter enforces mode l2, want strict"}},
		{"another MAC", nic(""), other, []string{"nic 0 (btvm-0): guard filter allows MAC 02:09:09:09:09:09, want the guest MAC 02:01:02:03:04:05"}},
		{"tampered program", nic(""), tampered, []string{"nic 0 (btvm-0): guard l2: filter program differs from what this version makes"}},
		{"someone else's filter", nic(""), foreign, []string{"nic 0 (btvm-0): guard l2, but its ingress filter is not the guard's"}},
		{"filter on an off NIC", nic("off"), l2, []string{"nic 0 (btvm-0): guard off, but a filter is installed on its ingress"}},
		{"bad tag mode", nic("paranoid"), l2, []string{`nic 0 (btvm-0): tag records guard mode "paranoid"`}},
		{"being deleted", nic("", doomed), nil, nil},
		{"off the bridge: no port to check", nic("", unlocked, func(f *found) { f.link.Master, f.link.Port = 0, nil }), l2, nil},
		{"on another bridge: verifyTAP says so", nic("", unlocked, flooding, func(f *found) { f.link.Master = 9 }), l2, nil},
	}
	for _, tt := range tests {
		got := guardDiffs([]found{tt.nic}, [][]rtnl.SockFilter{tt.prog}, 7, testOwn.group)
		ok := len(got) == len(tt.want)
		for i := 0; ok && i < len(got); i++ {
			ok = strings.HasPrefix(got[i], tt.want[i])
		}
		if !ok {
			t.Errorf("guardDiffs(%s) =\n%s\nwant (prefixes)\n%s", tt.desc, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}
