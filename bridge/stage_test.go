package bridge

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/rtnl"
)

func TestStagedPort(t *testing.T) {
	p := stagedPort(false)
	if !*p.Locked || *p.Learning || *p.UnicastFlood || *p.McastFlood || *p.BcastFlood || *p.Isolated {
		t.Errorf("stagedPort(false) = locked %v learning %v flood %v/%v/%v isolated %v, want locked, nothing else",
			*p.Locked, *p.Learning, *p.UnicastFlood, *p.McastFlood, *p.BcastFlood, *p.Isolated)
	}
	if p := stagedPort(true); !*p.Isolated {
		t.Errorf("stagedPort(true).Isolated = false, want true")
	}
	// Activate restores exactly what Config gives the mode.
	for _, m := range []string{"", "l2", "strict", "off"} {
		got, err := activePort(m, false, false)
		mode := guard.ModeL2
		if m != "" {
			mode = guard.Mode(m)
		}
		want := portFor(mode, false, false)
		if err != nil || *got.Locked != *want.Locked || *got.UnicastFlood != *want.UnicastFlood || !*got.McastFlood || !*got.BcastFlood {
			t.Errorf("activePort(%q) = %+v, %v, want portFor(%s)", m, got, err, mode)
		}
	}
	if _, err := activePort("bogus", false, false); err == nil {
		t.Error(`activePort("bogus") = nil error, want one`)
	}
}

func TestStagedConflict(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	tests := []struct {
		name string
		e    *rtnl.FDBEntry
		ok   bool
	}{
		{"no entry", nil, true},
		{"remote (extern_learn on vxlan)", &rtnl.FDBEntry{MAC: mac, Port: 9, State: rtnl.FDBStatic, ExtLearned: true}, true},
		{"its own", &rtnl.FDBEntry{MAC: mac, Port: 7, State: rtnl.FDBStatic}, true},
		{"static on another local port", &rtnl.FDBEntry{MAC: mac, Port: 8, State: rtnl.FDBStatic}, false},
		{"learned on another port", &rtnl.FDBEntry{MAC: mac, Port: 8, State: rtnl.FDBReachable}, false},
	}
	for _, tt := range tests {
		err := stagedConflict(tt.e, 7)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("stagedConflict(%s) = %v, want ok %v (else ErrInvalidArgument)", tt.name, err, tt.ok)
		}
	}
}

func TestActivationReady(t *testing.T) {
	port := func(s rtnl.PortState) *rtnl.Link { return &rtnl.Link{Name: "bt1", Port: &rtnl.PortInfo{State: s}} }
	tests := []struct {
		name    string
		l       *rtnl.Link
		staged  bool
		use     bool
		wantErr error // nil: none
	}{
		{"staged, forwarding", port(rtnl.PortForwarding), true, true, nil},
		{"staged, learning", port(rtnl.PortLearning), true, true, nil},
		{"staged, disabled (no carrier)", port(rtnl.PortDisabled), true, false, ErrNoCarrier},
		{"active, disabled: repair only", port(rtnl.PortDisabled), false, false, nil},
		{"active, forwarding", port(rtnl.PortForwarding), false, true, nil},
	}
	for _, tt := range tests {
		use, err := activationReady(tt.l, tt.staged)
		if use != tt.use || tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("activationReady(%s) = %v, %v, want %v, %v", tt.name, use, err, tt.use, tt.wantErr)
		}
	}
	if _, err := activationReady(&rtnl.Link{Name: "x"}, true); err == nil {
		t.Error("activationReady(not a port) = nil error, want one")
	}
}

func TestCheckTakeover(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	tests := []struct {
		name string
		e    rtnl.FDBEntry
		want string // "" for success, else a part of the error
	}{
		{"taken over", rtnl.FDBEntry{Port: 7, State: rtnl.FDBReachable}, ""},
		{"ignored: still on vxlan", rtnl.FDBEntry{Port: 9, ExtLearned: true}, "did not take"},
		{"sticky remote", rtnl.FDBEntry{Port: 9, ExtLearned: true, Sticky: true}, "withdraw it on the source"},
		{"moved but still extern_learn", rtnl.FDBEntry{Port: 7, ExtLearned: true}, "extern_learn"},
	}
	for _, tt := range tests {
		err := checkTakeover(&tt.e, 7, mac)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("checkTakeover(%s) = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestFDBDiff(t *testing.T) {
	l := &rtnl.Link{Index: 7, Name: "bt1"}
	tests := []struct {
		name   string
		e      *rtnl.FDBEntry
		staged bool
		want   string // "" none, else a part of the diff
	}{
		{"active, static here", &rtnl.FDBEntry{Port: 7, State: rtnl.FDBStatic}, false, ""},
		{"active, none", nil, false, "no FDB entry"},
		{"active, elsewhere", &rtnl.FDBEntry{Port: 9, State: rtnl.FDBStatic, ExtLearned: true}, false, "no FDB entry"},
		{"active, learned here", &rtnl.FDBEntry{Port: 7, State: rtnl.FDBReachable}, false, "want static"},
		{"active, extern_learn here", &rtnl.FDBEntry{Port: 7, State: rtnl.FDBStatic, ExtLearned: true}, false, "extern_learn"},
		{"staged, none", nil, true, ""},
		{"staged, remote", &rtnl.FDBEntry{Port: 9, ExtLearned: true}, true, ""},
		{"staged, here", &rtnl.FDBEntry{Port: 7, State: rtnl.FDBStatic}, true, "staged, but"},
	}
	for _, tt := range tests {
		got := fdbDiff(tt.e, l, 0, tt.staged)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("fdbDiff(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
