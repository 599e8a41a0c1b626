package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/tapbridge/tapbridge/bridge"
	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/guard"
	"github.com/tapbridge/tapbridge/network"
)

// guardFlagUsage is the help text of up's --guard flag.
const guardFlagUsage = "port-security `MODE` of the VM's NICs: l2 (filter what the guest sends: its MAC, ARP, no rogue DHCP or router advertisements, its bound IPs), strict (l2, and an unbound NIC speaks only DHCP, ARP probes and link-local IPv6 until an address is bound) or off (no filter; unsafe for untrusted guests) (default: the instance's, l2)"

const dhcpScriptAbout = `Apply a lease event of dnsmasq's --dhcp-script protocol: add and old bind
the lease's IP to the NIC of this instance whose guest MAC is MAC, del
unbinds it; a restart of dnsmasq, which calls old for every lease, restores
every binding. A MAC that is not one of the instance's guests, an instance
with nothing recorded (no up ran) or a bridge that is gone is no error:
exit 0, nothing done. The other calls (init, tftp, arp-add, arp-del,
arp-old, relay-snoop) exit 0 doing nothing. For a DHCPv6 lease the MAC is
taken from DNSMASQ_MAC. dnsmasq takes a script path only: point
--dhcp-script at a two-line wrapper that execs 'tapbridge dhcp-script
--root DIR --netns NAME "$@"'.`

func runBind(ctx context.Context, e *env, args []string) int {
	f := newFlags("bind", "bind --vm ID [--nic N] [--ip ADDR ...] [flags]",
		`Bind addresses to NIC N of VM ID: from then on its guard lets the guest
send only from them (and from link-local and bootstrapping addresses). The
set replaces the NIC's; without --ip every address is unbound. The filter is
replaced in place: the NIC is never unfiltered. It prints the NIC's bound
addresses. A NIC whose guard is off cannot be bound (exit 1).`)
	vm := f.String("vm", "", "the VM `ID` (required)")
	nic := f.Int("nic", 0, "the NIC index `N` within the VM")
	var ips stringList
	f.Var(&ips, "ip", fmt.Sprintf("an `ADDR` to bind, IPv4 or IPv6, with an optional prefix length (10.0.0.2/24); repeat for more, at most %d", guard.MaxAddrs))
	dev := f.String("bridge", "", "the bridge `BR` (default: the one recorded in the root dir)")
	inst := addInstanceFlags(f)
	if done, code := f.parse(e, args); done {
		return code
	}
	return f.finish(e, func() error {
		if err := validVMID("vm", *vm); err != nil {
			return err
		}
		addrs, err := parseBindAddrs(ips)
		if err != nil {
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
		err = b.Bind(ctx, *vm, *nic, addrs)
		if cerr := b.Close(); err == nil {
			err = cerr
		}
		switch {
		case errors.Is(err, network.ErrNotFound):
			return fmt.Errorf("vm %s has no NIC %d of instance %s in %s", *vm, *nic, in.conf.RootDir, where(in.conf))
		case err != nil:
			return err
		}
		if len(addrs) == 0 {
			fmt.Fprintf(e.stdout, "vm %s nic %d: unbound\n", *vm, *nic)
			return nil
		}
		s := make([]string, len(addrs))
		for i, a := range addrs {
			s[i] = a.String()
		}
		fmt.Fprintf(e.stdout, "vm %s nic %d: bound %s\n", *vm, *nic, strings.Join(s, " "))
		return nil
	}())
}

// parseBindAddrs parses bind's --ip values: an address, or an address with
// a prefix length (its address is what is bound, the length is kept).
func parseBindAddrs(vals []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(vals))
	for _, v := range vals {
		var p netip.Prefix
		var err error
		if strings.Contains(v, "/") {
			p, err = netip.ParsePrefix(v)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(v); err == nil {
				if a.Zone() != "" {
					err = errors.New("zone not allowed")
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, usagef("--ip %q: want an IPv4 or IPv6 address, optionally with /LEN (%v)", oneLine(v), err)
		}
		out = append(out, netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())))
	}
	return out, nil
}

func runDHCPScript(ctx context.Context, e *env, args []string) int {
	// The flag set only gives the help text and the messages: dnsmasq's
	// positional arguments are parsed by parseDHCPScript.
	f := newFlags("dhcp-script", "dhcp-script [--root DIR] [--netns NAME|PATH] add|old|del MAC IP [HOSTNAME]", dhcpScriptAbout)
	addInstanceFlags(f)
	c, err := parseDHCPScript(args, os.Getenv)
	if err != nil {
		return f.usageErr(e, err)
	}
	if c.help {
		f.printUsage(e.stdout)
		return exitOK
	}
	if c.op == dhcpNone {
		return exitOK
	}
	return f.finish(e, func() error {
		root := cmp.Or(c.root, config.DefaultRootDir)
		in, err := loadInstance(root, c.netns, c.netnsSet)
		if err != nil {
			return err
		}
		if !in.recorded {
			return nil // no up ran for this instance: no TAP of ours
		}
		b, err := bridge.Open(in.conf, in.bridgeDev)
		if errors.Is(err, bridge.ErrBridgeNotFound) {
			return nil // the TAPs of a bridge that is gone have nothing to bind
		}
		if err != nil {
			return err
		}
		_, err = b.Lease(ctx, c.mac, c.ip, c.op == dhcpBind)
		if cerr := b.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("dhcp-script %s %s %s: %w", c.action, c.mac, c.ip, err)
		}
		return nil
	}())
}

// guardColumn is the GUARD column of ls.
func guardColumn(mode string) string {
	if mode == "" {
		return "off"
	}
	return mode
}

// boundColumn is the BOUND column of ls.
func boundColumn(bound []string) string {
	if len(bound) == 0 {
		return "-"
	}
	return strings.Join(bound, ",")
}
