// Package cbpf is a classic BPF (cBPF) checker and interpreter that behaves
// like the Linux kernel does for a classic program attached to a TAP's tc
// ingress with cls_bpf: tests and fuzz targets run programs here, without
// root, and get the verdict the kernel would give.
//
// It owns three things: the instruction set (Insn, the layout of the
// kernel's struct sock_filter, and its opcode constants), Check, which
// accepts exactly the programs bpf_check_classic accepts, and Run, which
// executes a program on a frame with the semantics of a classic program
// converted to eBPF by bpf_convert_filter (net/core/filter.c). Ingress models
// what the kernel does to a frame written into a TAP before tc ingress sees
// it.
//
// # Kernel semantics modelled
//
//   - A packet load (ld/ldh/ldb [k], [x+k], ldx 4*([k]&0xf)) that reaches
//     past the end of the frame ENDS the program with return value 0
//     (convert_bpf_ld_abs: "A = 0; exit" when the load helper fails). For
//     cls_bpf in direct-action mode 0 is TC_ACT_OK, a pass: a program that
//     loads without checking the length first passes truncated frames.
//   - Division or modulo by X == 0 ends the program with 0 (bpf_convert_filter:
//     "For cBPF programs, this was always return 0").
//   - Shifts by X use the low 5 bits of X, as the eBPF interpreter and JITs do
//     for 32-bit shifts.
//   - Negative offsets SKF_NET_OFF+n and SKF_LL_OFF+n load relative to the
//     network and link-layer headers (bpf_skb_load_helper_convert_offset);
//     anything below SKF_LL_OFF ends the program with 0. The kernel bounds
//     such loads by the skb; Run bounds them by the frame.
//   - Ancillary loads (SKF_AD_OFF+...) come from Meta, whatever the load size,
//     as convert_bpf_extensions ignores it. SKF_AD_NLATTR and
//     SKF_AD_NLATTR_NEST are not modelled: Run returns an error for them.
//   - The scratch memory M[0..15] starts zeroed; Check refuses programs that
//     read a cell before writing it, as check_load_and_stores does.
//
// # Concurrency
//
// Everything here is a pure function of its arguments and safe for
// concurrent use.
package cbpf
