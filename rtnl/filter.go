package rtnl

// The classic BPF filter tapbridge installs on a link's ingress sits at a
// fixed place, so that installing a new program replaces the old one in
// place: cls_bpf keys a filter by priority, protocol and handle
// (net/sched/cls_api.c: tc_new_tfilter, net/sched/cls_bpf.c:
// cls_bpf_change). Other filters on the same clsact qdisc are left alone;
// one at IngressBPFPriority with another protocol or kind makes
// SetIngressBPF fail with EINVAL.
const (
	// IngressBPFPriority is the filter's priority: 1, the first to run,
	// so nothing another filter does to a frame precedes the check.
	IngressBPFPriority uint16 = 1

	// IngressBPFHandle is the filter's handle, 0x7462 ("tb"), which marks
	// the filter as tapbridge's in `tc filter show`.
	IngressBPFHandle uint32 = 0x7462

	// MaxBPFInstructions is the longest classic program the kernel takes
	// (BPF_MAXINSNS).
	MaxBPFInstructions = 4096
)

// SockFilter is one classic BPF instruction (struct sock_filter,
// include/uapi/linux/filter.h). A program for SetIngressBPF runs in
// direct-action mode: it returns a tc verdict, such as 2 (TC_ACT_SHOT) to
// drop the frame or 0xFFFFFFFF (TC_ACT_UNSPEC) to let it go on.
type SockFilter struct {
	Op uint16 // opcode: class, size, mode, source (BPF_LD|BPF_H|BPF_ABS...)
	Jt uint8  // jump offset if true
	Jf uint8  // jump offset if false
	K  uint32 // the instruction's constant
}
