package rtnl_test

import (
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
)

const (
	sizeofTcmsg    = 20
	tcaBPFOpsLen   = 4
	tcaBPFOps      = 5
	tcaBPFFD       = 6
	tcaBPFFlags    = 8
	tcaStatsBasic  = 1
	tcaStatsQueue  = 3
	tcaStatsPkt64  = 8
	ingressParent  = 0xFFFFFFF2 // TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
	clsactParent   = 0xFFFFFFF1 // TC_H_CLSACT
	clsactHandle   = 0xFFFF0000 // ffff:
	ethPAllNetwork = 0x0300     // htons(ETH_P_ALL) on a little-endian host
)

// tcPayload builds an RTM_*QDISC / RTM_*TFILTER payload: a struct tcmsg
// and the attributes fn encodes.
func tcPayload(t testing.TB, index, handle, parent, info uint32, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	b := make([]byte, sizeofTcmsg)
	ne := binary.NativeEndian
	ne.PutUint32(b[4:8], index)
	ne.PutUint32(b[8:12], handle)
	ne.PutUint32(b[12:16], parent)
	ne.PutUint32(b[16:20], info)
	ae := netlink.NewAttributeEncoder()
	fn(ae)
	a, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, a...)
}

// qdiscPayload is what the kernel sends for a qdisc with counters.
func qdiscPayload(t testing.TB, q rtnl.Qdisc) []byte {
	return tcPayload(t, q.Index, q.Handle, q.Parent, 0, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.TCA_KIND, q.Kind)
		ae.Nested(unix.TCA_STATS2, func(ae *netlink.AttributeEncoder) error {
			basic := make([]byte, 16) // with the tail padding of 64-bit hosts
			binary.NativeEndian.PutUint64(basic[0:8], q.Stats.Bytes)
			binary.NativeEndian.PutUint32(basic[8:12], uint32(q.Stats.Packets))
			ae.Bytes(tcaStatsBasic, basic)
			if q.Stats.Packets > 0xFFFFFFFF {
				ae.Uint64(tcaStatsPkt64, q.Stats.Packets)
			}
			queue := make([]byte, 20)
			for i, v := range []uint32{q.Stats.QLen, q.Stats.Backlog, q.Stats.Drops, q.Stats.Requeues, q.Stats.Overlimits} {
				binary.NativeEndian.PutUint32(queue[4*i:], v)
			}
			ae.Bytes(tcaStatsQueue, queue)
			return nil
		})
	})
}

// opsBytes encodes a classic program as struct sock_filter[].
func opsBytes(prog []rtnl.SockFilter) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		b = binary.NativeEndian.AppendUint16(b, in.Op)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b
}

// filterPayload is what the kernel answers for tapbridge's filter holding
// prog, with TCA_BPF_FLAGS flags; opts, if set, encodes the options
// instead.
func filterPayload(t testing.TB, kind string, prog []rtnl.SockFilter, flags uint32, opts func(ae *netlink.AttributeEncoder)) []byte {
	info := uint32(rtnl.IngressBPFPriority)<<16 | ethPAllNetwork
	return tcPayload(t, 7, rtnl.IngressBPFHandle, ingressParent, info, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.TCA_KIND, kind)
		ae.Uint32(unix.TCA_CHAIN, 0)
		ae.Nested(unix.TCA_OPTIONS, func(ae *netlink.AttributeEncoder) error {
			if opts != nil {
				opts(ae)
				return nil
			}
			ae.Uint16(tcaBPFOpsLen, uint16(len(prog)))
			ae.Bytes(tcaBPFOps, opsBytes(prog))
			if flags != 0 {
				ae.Uint32(tcaBPFFlags, flags)
			}
			return nil
		})
	})
}

// answerOf returns a one-message answer of type typ to req.
func answerOf(req netlink.Message, typ netlink.HeaderType, data []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: typ, Sequence: req.Header.Sequence, PID: req.Header.PID},
		Data:   data,
	}
}

// extAckAnswer is the kernel's error answer to req with an extended-ack
// message: errno, the echoed request and NLMSGERR_ATTR_MSG.
func extAckAnswer(t testing.TB, req netlink.Message, errno unix.Errno, msg string) netlink.Message {
	t.Helper()
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
	h := make([]byte, 16)
	binary.NativeEndian.PutUint32(h[0:4], uint32(16+len(req.Data)))
	binary.NativeEndian.PutUint16(h[4:6], uint16(req.Header.Type))
	binary.NativeEndian.PutUint32(h[8:12], req.Header.Sequence)
	data = append(append(data, h...), req.Data...)
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NLMSGERR_ATTR_MSG, msg)
	tlv, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Flags: netlink.AcknowledgeTLVs, Sequence: req.Header.Sequence, PID: req.Header.PID},
		Data:   append(data, tlv...),
	}
}

