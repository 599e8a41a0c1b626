package rtnl

import (
	"errors"
	"testing"
)

func TestLinkChangeValidate(t *testing.T) {
	ptr := func(v uint32) *uint32 { return &v }
	off := false
	bad := PortState(5)
	good := PortLearning
	tests := []struct {
		name string
		ch   LinkChange
		want error // nil: valid
	}{
		{"index", LinkChange{Index: 7, MTU: 1400}, nil},
		{"altname", LinkChange{AltName: "vm-1"}, nil},
		{"no link", LinkChange{MTU: 1400}, errNoIndex},
		{"port", LinkChange{Index: 7, Group: ptr(9), Port: &BridgePort{Locked: &off}}, nil},
		{"port and state", LinkChange{Index: 7, Port: &BridgePort{State: &good}}, nil},
		{"port with master", LinkChange{Index: 7, Master: ptr(3), Port: &BridgePort{Locked: &off}}, errPortWithMaster},
		{"port with release", LinkChange{Index: 7, Master: ptr(0), Port: &BridgePort{}}, errPortWithMaster},
		{"master without port", LinkChange{Index: 7, Master: ptr(3)}, nil},
		{"port state out of range", LinkChange{Index: 7, Port: &BridgePort{State: &bad}}, errPortState},
	}
	for _, tt := range tests {
		if err := tt.ch.validate(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: LinkChange.validate() = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestPortStateString(t *testing.T) {
	for s, want := range map[PortState]string{
		PortDisabled: "disabled", PortListening: "listening", PortLearning: "learning",
		PortForwarding: "forwarding", PortBlocking: "blocking", 9: "state 9",
	} {
		if got := s.String(); got != want {
			t.Errorf("PortState(%d).String() = %q, want %q", s, got, want)
		}
	}
}
