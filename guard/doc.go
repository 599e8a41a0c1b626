// Package guard builds the port-security filter of a guest NIC: a classic
// BPF program that the caller attaches as a cls_bpf filter in direct-action
// mode on the clsact ingress of the NIC's TAP. tc ingress runs before the
// bridge's rx handler, so the program sees exactly what the guest sent,
// and its return value is the verdict. The package owns the program and its
// meaning only: it is pure (no I/O, no netlink, no devices) and portable;
// encoding the program as TCA_BPF_OPS and installing it belong to the
// caller.
//
// Program turns a Policy (mode, guest MAC, bound addresses) into
// instructions; Decode reads the Policy back from a program, because the
// installed filter is the record of a NIC's policy (see "The record").
//
// # Verdicts
//
// The program returns Drop (TC_ACT_SHOT, 2: the frame is freed and counted
// as a drop on the clsact qdisc) or Pass (TC_ACT_UNSPEC, -1: cls_bpf goes on
// to the next filter, if any, and the frame continues to the bridge). It
// never returns anything else for any frame; in particular never 0, which
// cls_bpf takes as TC_ACT_OK, a pass that ends classification
// (net/sched/cls_bpf.c, cls_bpf_exec_opcode; any other value is treated as
// TC_ACT_UNSPEC).
//
// # What the program enforces
//
// In ModeL2 (the default), on every frame:
//   - the source MAC is the guest MAC;
//   - no VLAN tag, either taken into the skb by the kernel or left in the
//     frame; the ethertype is IPv4, ARP or IPv6: no 802.3 length field (LLC,
//     STP BPDUs), no LLDP, nothing else;
//   - ARP: request or reply only, for Ethernet and IPv4 (htype 1, ptype
//     0x0800, hlen 6, plen 4), with the guest MAC as sender hardware
//     address;
//   - IPv4: version 4, a header length of at least 20 bytes that is honoured
//     (options), a total length covering the header and inside the frame;
//     no UDP from port 67 (DHCP servers and relays) in an unfragmented
//     datagram or a first fragment; non-first fragments carry no UDP header
//     and are not read as one;
//   - IPv6: version 6, the payload inside the frame; the extension header
//     chain (Hop-by-Hop, Destination Options, Routing, Fragment, and AH with
//     its 4-byte length unit) is followed to the upper-layer header, at
//     most MaxExtHeaders headers; a chain the program cannot follow to its
//     end inside the payload is dropped. Then: no UDP from port 547 (DHCPv6
//     servers and relays); no ICMPv6 router advertisement (134) or redirect
//     (137), behind any chain (RFC 7113); router solicitations, neighbour
//     solicitations and advertisements unfragmented (RFC 6980), with every
//     option at least 8 bytes and inside the payload, at most MaxNDOptions
//     of them, and each source or target link-layer address option exactly
//     8 bytes naming the guest MAC.
//
// An address family is enforced when the NIC has bound addresses of that
// family, or in ModeStrict always. In an enforced family:
//   - IPv4: the source is bound, or 0.0.0.0 for DHCP client messages only
//     (unfragmented UDP from 68 to 67); the ARP sender IP is bound, or
//     0.0.0.0 (a probe, RFC 5227);
//   - IPv6: the source is bound, link-local (fe80::/10) or :: ; :: only for
//     router solicitations, neighbour solicitations (DAD) and MLD reports,
//     which are the messages a node sends before it has an address (RFC
//     4861 section 4, RFC 4862 section 5.4, RFC 3810 section 5.2.13); the
//     target of a neighbour advertisement, and of a DAD solicitation, is
//     bound or link-local.
//
// So in ModeStrict an unbound NIC can only bootstrap: DHCPv4 client
// messages, ARP probes, IPv6 from link-local sources (which covers DHCPv6
// client messages, neighbour discovery and link-local traffic), and RS, DAD
// and MLD reports from ::, until an address is bound. ModeStrict differs
// from ModeL2 only in the families without bound addresses, so a strict
// NIC bound in both families behaves as a bound l2 NIC. In ModeL2 a
// family without bound addresses is not restricted at layer 3: binding
// only IPv4 addresses (what a DHCPv4 lease gives) leaves the guest's
// SLAAC IPv6 addresses working. ModeOff installs no program.
//
// Choices made where the issue left room:
//   - A non-first IPv6 fragment carries no upper-layer header; its first
//     fragment holds the whole header chain (RFC 7112) and is checked, so
//     non-first fragments pass after the source check (dropping them would
//     break fragmented guest traffic). Likewise for IPv4.
//   - Neighbour discovery messages behind a Fragment header are dropped:
//     RFC 6980 forbids them, and a receiver that reassembled them anyway
//     would read options the program never saw.
//   - Headers other than the five above (ESP, Mobility, HIP, No Next
//     Header, ...) end the chain as upper-layer protocols and pass; Linux
//     does not parse past them either.
//   - The IPv4 gateway is recorded, not enforced: a bound NIC cannot use it
//     as a source anyway, and an unbound l2 NIC is not restricted at layer 3.
//   - Everything the program reads must lie inside the datagram (IPv4 total
//     length, IPv6 payload length), which must lie inside the frame:
//     receivers drop anything else, and it means a frame cut short anywhere
//     before its end is dropped, while Ethernet padding after it is
//     ignored.
//
// # Kernel hazards
//
//   - A packet load past the end of the frame ends a converted classic
//     program with return value 0 (net/core/filter.c, convert_bpf_ld_abs:
//     "A = 0; exit" when the load helper fails), and 0 is TC_ACT_OK, a
//     pass. A truncated frame could bypass every check. Every load the
//     program makes is therefore preceded by a length check against the
//     frame length (ld len), the IPv4 total length or the IPv6 payload end;
//     the tests run every frame cut at every length through an interpreter
//     that returns 0 like the kernel and fail on any return but Pass and
//     Drop.
//   - The kernel takes an outer 802.1Q or 802.1ad tag out of the frame into
//     skb->vlan_tci before tc ingress (net/core/dev.c,
//     __netif_receive_skb_core calls skb_vlan_untag before
//     sch_handle_ingress), so the bytes at offset 12 show the inner
//     ethertype. The program tests SKF_AD_VLAN_TAG_PRESENT first, and
//     drops; only the outer tag is taken out, so an inner tag stays in the
//     frame and fails the ethertype test too.
//   - At ingress cls_bpf pushes the MAC header back before running the
//     program (net/sched/cls_bpf.c, cls_bpf_classify: __skb_push(skb,
//     skb->mac_len)): offsets count from the Ethernet header and ld len is
//     the whole frame.
//   - Division by X == 0 also ends a program with 0 (bpf_convert_filter);
//     the program never divides.
//
// # The record
//
// After the code come unreachable immediate loads holding the Policy (a
// magic word, format and code versions, mode, MAC, addresses with their
// prefix lengths, gateway), and a return, since the kernel requires one
// last. bpf_check_classic accepts unreachable instructions (it checks
// opcodes and jump ranges; check_load_and_stores ignores immediate loads),
// and cls_bpf keeps the classic instructions as given and dumps them back
// verbatim in TCA_BPF_OPS (cls_bpf_dump_bpf_info). So a new process, or
// the CLI, learns a NIC's mode and bindings by dumping its filter and
// calling Decode, which also checks that the code is exactly what this
// package generates for the record (ErrMismatch otherwise, with the
// recorded Policy, so the caller can reinstall it).
//
// # Size and cost
//
// Classic BPF cannot loop, so the extension header walk and the option walk
// are unrolled, and jumps beyond the 8-bit conditional range go through
// stubs. A program is about 650 instructions without bound addresses,
// 860 with MaxAddrs IPv4 addresses and 1,670 with MaxAddrs IPv6 addresses
// (TestProgramSize), well under BPF_MAXINSNS (4096). A frame runs only the
// checks of its own protocol: a few dozen instructions for most frames,
// about 170 at most in the tests (a chain of MaxExtHeaders headers, or
// MaxNDOptions options; TestRecordUnreachable logs it).
//
// # Concurrency
//
// All functions are pure and safe for concurrent use.
package guard