// tcmsgOf splits a request's struct tcmsg.
func tcmsgOf(t *testing.T, data []byte) (index, handle, parent, info uint32) {
	t.Helper()
	if len(data) < sizeofTcmsg {
		t.Fatalf("request is %d bytes, shorter than struct tcmsg", len(data))
	}
	ne := binary.NativeEndian
	if data[0] != 0 {
		t.Errorf("tcm_family = %d, want AF_UNSPEC", data[0])
	}
	return ne.Uint32(data[4:8]), ne.Uint32(data[8:12]), ne.Uint32(data[12:16]), ne.Uint32(data[16:20])
}

var testProg = []rtnl.SockFilter{
	{Op: 0x28, K: 12},                  // ldh [12]
	{Op: 0x15, Jt: 0, Jf: 1, K: 0x800}, // jeq #0x800
	{Op: 0x06, K: 2},                   // ret #TC_ACT_SHOT
	{Op: 0x06, K: 0xFFFFFFFF},          // ret #TC_ACT_UNSPEC
}

func TestTCRequests(t *testing.T) {
	tests := []struct {
		name  string
		typ   netlink.HeaderType
		flags netlink.HeaderFlags
		do    func(ctx context.Context, c *rtnl.Conn) error
		check func(t *testing.T, data []byte)
	}{
		{
			name: "AddClsact", typ: unix.RTM_NEWQDISC, flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.AddClsact(ctx, 7) },
			check: func(t *testing.T, data []byte) {
				index, handle, parent, info := tcmsgOf(t, data)
				if index != 7 || handle != clsactHandle || parent != clsactParent || info != 0 {
					t.Errorf("tcmsg = ifindex %d handle %#x parent %#x info %#x, want 7, ffff:, TC_H_CLSACT, 0", index, handle, parent, info)
				}
				if a := topAttrs(t, data[sizeofTcmsg:]); string(a[unix.TCA_KIND]) != "clsact\x00" || len(a) != 1 {
					t.Errorf("attributes = %v, want only TCA_KIND clsact", a)
				}
			},
		},
		{
			name: "SetIngressBPF", typ: unix.RTM_NEWTFILTER, flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace,
			do: func(ctx context.Context, c *rtnl.Conn) error { return c.SetIngressBPF(ctx, 7, testProg) },
			check: func(t *testing.T, data []byte) {
				index, handle, parent, info := tcmsgOf(t, data)
				if index != 7 || handle != rtnl.IngressBPFHandle || parent != ingressParent || info != uint32(rtnl.IngressBPFPriority)<<16|ethPAllNetwork {
					t.Errorf("tcmsg = ifindex %d handle %#x parent %#x info %#x, want 7, IngressBPFHandle, ingress, prio 1 ETH_P_ALL", index, handle, parent, info)
				}
				a := topAttrs(t, data[sizeofTcmsg:])
				if string(a[unix.TCA_KIND]) != "bpf\x00" || len(a) != 2 {
					t.Errorf("attributes = %v, want TCA_KIND bpf and TCA_OPTIONS", a)
				}
				opts := topAttrs(t, a[unix.TCA_OPTIONS])
				want := map[uint16][]byte{
					tcaBPFOpsLen: binary.NativeEndian.AppendUint16(nil, uint16(len(testProg))),
					tcaBPFOps:    opsBytes(testProg),
					tcaBPFFlags:  binary.NativeEndian.AppendUint32(nil, 1), // TCA_BPF_FLAG_ACT_DIRECT
				}
				if !reflect.DeepEqual(opts, want) {
					t.Errorf("TCA_OPTIONS = %v, want %v", opts, want)
				}
			},
		},
		{
			name: "IngressBPF", typ: unix.RTM_GETTFILTER, flags: netlink.Request,
			do: func(ctx context.Context, c *rtnl.Conn) error { _, err := c.IngressBPF(ctx, 7); return err },
			check: func(t *testing.T, data []byte) {
				index, handle, parent, info := tcmsgOf(t, data)
				if index != 7 || handle != rtnl.IngressBPFHandle || parent != ingressParent || info != uint32(rtnl.IngressBPFPriority)<<16|ethPAllNetwork {
					t.Errorf("tcmsg = ifindex %d handle %#x parent %#x info %#x, want tapbridge's filter", index, handle, parent, info)
				}
				if a := topAttrs(t, data[sizeofTcmsg:]); string(a[unix.TCA_KIND]) != "bpf\x00" || len(a) != 1 {
					t.Errorf("attributes = %v, want only TCA_KIND bpf", a)
				}
			},
		},
		{
			// NLM_F_ECHO: without it tc_get_qdisc sends the answer to the
			// RTNLGRP_TC group only.
			name: "Clsact", typ: unix.RTM_GETQDISC, flags: netlink.Request | netlink.Echo,
			do: func(ctx context.Context, c *rtnl.Conn) error { _, err := c.Clsact(ctx, 7); return err },
			check: func(t *testing.T, data []byte) {
				index, handle, parent, info := tcmsgOf(t, data)
				if index != 7 || handle != clsactHandle || parent != 0 || info != 0 || len(data) != sizeofTcmsg {
					t.Errorf("tcmsg = ifindex %d handle %#x parent %#x info %#x (%d bytes), want 7, ffff:, 0, 0, a bare tcmsg", index, handle, parent, info, len(data))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []netlink.Message
			c := rtnl.NewConn(nltest.Dial(nltest.CheckRequest(
				[]netlink.HeaderType{tt.typ}, []netlink.HeaderFlags{tt.flags},
				func(req []netlink.Message) ([]netlink.Message, error) {
					got = append(got, req...)
					switch req[0].Header.Type {
					case unix.RTM_GETTFILTER:
						return []netlink.Message{answerOf(req[0], unix.RTM_NEWTFILTER, filterPayload(t, "bpf", testProg, 1, nil))}, nil
					case unix.RTM_GETQDISC:
						q := rtnl.Qdisc{Index: 7, Kind: "clsact", Handle: clsactHandle}
						return []netlink.Message{answerOf(req[0], unix.RTM_NEWQDISC, qdiscPayload(t, q))}, nil
					}
					return []netlink.Message{ack(req[0])}, nil
				})))
			defer c.Close()
			if err := tt.do(t.Context(), c); err != nil {
				t.Fatalf("%s = %v, want nil", tt.name, err)
			}
			if len(got) != 1 {
				t.Fatalf("%s sent %d messages, want 1", tt.name, len(got))
			}
			tt.check(t, got[0].Data)
		})
	}
}

