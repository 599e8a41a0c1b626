package rtnl

import (
	"context"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// bpfAnswerSize estimates an ingress filter get's answer in the receive
// buffer: room for the longest classic program.
const bpfAnswerSize = MaxBPFInstructions*unix.SizeofSockFilter + 4<<10

var (
	errNoProgram   = errors.New("classic BPF program has no instructions")
	errLongProgram = fmt.Errorf("classic BPF program longer than %d instructions (BPF_MAXINSNS)", MaxBPFInstructions)
)

// SetIngressBPF installs prog as the classic BPF filter on the ingress of
// link index, in direct-action mode: the program's return value is the
// verdict for every frame the link receives, which for a TAP is every
// frame its guest sends, before the bridge sees it. The link needs a
// clsact qdisc (AddClsact, which can go first in the same batch).
//
// The filter sits at IngressBPFPriority and IngressBPFHandle, protocol
// ETH_P_ALL, kind "bpf". Installing over tapbridge's filter replaces the
// program in place, atomically: the kernel finds the filter by priority,
// protocol and handle, builds the new program, and swaps it into the list
// the classifier walks with list_replace_rcu (net/sched/cls_api.c:
// tc_new_tfilter, which replaces an existing filter unless NLM_F_EXCL is
// set; net/sched/cls_bpf.c: cls_bpf_change). Every frame is judged by the
// old program or by the new one; there is no moment without a filter, as
// there would be with a delete and an add. A program the kernel refuses
// leaves the old one in place.
//
// prog must have 1 to MaxBPFInstructions instructions (refused before
// sending). The request fails with an error satisfying errors.Is(err,
// unix.ENODEV) if the link does not exist, unix.EINVAL if it has no clsact
// qdisc, if the kernel's checker refuses the program (sk_chk_filter), or
// if another filter holds IngressBPFPriority with another protocol or kind.
func (c *Conn) SetIngressBPF(ctx context.Context, index uint32, prog []SockFilter) error {
	var b Batch
	b.SetIngressBPF(index, prog)
	return c.exec1(ctx, &b)
}

// SetIngressBPF adds the request of [Conn.SetIngressBPF]. prog is encoded
// when the request is added; later changes to it are not seen.
func (b *Batch) SetIngressBPF(index uint32, prog []SockFilter) {
	data, err := ingressBPFMessage(index, prog)
	// NLM_F_CREATE without NLM_F_EXCL: create the filter, or replace the
	// one at our priority and handle (tc_new_tfilter checks only these
	// two; NLM_F_REPLACE is what `tc filter replace` sends too).
	b.add(unix.RTM_NEWTFILTER, netlink.Acknowledge|netlink.Create|netlink.Replace, data, err,
		fmt.Sprintf("set ingress bpf filter on link %d", index))
}

// ingressFilter returns the struct tcmsg that names tapbridge's ingress
// filter on link index.
func ingressFilter(index uint32, extra int) []byte {
	info := uint32(IngressBPFPriority)<<16 | uint32(htons(unix.ETH_P_ALL))
	return tcmsg(index, IngressBPFHandle, tcHIngress, info, extra)
}

func ingressBPFMessage(index uint32, prog []SockFilter) ([]byte, error) {
	switch {
	case index == 0:
		return nil, errNoIndex
	case len(prog) == 0:
		return nil, errNoProgram
	case len(prog) > MaxBPFInstructions:
		return nil, errLongProgram
	}
	// Written out by hand rather than with netlink.AttributeEncoder, which
	// copies the instructions three times: this is the guard's update
	// path, with programs of up to 32 KiB. The golden tests pin the bytes.
	nops := len(prog) * unix.SizeofSockFilter
	const (
		kindLen  = 4 + 4 // TCA_KIND "bpf\0"
		lenLen   = 4 + 4 // TCA_BPF_OPS_LEN, u16 padded
		flagsLen = 4 + 4 // TCA_BPF_FLAGS
	)
	optsLen := 4 + lenLen + 4 + nops + flagsLen
	b := ingressFilter(index, kindLen+optsLen)
	b = appendAttrHeader(b, unix.TCA_KIND, 4)
	b = append(b, 'b', 'p', 'f', 0)
	b = appendAttrHeader(b, unix.TCA_OPTIONS|unix.NLA_F_NESTED, optsLen-4)
	b = appendAttrHeader(b, tcaBPFOpsLen, 2)
	b = ne.AppendUint16(b, uint16(len(prog)))
	b = append(b, 0, 0)
	b = appendAttrHeader(b, tcaBPFOps, nops)
	for _, ins := range prog {
		b = ne.AppendUint16(b, ins.Op)
		b = append(b, ins.Jt, ins.Jf)
		b = ne.AppendUint32(b, ins.K)
	}
	b = appendAttrHeader(b, tcaBPFFlags, 4)
	return ne.AppendUint32(b, tcaBPFFlagActDirect), nil
}

// IngressBPF returns the classic program of tapbridge's ingress filter on
// link index, as it was installed (cls_bpf keeps and reports the
// instructions it was given), or nil and no error if the link has no
// such filter. It fails with an error satisfying errors.Is(err,
// unix.ENODEV) if the link does not exist, and with an error if the
// filter at IngressBPFPriority and IngressBPFHandle is not a classic
// program in direct-action mode, or is of another kind (unix.EINVAL).
func (c *Conn) IngressBPF(ctx context.Context, index uint32) ([]SockFilter, error) {
	var b Batch
	var prog []SockFilter
	b.GetIngressBPF(index, &prog)
	if err := c.exec1(ctx, &b); err != nil {
		return nil, err
	}
	return prog, nil
}

// GetIngressBPF adds a request for the program of tapbridge's ingress
// filter on link index; on success Exec sets *dst to it, reusing its
// storage, or to nil if there is no such filter. The request's result is
// as [Conn.IngressBPF]'s error.
func (b *Batch) GetIngressBPF(index uint32, dst *[]SockFilter) {
	var data []byte
	var err error
	if index == 0 {
		err = errNoIndex
	} else {
		// TCA_KIND makes the kernel refuse a filter of another kind at
		// our priority (EINVAL) rather than send it.
		data, err = encodeAttrs(ingressFilter(index, 8), func(ae *netlink.AttributeEncoder) {
			ae.String(unix.TCA_KIND, "bpf")
		})
	}
	b.addGet(unix.RTM_GETTFILTER, 0, data, err, fmt.Sprintf("get ingress bpf filter of link %d", index),
		(*bpfAnswer)(dst), bpfAnswerSize)
}

// bpfAnswer is a *[]SockFilter as the destination of GetIngressBPF.
type bpfAnswer []SockFilter

func (p *bpfAnswer) decode(typ netlink.HeaderType, data []byte) error {
	if typ != unix.RTM_NEWTFILTER {
		return unexpectedType(typ)
	}
	f := bpfFilter{ops: (*p)[:0]}
	if err := f.decode(data); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	switch {
	case f.kind != "bpf":
		return fmt.Errorf("filter is of kind %q, not bpf", f.kind)
	case f.ebpf || f.opsLen < 0:
		return errors.New("filter holds no classic BPF program")
	case f.flags&tcaBPFFlagActDirect == 0:
		return errors.New("filter is not in direct-action mode")
	}
	*p = f.ops
	return nil
}

// absent reports the kernel's answers for a link without tapbridge's
// filter: ENOENT when the chain holds no filter at our priority or none
// with our handle, and EINVAL with one of two extended-ack messages when
// the link has no clsact qdisc or its clsact has no filter chain (yet, or
// any longer) (net/sched/cls_api.c: __tcf_qdisc_find, tc_get_tfilter).
// Every other EINVAL, such as a filter of another kind at our priority,
// stays an error; were the kernel to reword the messages, the absence
// would become an error too, not the other way round.
func (p *bpfAnswer) absent(err error) bool {
	var oe *netlink.OpError
	switch {
	case errors.Is(err, unix.ENOENT):
	case errors.Is(err, unix.EINVAL) && errors.As(err, &oe) &&
		(oe.Message == "Parent Qdisc doesn't exists" || oe.Message == "Cannot find specified filter chain"):
	default:
		return false
	}
	*p = nil
	return true
}

// bpfFilter is what tapbridge reads of an RTM_NEWTFILTER payload.
type bpfFilter struct {
	index, handle, parent, info uint32

	kind   string
	ops    []SockFilter // appended to
	opsLen int          // TCA_BPF_OPS_LEN, -1 if absent
	flags  uint32       // TCA_BPF_FLAGS
	ebpf   bool         // TCA_BPF_FD: an eBPF program
}

// decode decodes an RTM_NEWTFILTER payload into f, appending the program
// to f.ops. It is an error for TCA_BPF_OPS not to hold TCA_BPF_OPS_LEN
// instructions.
func (f *bpfFilter) decode(b []byte) error {
	if len(b) < sizeofTcMsg {
		return errShortTcMessage
	}
	f.index = ne.Uint32(b[4:8])
	f.handle = ne.Uint32(b[8:12])
	f.parent = ne.Uint32(b[12:16])
	f.info = ne.Uint32(b[16:20])
	f.opsLen = -1
	var opts []byte
	a := attrs{b: b[sizeofTcMsg:]}
	for a.next() {
		switch a.typ {
		case unix.TCA_KIND:
			f.kind = a.tcKind()
		case unix.TCA_OPTIONS:
			opts = a.data
		}
	}
	if a.err != nil || opts == nil || f.kind != "bpf" {
		// Another kind's options mean something else; a chain's head
		// message (a dump's first) has none.
		return a.err
	}
	var ops []byte
	hasOps := false
	a = attrs{b: opts}
	for a.next() {
		switch a.typ {
		case tcaBPFOpsLen:
			f.opsLen = int(a.u16())
		case tcaBPFOps:
			ops, hasOps = a.data, true
		case tcaBPFFlags:
			f.flags = a.u32()
		case tcaBPFFD:
			f.ebpf = true
		}
	}
	if a.err != nil {
		return a.err
	}
	if hasOps != (f.opsLen >= 0) || hasOps && len(ops) != f.opsLen*unix.SizeofSockFilter {
		return fmt.Errorf("TCA_BPF_OPS of %d bytes for TCA_BPF_OPS_LEN %d: %w", len(ops), f.opsLen, errBadAttr)
	}
	for o := ops; len(o) >= unix.SizeofSockFilter; o = o[unix.SizeofSockFilter:] {
		f.ops = append(f.ops, SockFilter{Op: ne.Uint16(o[0:2]), Jt: o[2], Jf: o[3], K: ne.Uint32(o[4:8])})
	}
	return nil
}
