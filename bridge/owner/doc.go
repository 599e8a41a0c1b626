// Package owner defines how tapbridge names its TAPs and proves it owns
// them: VM ID validation, TAP names, alternative names, owner tags and the
// instance identity derived from a root directory.
//
// Everything here is pure and allocation-free on its hot paths (formatting
// appends to a caller's buffer, parsing returns substrings of its input), so
// a garbage collector can parse thousands of tags per scan for free.
//
// # Names
//
// A TAP is named "bt" + the first 8 bytes of the VM ID + "-" + the NIC index
// (at most 13 bytes, under the kernel's 15). Two VMs whose IDs share their
// first 8 bytes would collide, so a name has candidates: candidate 0 is the
// plain name, candidates 1 to Candidates-1 replace the 8 bytes with 8
// characters of a hash of the whole ID. Names are never parsed for
// ownership: the owner tag and the alternative name carry the full ID.
//
// # Alternative names
//
// Each TAP also carries "tb." + 8 hex digits of the instance + "." + NIC +
// "." + full VM ID as an alternative name (IFLA_ALT_IFNAME, up to 127
// bytes). The kernel keeps names and alternative names unique per
// namespace, so one lookup finds a VM's NIC by its full ID, whatever name
// candidate it got.
//
// # Owner tags
//
// The link alias (IFLA_IFALIAS) holds the owner tag:
//
//	tb1 i=<instance> v=<vm id> n=<nic>/<nics> m=<guest mac> q=<queues>/<queue size> h=<hypervisor> g=<guard> s=1 c=<created, unix ms>
//
// (h= is left out when the profile is not recorded, g= for the default
// guard mode, s=1 unless the NIC is staged.)
//
// A device whose alias does not parse, or names another instance, is not
// ours and is never touched.
package owner
