package rtnl_test

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"

	"github.com/tapbridge/tapbridge/rtnl"
)

// BenchmarkLinkDecode decodes RTM_NEWLINK payloads captured from the
// kernel: a multi-queue TAP bridge port (the common case in a dump), and lo
// with statistics (what a dump without RTEXT_FILTER_SKIP_STATS carries).
func BenchmarkLinkDecode(b *testing.B) {
	for _, name := range []string{"kernel-tap-port", "kernel-lo-stats"} {
		msg := readCorpusFile(b, filepath.Join(linkCorpus, name))
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := rtnl.UnmarshalLink(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSetLinkEncode encodes SetLink requests into a reused Batch.
func BenchmarkSetLinkEncode(b *testing.B) {
	tests := []struct {
		name string
		ch   rtnl.LinkChange
	}{
		{"mtu", rtnl.LinkChange{Index: 7, MTU: 1400}},
		{"rtnl-attrs", rtnl.LinkChange{Index: 7, TxQueueLen: ptr(uint32(10000)), Group: ptr(uint32(9)), AddrGenModeNone: true}},
		{"everything", rtnl.LinkChange{
			Index: 7, Name: "vm7", MTU: 1400, TxQueueLen: ptr(uint32(10000)),
			Address: net.HardwareAddr{2, 0, 0, 0, 0, 7}, Up: ptr(true), Master: ptr(uint32(3)),
			Group: ptr(uint32(9)), Alias: ptr("vm 7 net0"), AddrGenModeNone: true,
		}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			var batch rtnl.Batch
			for b.Loop() {
				batch.Reset()
				batch.SetLink(&tt.ch)
			}
		})
	}
}

// BenchmarkExecGetLink runs a one-get batch, reused, against an nltest
// socket that answers with a captured TAP port: the cost of a get in
// Exec's pipeline, answer decoding included (nltest's own copying is in
// the figures too).
func BenchmarkExecGetLink(b *testing.B) {
	msg := readCorpusFile(b, filepath.Join(linkCorpus, "kernel-tap-port"))
	c := rtnl.NewConn(nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{linkAnswer(req[0], msg)}, nil
	}))
	defer c.Close()
	var batch rtnl.Batch
	var l rtnl.Link
	batch.GetLinkByIndex(7, &l)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Exec(b.Context(), &batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQdiscDecode decodes a captured clsact qdisc with counters into
// a reused Qdisc, as WalkQdiscs does for every qdisc of a dump.
func BenchmarkQdiscDecode(b *testing.B) {
	msg := readCorpusFile(b, filepath.Join(qdiscCorpus, "kernel-clsact"))
	var q rtnl.Qdisc
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := rtnl.DecodeQdiscInto(&q, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBPFFilterDecode decodes a captured filter answer into a reused
// program, as a GetIngressBPF destination is filled.
func BenchmarkBPFFilterDecode(b *testing.B) {
	msg := readCorpusFile(b, filepath.Join(filterCorpus, "kernel-bpf-filter"))
	var prog []rtnl.SockFilter
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := rtnl.DecodeBPFInto(&prog, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetIngressBPFEncode encodes SetIngressBPF requests of programs
// of N instructions into a reused Batch.
func BenchmarkSetIngressBPFEncode(b *testing.B) {
	for _, n := range []int{6, 256, rtnl.MaxBPFInstructions} {
		prog := make([]rtnl.SockFilter, n)
		for i := range prog {
			prog[i] = rtnl.SockFilter{Op: 0x28, K: uint32(i)}
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(8 * n))
			var batch rtnl.Batch
			for b.Loop() {
				batch.Reset()
				batch.SetIngressBPF(7, prog)
			}
		})
	}
}

// BenchmarkAddClsactEncode encodes AddClsact requests into a reused Batch.
func BenchmarkAddClsactEncode(b *testing.B) {
	b.ReportAllocs()
	var batch rtnl.Batch
	for b.Loop() {
		batch.Reset()
		batch.AddClsact(7)
	}
}