func TestIngressBPFAnswers(t *testing.T) {
	answer := func(data []byte) func(t *testing.T, req netlink.Message) netlink.Message {
		return func(t *testing.T, req netlink.Message) netlink.Message {
			return answerOf(req, unix.RTM_NEWTFILTER, data)
		}
	}
	kernelErr := func(errno unix.Errno, msg string) func(t *testing.T, req netlink.Message) netlink.Message {
		return func(t *testing.T, req netlink.Message) netlink.Message {
			if msg == "" {
				return errAnswer(req, errno)
			}
			return extAckAnswer(t, req, errno, msg)
		}
	}
	tests := []struct {
		name    string
		answer  func(t *testing.T, req netlink.Message) netlink.Message
		want    []rtnl.SockFilter
		wantErr error // nil: no error; errAny: some error
	}{
		{name: "program", answer: answer(filterPayload(t, "bpf", testProg, 1, nil)), want: testProg},
		{name: "one instruction", answer: answer(filterPayload(t, "bpf", testProg[3:], 1, nil)), want: testProg[3:]},
		{name: "no filter at our priority or handle", answer: kernelErr(unix.ENOENT, "Filter with specified priority/protocol not found")},
		{name: "no clsact", answer: kernelErr(unix.EINVAL, "Parent Qdisc doesn't exists")},
		{name: "no filter chain", answer: kernelErr(unix.EINVAL, "Cannot find specified filter chain")},
		{name: "another kind at our priority", answer: kernelErr(unix.EINVAL, "Specified filter kind does not match existing one"), wantErr: unix.EINVAL},
		{name: "EINVAL without a message", answer: kernelErr(unix.EINVAL, ""), wantErr: unix.EINVAL},
		{name: "no link", answer: kernelErr(unix.ENODEV, ""), wantErr: unix.ENODEV},
		{name: "not direct-action", answer: answer(filterPayload(t, "bpf", testProg, 0, nil)), wantErr: errAny},
		{name: "u32", answer: answer(filterPayload(t, "u32", nil, 0, func(ae *netlink.AttributeEncoder) { ae.Uint32(1, 0) })), wantErr: errAny},
		{name: "eBPF", answer: answer(filterPayload(t, "bpf", nil, 1, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(tcaBPFFD, 3)
			ae.Uint32(tcaBPFFlags, 1)
		})), wantErr: errAny},
		{name: "no options", answer: answer(tcPayload(t, 7, rtnl.IngressBPFHandle, ingressParent, 0, func(ae *netlink.AttributeEncoder) {
			ae.String(unix.TCA_KIND, "bpf")
		})), wantErr: errAny},
		{name: "length disagrees", answer: answer(filterPayload(t, "bpf", nil, 1, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(tcaBPFOpsLen, 3)
			ae.Bytes(tcaBPFOps, opsBytes(testProg[:2]))
			ae.Uint32(tcaBPFFlags, 1)
		})), wantErr: errAny},
		{name: "not a filter", answer: func(t *testing.T, req netlink.Message) netlink.Message {
			return linkAnswer(req, tapPayload(t))
		}, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				return []netlink.Message{tt.answer(t, req[0])}, nil
			}))
			defer c.Close()
			got, err := c.IngressBPF(t.Context(), 7)
			switch {
			case tt.wantErr == nil && (err != nil || !slices.Equal(got, tt.want)):
				t.Errorf("IngressBPF = %v, %v, want %v, nil", got, err, tt.want)
			case tt.wantErr == errAny && (err == nil || got != nil):
				t.Errorf("IngressBPF = %v, %v, want nil and an error", got, err)
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Errorf("IngressBPF = %v, %v, want errors.Is(err, %v)", got, err, tt.wantErr)
			}
			if tt.want == nil && got != nil {
				t.Errorf("IngressBPF = %v, want nil", got)
			}
		})
	}
}

