package main

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func envOf(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestParseDHCPScript(t *testing.T) {
	mac := "52:54:00:12:34:56"
	cases := []struct {
		name    string
		args    []string
		env     []string
		want    dhcpCall // mac as its string in hostname-free form below
		wantMAC string
		wantErr string
	}{
		{name: "add", args: []string{"add", mac, "10.0.0.2"},
			want: dhcpCall{action: "add", op: dhcpBind, ip: netip.MustParseAddr("10.0.0.2")}, wantMAC: mac},
		{name: "old with hostname", args: []string{"old", mac, "10.0.0.2", "guest-1"},
			want: dhcpCall{action: "old", op: dhcpBind, ip: netip.MustParseAddr("10.0.0.2"), hostname: "guest-1"}, wantMAC: mac},
		{name: "del", args: []string{"del", "52-54-00-12-34-56", "10.0.0.2"},
			want: dhcpCall{action: "del", op: dhcpUnbind, ip: netip.MustParseAddr("10.0.0.2")}, wantMAC: mac},
		{name: "flags", args: []string{"--root", "/r", "--netns", "blue", "add", mac, "10.0.0.2"},
			want: dhcpCall{root: "/r", netns: "blue", netnsSet: true, action: "add", op: dhcpBind, ip: netip.MustParseAddr("10.0.0.2")}, wantMAC: mac},
		{name: "flags with = and one dash", args: []string{"-root=/r", "--netns=/proc/1/ns/net", "--", "add", mac, "10.0.0.2"},
			want: dhcpCall{root: "/r", netns: "/proc/1/ns/net", netnsSet: true, action: "add", op: dhcpBind, ip: netip.MustParseAddr("10.0.0.2")}, wantMAC: mac},
		{name: "empty netns is the caller's", args: []string{"--netns", "", "del", mac, "10.0.0.2"},
			want: dhcpCall{netnsSet: true, action: "del", op: dhcpUnbind, ip: netip.MustParseAddr("10.0.0.2")}, wantMAC: mac},
		{name: "mapped IPv4", args: []string{"add", mac, "::ffff:10.0.0.2"},
			want: dhcpCall{action: "add", op: dhcpBind, ip: netip.MustParseAddr("10.0.0.2")}, wantMAC: mac},
		{name: "help", args: []string{"--root", "/r", "--help", "add"}, want: dhcpCall{help: true, root: "/r"}},
		{name: "h", args: []string{"-h"}, want: dhcpCall{help: true}},
		{name: "init", args: []string{"init"}, want: dhcpCall{action: "init"}},
		{name: "tftp", args: []string{"tftp", "1234", "10.0.0.2", "/srv/tftp/pxelinux.0"}, want: dhcpCall{action: "tftp"}},
		{name: "arp-add", args: []string{"arp-add", mac, "10.0.0.2"}, want: dhcpCall{action: "arp-add"}},
		{name: "arp-del", args: []string{"arp-del", mac, "10.0.0.2"}, want: dhcpCall{action: "arp-del"}},
		{name: "relay-snoop", args: []string{"relay-snoop", "2001:db8::/64", "2001:db8::1"}, want: dhcpCall{action: "relay-snoop"}},
		{name: "not Ethernet", args: []string{"add", "20-00:11:22:33:44:55:66:77:88:99:aa", "10.0.0.2"},
			want: dhcpCall{action: "add", op: dhcpNone, ip: netip.MustParseAddr("10.0.0.2")}},
		{name: "DHCPv6 with DNSMASQ_MAC", args: []string{"add", "00:01:00:01:2c:6b:9e:1a:52:54:00:12:34:56", "fd00::2"},
			env:  []string{"DNSMASQ_MAC", mac, "DNSMASQ_IAID", "1"},
			want: dhcpCall{action: "add", op: dhcpBind, ip: netip.MustParseAddr("fd00::2")}, wantMAC: mac},
		{name: "DHCPv6 without DNSMASQ_MAC", args: []string{"add", "00:01:00:01:2c:6b:9e:1a:52:54:00:12:34:56", "fd00::2"},
			want: dhcpCall{action: "add", op: dhcpNone, ip: netip.MustParseAddr("fd00::2")}},

		{name: "nothing", args: nil, wantErr: "no action"},
		{name: "flags only", args: []string{"--root", "/r"}, wantErr: "no action"},
		{name: "flag without value", args: []string{"--root"}, wantErr: "flag needs an argument: --root"},
		{name: "empty root", args: []string{"--root=", "add", mac, "10.0.0.2"}, wantErr: "--root: empty"},
		{name: "unknown flag", args: []string{"--bridge", "br0", "add", mac, "10.0.0.2"}, wantErr: "not defined: --bridge"},
		{name: "help with value", args: []string{"--help=1"}, wantErr: "takes no value"},
		{name: "unknown action", args: []string{"ad", mac, "10.0.0.2"}, wantErr: `unknown action "ad"`},
		{name: "flag after action", args: []string{"add", "--root", "/r", mac, "10.0.0.2"}, wantErr: "4 arguments"},
		{name: "no IP", args: []string{"add", mac}, wantErr: "1 arguments"},
		{name: "too many", args: []string{"add", mac, "10.0.0.2", "h", "x"}, wantErr: "4 arguments"},
		{name: "bad IP", args: []string{"add", mac, "10.0.0.256"}, wantErr: `IP "10.0.0.256"`},
		{name: "prefix is no IP", args: []string{"add", mac, "10.0.0.2/24"}, wantErr: "IP"},
		{name: "zone", args: []string{"add", mac, "fe80::1%eth0"}, env: []string{"DNSMASQ_MAC", mac}, wantErr: "without a zone"},
		{name: "bad MAC", args: []string{"add", "52:54:00:12:34", "10.0.0.2"}, wantErr: "MAC"},
		{name: "long MAC", args: []string{"add", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "10.0.0.2"}, wantErr: "Ethernet MAC"},
		{name: "hostile MAC", args: []string{"del", "$(reboot)\n", "10.0.0.2"}, wantErr: `MAC "$(reboot)"`},
		{name: "bad DNSMASQ_MAC", args: []string{"add", "00:01", "fd00::2"}, env: []string{"DNSMASQ_MAC", "nope"}, wantErr: `MAC "nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseDHCPScript(c.args, envOf(c.env...))
			if c.wantErr != "" {
				var u *usageError
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.As(err, &u) {
					t.Fatalf("parseDHCPScript(%q) = %+v, %v; want a usage error containing %q", c.args, got, err, c.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("parseDHCPScript(%q) error %q spans lines", c.args, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDHCPScript(%q) = %v, want no error", c.args, err)
			}
			if got.mac.String() != c.wantMAC && !(c.wantMAC == "" && got.mac == nil) {
				t.Errorf("parseDHCPScript(%q) MAC = %q, want %q", c.args, got.mac, c.wantMAC)
			}
			got.mac = nil
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("parseDHCPScript(%q) = %+v, want %+v", c.args, *got, c.want)
			}
		})
	}
}

// FuzzDHCPScript feeds parseDHCPScript what dnsmasq (or anyone) could put on
// the command line, NUL-separated, with DNSMASQ_MAC. Beyond not panicking:
// an error is a one-line usage error; a bind or unbind has a 6-byte
// unicast-or-not MAC and a valid, zone-free, unmapped IP; a no-op carries
// no MAC; and the flags never leak into the positional arguments.
func FuzzDHCPScript(f *testing.F) {
	for _, s := range []string{
		"add\x0052:54:00:12:34:56\x0010.0.0.2",
		"old\x0052:54:00:12:34:56\x0010.0.0.2\x00host",
		"--root\x00/var/lib/tapbridge\x00--netns\x00blue\x00del\x0052:54:00:12:34:56\x0010.0.0.2",
		"--root=/r\x00--\x00add\x0001-02-03-04-05-06\x00fd00::2",
		"init", "tftp\x00100\x0010.0.0.2\x00/f", "arp-add\x0052:54:00:12:34:56\x0010.0.0.2",
		"add\x0020-00:11\x0010.0.0.2", "add\x00\x00", "--help", "-h=", "--root",
	} {
		f.Add(s, "")
		f.Add(s, "52:54:00:12:34:56")
	}
	f.Fuzz(func(t *testing.T, line, envMAC string) {
		args := strings.Split(line, "\x00")
		c, err := parseDHCPScript(args, envOf("DNSMASQ_MAC", envMAC))
		if err != nil {
			var u *usageError
			if !errors.As(err, &u) {
				t.Fatalf("parseDHCPScript(%q) error %v is not a usage error", args, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("parseDHCPScript(%q) error %q spans lines", args, err)
			}
			return
		}
		if c.help {
			return
		}
		switch c.op {
		case dhcpBind, dhcpUnbind:
			if len(c.mac) != 6 || !c.ip.IsValid() || c.ip.Zone() != "" || c.ip.Is4In6() {
				t.Fatalf("parseDHCPScript(%q) = MAC %v IP %v, want a 6-byte MAC and a plain IP", args, c.mac, c.ip)
			}
			if (c.op == dhcpBind) != (c.action == "add" || c.action == "old") || c.op == dhcpUnbind && c.action != "del" {
				t.Fatalf("parseDHCPScript(%q) op %d for action %q", args, c.op, c.action)
			}
			if !slices.Contains(args, c.action) {
				t.Fatalf("parseDHCPScript(%q) action %q is not an argument", args, c.action)
			}
			if _, err := net.ParseMAC(c.mac.String()); err != nil {
				t.Fatalf("parseDHCPScript(%q) MAC %v does not round-trip: %v", args, c.mac, err)
			}
		case dhcpNone:
			if c.mac != nil {
				t.Fatalf("parseDHCPScript(%q) = no-op with MAC %v", args, c.mac)
			}
		default:
			t.Fatalf("parseDHCPScript(%q) op %d", args, c.op)
		}
	})
}
