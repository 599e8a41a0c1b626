package rtnl_test

import (
	"encoding/binary"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
)

// The corpora under testdata/fuzz/FuzzQdiscDecode and FuzzBPFFilterDecode
// hold kernel captures (kernel-*, written by
// TestIntegrationKernelTCMessages with RTNL_WRITE_CORPUS=1).
const (
	qdiscCorpus  = "testdata/fuzz/FuzzQdiscDecode"
	filterCorpus = "testdata/fuzz/FuzzBPFFilterDecode"
)

// FuzzQdiscDecode feeds RTM_NEWQDISC payloads to the decoder. Properties:
// it never panics, fails with a nil Qdisc, and is stable: encoding the
// decoded Qdisc canonically and decoding that gives the same Qdisc.
func FuzzQdiscDecode(f *testing.F) {
	f.Add(qdiscPayload(f, rtnl.Qdisc{Index: 7, Kind: "clsact", Handle: clsactHandle, Parent: clsactParent,
		Stats: rtnl.QdiscStats{Bytes: 600, Packets: 10, Drops: 4}}))
	f.Add(qdiscPayload(f, rtnl.Qdisc{Index: 7, Kind: "noqueue", Parent: 0xFFFFFFFF, Stats: rtnl.QdiscStats{Packets: 1 << 33}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := rtnl.UnmarshalQdisc(b)
		if err != nil {
			if q != nil {
				t.Errorf("UnmarshalQdisc(%x) = %+v, %v, want nil with an error", b, q, err)
			}
			return
		}
		q2, err := rtnl.UnmarshalQdisc(qdiscPayload(t, *q))
		if err != nil || !reflect.DeepEqual(q2, q) {
			t.Errorf("UnmarshalQdisc(encode(UnmarshalQdisc(%x))) = %+v, %v, want %+v", b, q2, err, q)
		}
	})
}

// FuzzBPFFilterDecode feeds RTM_NEWTFILTER payloads to the decoder.
// Properties: it never panics; a decoded classic program has exactly
// TCA_BPF_OPS_LEN instructions; decoding is stable under a canonical
// re-encoding.
func FuzzBPFFilterDecode(f *testing.F) {
	f.Add(filterPayload(f, "bpf", testProg, 1, nil))
	f.Add(filterPayload(f, "bpf", nil, 1, func(ae *netlink.AttributeEncoder) { ae.Uint32(tcaBPFFD, 3) }))
	f.Add(filterPayload(f, "u32", nil, 0, func(ae *netlink.AttributeEncoder) { ae.Uint32(1, 0) }))
	f.Fuzz(func(t *testing.T, b []byte) {
		flt, err := rtnl.UnmarshalBPFFilter(b)
		if err != nil {
			if flt != nil {
				t.Errorf("UnmarshalBPFFilter(%x) = %+v, %v, want nil with an error", b, flt, err)
			}
			return
		}
		if flt.OpsLen >= 0 && len(flt.Prog) != flt.OpsLen || flt.OpsLen < 0 && len(flt.Prog) != 0 {
			t.Errorf("UnmarshalBPFFilter(%x): %d instructions for TCA_BPF_OPS_LEN %d", b, len(flt.Prog), flt.OpsLen)
		}
		f2, err := rtnl.UnmarshalBPFFilter(encodeBPFFilter(t, flt))
		if err != nil || !reflect.DeepEqual(f2, flt) {
			t.Errorf("UnmarshalBPFFilter(encode(UnmarshalBPFFilter(%x))) = %+v, %v, want %+v", b, f2, err, flt)
		}
	})
}

// encodeBPFFilter encodes f with only the attributes the decoder reads.
func encodeBPFFilter(t *testing.T, f *rtnl.BPFFilter) []byte {
	return tcPayload(t, f.Index, f.Handle, f.Parent, f.Info, func(ae *netlink.AttributeEncoder) {
		if f.Kind != "" {
			ae.String(unix.TCA_KIND, f.Kind)
		}
		if f.Kind != "bpf" || f.OpsLen < 0 && f.Flags == 0 && !f.EBPF {
			return
		}
		ae.Nested(unix.TCA_OPTIONS, func(ae *netlink.AttributeEncoder) error {
			if f.OpsLen >= 0 {
				ae.Uint16(tcaBPFOpsLen, uint16(f.OpsLen))
				ae.Bytes(tcaBPFOps, opsBytes(f.Prog))
			}
			if f.Flags != 0 {
				ae.Uint32(tcaBPFFlags, f.Flags)
			}
			if f.EBPF {
				ae.Uint32(tcaBPFFD, 0)
			}
			return nil
		})
	})
}

// protocolOf returns the protocol of a filter's tcm_info, which the kernel
// keeps in network byte order.
func protocolOf(info uint32) uint16 {
	b := binary.NativeEndian.AppendUint16(nil, uint16(info))
	return binary.BigEndian.Uint16(b)
}

// TestKernelTCCorpus decodes the committed kernel captures.
func TestKernelTCCorpus(t *testing.T) {
	q, err := rtnl.UnmarshalQdisc(readCorpusFile(t, filepath.Join(qdiscCorpus, "kernel-clsact")))
	if err != nil || q.Kind != "clsact" || q.Handle != clsactHandle || q.Parent != clsactParent ||
		q.Stats.Packets != 5 || q.Stats.Drops != 5 || q.Stats.Bytes != 5*46 {
		t.Errorf("kernel-clsact = %+v, %v, want the clsact that dropped 5 frames of 60 bytes (46 past the Ethernet header)", q, err)
	}
	q, err = rtnl.UnmarshalQdisc(readCorpusFile(t, filepath.Join(qdiscCorpus, "kernel-noqueue")))
	if err != nil || q.Kind != "noqueue" || q.Parent != 0xFFFFFFFF {
		t.Errorf("kernel-noqueue = %+v, %v, want a noqueue root", q, err)
	}
	flt, err := rtnl.UnmarshalBPFFilter(readCorpusFile(t, filepath.Join(filterCorpus, "kernel-bpf-filter")))
	wantProg := dropSource([6]byte{2, 0, 0, 0, 0xbe, 0xef}, false)
	if err != nil || flt.Kind != "bpf" || flt.Handle != rtnl.IngressBPFHandle || flt.Flags != 1 || !reflect.DeepEqual(flt.Prog, wantProg) ||
		flt.Info>>16 != uint32(rtnl.IngressBPFPriority) || protocolOf(flt.Info) != unix.ETH_P_ALL {
		t.Errorf("kernel-bpf-filter = %+v, %v, want tapbridge's filter", flt, err)
	}
	flt, err = rtnl.UnmarshalBPFFilter(readCorpusFile(t, filepath.Join(filterCorpus, "kernel-bpf-chain-head")))
	if err != nil || flt.Kind != "bpf" || flt.OpsLen != -1 || flt.Handle != 0 {
		t.Errorf("kernel-bpf-chain-head = %+v, %v, want a head without options", flt, err)
	}
}