// errAny marks a test case that wants some error.
var errAny = errors.New("any error")

// A get's destination is reused, and cleared when the program is absent.
func TestGetIngressBPFDestination(t *testing.T) {
	n := 0
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		n++
		if n == 2 {
			return []netlink.Message{errAnswer(req[0], unix.ENOENT)}, nil
		}
		return []netlink.Message{answerOf(req[0], unix.RTM_NEWTFILTER, filterPayload(t, "bpf", testProg[:2], 1, nil))}, nil
	}))
	defer c.Close()
	dst := make([]rtnl.SockFilter, 8)
	storage := &dst[:1][0]
	var b rtnl.Batch
	b.GetIngressBPF(7, &dst)
	if _, err := c.Exec(t.Context(), &b); err != nil || !slices.Equal(dst, testProg[:2]) || &dst[0] != storage {
		t.Errorf("Exec #1: destination %v, %v, want %v in the storage given", dst, err, testProg[:2])
	}
	if _, err := c.Exec(t.Context(), &b); err != nil || dst != nil {
		t.Errorf("Exec #2 (no filter): destination %v, %v, want nil, nil", dst, err)
	}
}

func TestClsactAnswers(t *testing.T) {
	stats := rtnl.QdiscStats{Bytes: 1 << 40, Packets: 5 << 32, Drops: 9, Overlimits: 1, Requeues: 2, Backlog: 3, QLen: 4}
	tests := []struct {
		name    string
		answer  func(req netlink.Message) netlink.Message
		want    *rtnl.Qdisc
		wantErr error
	}{
		{
			name: "clsact with counters",
			answer: func(req netlink.Message) netlink.Message {
				// The kernel echoes the parent asked for: 0.
				return answerOf(req, unix.RTM_NEWQDISC, qdiscPayload(t, rtnl.Qdisc{Index: 7, Kind: "clsact", Handle: clsactHandle, Stats: stats}))
			},
			want: &rtnl.Qdisc{Index: 7, Kind: "clsact", Handle: clsactHandle, Parent: clsactParent, Stats: stats},
		},
		{
			name: "ingress",
			answer: func(req netlink.Message) netlink.Message {
				return answerOf(req, unix.RTM_NEWQDISC, qdiscPayload(t, rtnl.Qdisc{Index: 7, Kind: "ingress", Handle: clsactHandle}))
			},
			wantErr: errAny,
		},
		{name: "none", answer: func(req netlink.Message) netlink.Message { return errAnswer(req, unix.ENOENT) }, wantErr: unix.ENOENT},
		{name: "no link", answer: func(req netlink.Message) netlink.Message { return errAnswer(req, unix.ENODEV) }, wantErr: unix.ENODEV},
		{name: "short", answer: func(req netlink.Message) netlink.Message { return answerOf(req, unix.RTM_NEWQDISC, make([]byte, 12)) }, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				return []netlink.Message{tt.answer(req[0])}, nil
			}))
			defer c.Close()
			got, err := c.Clsact(t.Context(), 7)
			switch {
			case tt.wantErr == nil && (err != nil || !reflect.DeepEqual(got, tt.want)):
				t.Errorf("Clsact = %+v, %v, want %+v, nil", got, err, tt.want)
			case tt.wantErr == errAny && err == nil:
				t.Errorf("Clsact = %+v, nil, want an error", got)
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Errorf("Clsact = %+v, %v, want errors.Is(err, %v)", got, err, tt.wantErr)
			}
		})
	}
}

