package guard_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/guard"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]guard.Mode{"": guard.ModeL2, "l2": guard.ModeL2, "strict": guard.ModeStrict, "off": guard.ModeOff} {
		if got, err := guard.ParseMode(in); got != want || err != nil {
			t.Errorf("ParseMode(%q) = %q, %v, want %q, nil", in, got, err, want)
		}
	}
	for _, in := range []string{"L2", "on", " strict", "none"} {
		if got, err := guard.ParseMode(in); !errors.Is(err, guard.ErrInvalid) || got != "" {
			t.Errorf("ParseMode(%q) = %q, %v, want an error wrapping ErrInvalid", in, got, err)
		}
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestValidate(t *testing.T) {
	many := make([]netip.Prefix, guard.MaxAddrs+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), 32)
	}
	tests := []struct {
		name string
		p    guard.Policy
		want string // "" means valid; otherwise a part of the error
	}{
		{"minimal", guard.Policy{MAC: guestMAC}, ""},
		{"full", guard.Policy{Mode: guard.ModeStrict, MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.5/24"), pfx("2001:db8::5/64"), pfx("fe80::5/64")}, Gateway: gateway4}, ""},
		{"max addresses", guard.Policy{MAC: guestMAC, Addrs: many[:guard.MaxAddrs]}, ""},
		{"/31 host", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.1/31")}}, ""},
		{"off is validated too", guard.Policy{Mode: guard.ModeOff}, "MAC is zero"},
		{"bad mode", guard.Policy{Mode: "on", MAC: guestMAC}, `mode "on"`},
		{"zero MAC", guard.Policy{}, "MAC is zero"},
		{"multicast MAC", guard.Policy{MAC: [6]byte{1, 0, 0x5e, 0, 0, 1}}, "multicast"},
		{"broadcast MAC", guard.Policy{MAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, "multicast"},
		{"too many", guard.Policy{MAC: guestMAC, Addrs: many}, "at most 32"},
		{"invalid prefix", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{{}}}, "not a valid prefix"},
		{"mapped", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("::ffff:10.0.0.5/128")}}, "IPv4-mapped"},
		{"unspecified v4", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("0.0.0.0/32")}}, "unspecified"},
		{"unspecified v6", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("::/128")}}, "unspecified"},
		{"loopback", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("127.0.0.2/8")}}, "loopback"},
		{"loopback v6", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("::1/128")}}, "loopback"},
		{"multicast v4", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("224.0.0.1/32")}}, "multicast"},
		{"multicast v6", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("ff02::1/128")}}, "multicast"},
		{"limited broadcast", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("255.255.255.255/32")}}, "limited broadcast"},
		{"directed broadcast", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.255/24")}}, "broadcast address of its prefix"},
		{"duplicate", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.5/24"), pfx("10.0.0.5/32")}}, "bound twice"},
		{"gateway v6", guard.Policy{MAC: guestMAC, Gateway: netip.MustParseAddr("fe80::1")}, "gateway"},
		{"gateway unspecified", guard.Policy{MAC: guestMAC, Gateway: netip.IPv4Unspecified()}, "gateway"},
		{"gateway bound", guard.Policy{MAC: guestMAC, Addrs: []netip.Prefix{pfx("10.0.0.1/24")}, Gateway: gateway4}, "also bound"},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		_, perr := guard.Program(&tt.p)
		if tt.want == "" {
			if err != nil || perr != nil {
				t.Errorf("%s: Validate() = %v, Program() error = %v, want nil", tt.name, err, perr)
			}
			continue
		}
		if !errors.Is(err, guard.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error wrapping ErrInvalid containing %q", tt.name, err, tt.want)
		}
		if !errors.Is(perr, guard.ErrInvalid) {
			t.Errorf("%s: Program() error = %v, want one wrapping ErrInvalid", tt.name, perr)
		}
	}
}
