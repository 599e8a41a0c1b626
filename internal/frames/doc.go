// Package frames builds valid Ethernet frames for tests: the frames a guest
// sends (ARP, IPv4 with options and fragments, UDP, DHCPv4, IPv6 with
// extension header chains, ICMPv6 echo, neighbour discovery and MLD,
// DHCPv6) and the frames an attacker sends (VLAN-tagged, STP BPDUs, LLDP,
// rogue DHCP and router advertisements), with correct lengths and
// checksums: bridge netfilter drops IPv4 with a bad header checksum, so an
// invalid test frame would prove nothing.
//
// Builders return fresh slices and never keep their arguments. They panic
// on arguments no valid frame can have (an IPv6 address where an IPv4 one
// is needed, options that do not fit), as regexp.MustCompile does: they
// build test input, and a broken test input is a bug in the test.
//
// VnetHdr prefixes the virtio-net header a TAP opened with IFF_VNET_HDR
// expects on every write.
package frames