func TestQdiscsDump(t *testing.T) {
	qs := []rtnl.Qdisc{
		{Index: 1, Kind: "noqueue", Parent: 0xFFFFFFFF},
		{Index: 7, Kind: "noqueue", Handle: 0x80010000, Parent: 0xFFFFFFFF},
		{Index: 7, Kind: "clsact", Handle: clsactHandle, Parent: clsactParent, Stats: rtnl.QdiscStats{Packets: 10, Drops: 4}},
		{Index: 8, Kind: "clsact", Handle: clsactHandle, Parent: clsactParent, Stats: rtnl.QdiscStats{Packets: 3, Drops: 3}},
	}
	var payloads [][]byte
	for _, q := range qs {
		payloads = append(payloads, qdiscPayload(t, q))
	}
	attempts := 0
	c := rtnl.NewConn(nltest.Dial(nltest.CheckRequest(
		[]netlink.HeaderType{unix.RTM_GETQDISC}, []netlink.HeaderFlags{netlink.Request | netlink.Dump},
		func(req []netlink.Message) ([]netlink.Message, error) {
			attempts++
			if attempts%2 == 1 {
				// Every first attempt is interrupted after a message.
				msgs := dumpAnswerOf(req[0], unix.RTM_NEWQDISC, netlink.Multi, payloads[:2]...)
				msgs[1].Header.Flags |= netlink.DumpInterrupted
				return msgs, nil
			}
			return dumpAnswerOf(req[0], unix.RTM_NEWQDISC, netlink.Multi, payloads...), nil
		})))
	defer c.Close()
	tests := []struct {
		f    *rtnl.QdiscFilter
		want []rtnl.Qdisc
	}{
		{nil, qs},
		{&rtnl.QdiscFilter{Index: 7}, qs[1:3]},
		{&rtnl.QdiscFilter{Kind: "clsact"}, qs[2:]},
		{&rtnl.QdiscFilter{Index: 8, Kind: "clsact"}, qs[3:]},
		{&rtnl.QdiscFilter{Index: 9}, nil},
	}
	for _, tt := range tests {
		got, err := c.Qdiscs(t.Context(), tt.f)
		if err != nil || len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("Qdiscs(%+v) = %+v, %v, want %+v", tt.f, got, err, tt.want)
		}
	}
	if attempts != 2*len(tests) {
		t.Errorf("%d dump requests for %d calls, want a retry each", attempts, len(tests))
	}
}

