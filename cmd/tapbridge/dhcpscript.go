package main

import (
	"net"
	"net/netip"
	"strings"
)

// dhcpOp is what a dnsmasq script call asks of tapbridge.
type dhcpOp int

const (
	// dhcpNone: a call tapbridge has nothing to do for (init, tftp,
	// arp-add, arp-del, relay-snoop, or a lease of a client that has no
	// Ethernet MAC, such as a DHCPv6 lease whose MAC dnsmasq does not know).
	dhcpNone dhcpOp = iota
	// dhcpBind: add or old, bind the lease's IP to the guest's NIC.
	dhcpBind
	// dhcpUnbind: del, unbind it.
	dhcpUnbind
)

// dhcpCall is one parsed `tapbridge dhcp-script` command line.
type dhcpCall struct {
	help     bool   // --help: print the usage, do nothing else
	root     string // --root; "" when not given
	netns    string // --netns, as given
	netnsSet bool
	action   string // dnsmasq's first argument: add, old, del, init, ...
	op       dhcpOp
	mac      net.HardwareAddr // dhcpBind/dhcpUnbind: the guest's MAC, 6 bytes
	ip       netip.Addr       // dhcpBind/dhcpUnbind: the lease's address, no zone
	hostname string           // ignored, kept for messages
}

// dhcpNoop are the actions of dnsmasq's --dhcp-script protocol that carry
// no lease of a guest NIC (dnsmasq(8), --dhcp-script and --script-arp):
// they succeed doing nothing, whatever their arguments.
var dhcpNoop = []string{"init", "tftp", "arp-add", "arp-del", "arp-old", "relay-snoop"}

// parseDHCPScript parses the arguments of `tapbridge dhcp-script` (without
// the command name): the wrapper's flags --root DIR and --netns NAME|PATH
// (one or two dashes, "--flag value" or "--flag=value"), then what dnsmasq
// appends: ACTION MAC IP [HOSTNAME] for add, old and del. getenv reads
// dnsmasq's DNSMASQ_* variables: for a DHCPv6 lease dnsmasq passes the
// client's DUID where a DHCPv4 lease has the MAC, and the MAC (when it
// knows it) in DNSMASQ_MAC. A MAC of another hardware type, which dnsmasq
// writes as "TYPE-ADDRESS", is no Ethernet guest's: dhcpNone. The errors
// are usage errors; parseDHCPScript is pure.
func parseDHCPScript(args []string, getenv func(string) string) (*dhcpCall, error) {
	c := &dhcpCall{}
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			args = args[1:]
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		switch name {
		case "h", "help":
			if hasVal {
				return nil, usagef("flag --%s takes no value", name)
			}
			c.help = true
			return c, nil
		case "root", "netns":
		default:
			return nil, usagef("flag provided but not defined: %s", oneLine(a))
		}
		args = args[1:]
		if !hasVal {
			if len(args) == 0 {
				return nil, usagef("flag needs an argument: --%s", name)
			}
			val, args = args[0], args[1:]
		}
		if name == "root" {
			if val == "" {
				return nil, usagef("--root: empty directory")
			}
			c.root = val
		} else {
			c.netns, c.netnsSet = val, true
		}
	}
	if len(args) == 0 {
		return nil, usagef("no action: want add, old or del MAC IP [HOSTNAME] (as dnsmasq calls it)")
	}
	c.action, args = args[0], args[1:]
	for _, a := range dhcpNoop {
		if c.action == a {
			return c, nil
		}
	}
	switch c.action {
	case "add", "old":
		c.op = dhcpBind
	case "del":
		c.op = dhcpUnbind
	default:
		return nil, usagef("unknown action %q: want add, old or del (or one of %s, which do nothing)", oneLine(c.action), strings.Join(dhcpNoop, ", "))
	}
	if len(args) < 2 || len(args) > 3 {
		return nil, usagef("%s: %d arguments, want MAC IP [HOSTNAME]", c.action, len(args))
	}
	if len(args) == 3 {
		c.hostname = args[2]
	}
	ip, err := netip.ParseAddr(args[1])
	if err != nil || ip.Zone() != "" {
		return nil, usagef("%s: IP %q: want an IPv4 or IPv6 address without a zone", c.action, oneLine(args[1]))
	}
	c.ip = ip.Unmap()
	macArg := args[0]
	if c.ip.Is6() {
		// DHCPv6: args[0] is the DUID; the MAC, if dnsmasq knows it, is in
		// the environment.
		macArg = ""
		if getenv != nil {
			macArg = getenv("DNSMASQ_MAC")
		}
		if macArg == "" {
			c.op = dhcpNone
			return c, nil
		}
	}
	if otherHWType(macArg) {
		c.op = dhcpNone
		return c, nil
	}
	mac, err := net.ParseMAC(macArg)
	if err != nil || len(mac) != 6 {
		return nil, usagef("%s: MAC %q: want an Ethernet MAC such as 52:54:00:12:34:56", c.action, oneLine(macArg))
	}
	c.mac = mac
	return c, nil
}

// otherHWType reports whether s is how dnsmasq writes the hardware address
// of a client that is not Ethernet: two hex digits of the ARP hardware
// type and a dash, then the address with colons (dnsmasq src/helper.c).
// A MAC written with dashes only (52-54-00-12-34-56) is not one.
func otherHWType(s string) bool {
	return len(s) >= 3 && s[2] == '-' && isHex(s[0]) && isHex(s[1]) && !strings.Contains(s[3:], "-")
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}