func TestUnmarshalQdisc(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		want    *rtnl.Qdisc
		wantErr bool
	}{
		{name: "bare tcmsg", b: tcPayload(t, 3, 0, 0xFFFFFFFF, 0, func(*netlink.AttributeEncoder) {}), want: &rtnl.Qdisc{Index: 3, Parent: 0xFFFFFFFF}},
		{name: "short", b: make([]byte, 19), wantErr: true},
		{name: "short basic", b: tcPayload(t, 3, 0, 0, 0, func(ae *netlink.AttributeEncoder) {
			ae.Nested(unix.TCA_STATS2, func(ae *netlink.AttributeEncoder) error { ae.Bytes(tcaStatsBasic, make([]byte, 8)); return nil })
		}), wantErr: true},
		{name: "short queue", b: tcPayload(t, 3, 0, 0, 0, func(ae *netlink.AttributeEncoder) {
			ae.Nested(unix.TCA_STATS2, func(ae *netlink.AttributeEncoder) error { ae.Bytes(tcaStatsQueue, make([]byte, 16)); return nil })
		}), wantErr: true},
		{name: "32-bit host basic", b: tcPayload(t, 3, 0, 0, 0, func(ae *netlink.AttributeEncoder) {
			ae.Nested(unix.TCA_STATS2, func(ae *netlink.AttributeEncoder) error {
				b := binary.NativeEndian.AppendUint64(nil, 100)
				ae.Bytes(tcaStatsBasic, binary.NativeEndian.AppendUint32(b, 2))
				return nil
			})
		}), want: &rtnl.Qdisc{Index: 3, Stats: rtnl.QdiscStats{Bytes: 100, Packets: 2}}},
	}
	for _, tt := range tests {
		got, err := rtnl.UnmarshalQdisc(tt.b)
		if tt.wantErr != (err != nil) || !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: UnmarshalQdisc(%x) = %+v, %v, want %+v, error %v", tt.name, tt.b, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestBatchWindowsBySize: a window stays within what one sendmsg may
// carry (the socket's send buffer) and what the receive buffer takes of
// answers, before the 128-request bound.
func TestBatchWindowsBySize(t *testing.T) {
	long := make([]rtnl.SockFilter, rtnl.MaxBPFInstructions)
	for i := range long {
		long[i] = rtnl.SockFilter{Op: 0x06}
	}
	tests := []struct {
		name    string
		add     func(b *rtnl.Batch)
		windows []int
	}{
		{"10 longest programs", func(b *rtnl.Batch) {
			for range 10 {
				b.SetIngressBPF(7, long)
			}
		}, []int{3, 3, 3, 1}},
		{"12 program gets", func(b *rtnl.Batch) {
			for range 12 {
				b.GetIngressBPF(7, new([]rtnl.SockFilter))
			}
		}, []int{5, 5, 2}},
		{"short programs", func(b *rtnl.Batch) {
			for range 130 {
				b.SetIngressBPF(7, testProg)
			}
		}, []int{128, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var windows []int
			answer := oneByOne(func(_ int, r netlink.Message) netlink.Message { return errAnswer(r, unix.ENOENT) })
			c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				if req != nil {
					windows = append(windows, len(req))
					size := 0
					for _, r := range req {
						size += int(r.Header.Length)
					}
					if size > 128<<10 {
						t.Errorf("window of %d requests is %d bytes, more than 128 KiB", len(req), size)
					}
				}
				return answer(req)
			}))
			defer c.Close()
			var b rtnl.Batch
			tt.add(&b)
			res, _ := c.Exec(t.Context(), &b)
			for i, r := range res {
				if r != nil && !errors.Is(r, unix.ENOENT) {
					t.Errorf("result %d = %v, want the kernel's answer", i, r)
				}
			}
			if !slices.Equal(windows, tt.windows) {
				t.Errorf("windows = %v, want %v", windows, tt.windows)
			}
		})
	}
}

func TestTCEncodingErrors(t *testing.T) {
	tests := []struct {
		name string
		add  func(b *rtnl.Batch)
		want string
	}{
		{"AddClsact index 0", func(b *rtnl.Batch) { b.AddClsact(0) }, "index"},
		{"SetIngressBPF index 0", func(b *rtnl.Batch) { b.SetIngressBPF(0, testProg) }, "index"},
		{"SetIngressBPF empty", func(b *rtnl.Batch) { b.SetIngressBPF(7, nil) }, "no instructions"},
		{"SetIngressBPF too long", func(b *rtnl.Batch) {
			b.SetIngressBPF(7, make([]rtnl.SockFilter, rtnl.MaxBPFInstructions+1))
		}, "longer than 4096"},
		{"GetIngressBPF index 0", func(b *rtnl.Batch) { b.GetIngressBPF(0, new([]rtnl.SockFilter)) }, "index"},
		{"GetClsact index 0", func(b *rtnl.Batch) { b.GetClsact(0, new(rtnl.Qdisc)) }, "index"},
	}
	for _, tt := range tests {
		c := rtnl.NewConn(nltest.Dial(neverCalled(t)))
		var b rtnl.Batch
		tt.add(&b)
		if _, err := c.Exec(t.Context(), &b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Exec = %v, want an encoding error about %q", tt.name, err, tt.want)
		}
		c.Close()
	}
}
