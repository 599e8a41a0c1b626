package rtnl_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

// Classic BPF opcodes (include/uapi/linux/bpf_common.h).
const (
	bpfLdWAbs  = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfLdHAbs  = 0x28 // BPF_LD | BPF_H | BPF_ABS
	bpfJeqK    = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfRetK    = 0x06 // BPF_RET | BPF_K
	tcActShot  = 2
	tcActUnspc = 0xFFFFFFFF
)

// dropSource returns a direct-action program that drops every frame with
// source MAC mac and lets the rest go on. swapped compares the two halves
// in the other order: a different program with the same verdicts.
func dropSource(mac [6]byte, swapped bool) []rtnl.SockFilter {
	hi := uint32(mac[0])<<24 | uint32(mac[1])<<16 | uint32(mac[2])<<8 | uint32(mac[3])
	lo := uint32(mac[4])<<8 | uint32(mac[5])
	// The source MAC is at offset 6 of the frame: cls_bpf runs ingress
	// programs from the MAC header (cls_bpf_classify: __skb_push).
	word := []rtnl.SockFilter{{Op: bpfLdWAbs, K: 6}, {Op: bpfJeqK, K: hi}}
	half := []rtnl.SockFilter{{Op: bpfLdHAbs, K: 10}, {Op: bpfJeqK, K: lo}}
	first, second := word, half
	if swapped {
		first, second = half, word
	}
	// 0 ld, 1 jeq (jf -> 5), 2 ld, 3 jeq (jf -> 5), 4 ret shot, 5 ret unspec
	first[1].Jf = 3
	second[1].Jf = 1
	prog := append(append(first, second...), rtnl.SockFilter{Op: bpfRetK, K: tcActShot}, rtnl.SockFilter{Op: bpfRetK, K: tcActUnspc})
	return prog
}

// longProgram returns a valid program of n instructions: n-1 that load
// and one that accepts.
func longProgram(n int) []rtnl.SockFilter {
	prog := make([]rtnl.SockFilter, n)
	for i := range prog[:n-1] {
		prog[i] = rtnl.SockFilter{Op: bpfLdHAbs, K: uint32(i % 64)}
	}
	prog[n-1] = rtnl.SockFilter{Op: bpfRetK, K: tcActUnspc}
	return prog
}

// tcFilterProgram returns the program iproute2 shows for the filter at
// pref 1 on the ingress of dev, its handle and whether it is in
// direct-action mode; nil if there is none.
func tcFilterProgram(e *nsEnv, dev string) (prog []rtnl.SockFilter, handle string, direct bool) {
	e.t.Helper()
	for _, f := range e.jsonOf("tc", "-j", "filter", "show", "dev", dev, "ingress") {
		opts, ok := f["options"].(map[string]any)
		if !ok || f["pref"] != float64(rtnl.IngressBPFPriority) || f["kind"] != "bpf" {
			continue
		}
		bc, _ := opts["bytecode"].(map[string]any)
		insns, _ := bc["insns"].([]any)
		for _, in := range insns {
			m := in.(map[string]any)
			prog = append(prog, rtnl.SockFilter{
				Op: uint16(m["code"].(float64)), Jt: uint8(m["jt"].(float64)),
				Jf: uint8(m["jf"].(float64)), K: uint32(m["k"].(float64)),
			})
		}
		if f["protocol"] != "all" {
			e.t.Errorf("tc filter show dev %s ingress: protocol %v, want all", dev, f["protocol"])
		}
		handle, _ = opts["handle"].(string)
		direct, _ = opts["direct-action"].(bool)
		return prog, handle, direct
	}
	return nil, "", false
}

// tcQdisc returns iproute2's view of one qdisc of dev by kind.
func tcQdisc(e *nsEnv, dev, kind string) map[string]any {
	e.t.Helper()
	for _, q := range e.jsonOf("tc", "-s", "-j", "qdisc", "show", "dev", dev) {
		if q["kind"] == kind {
			return q
		}
	}
	return nil
}

func TestIntegrationClsact(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	t0 := e.tap("t0", tap.Options{MultiQueue: true})
	t1 := e.tap("t1", tap.Options{})
	var b rtnl.Batch
	b.SetNoQueue(t0)
	b.AddClsact(t0)
	b.AddClsact(t0) // idempotent
	b.AddClsact(t1)
	if _, err := e.c.Exec(ctx, &b); err != nil {
		t.Fatalf("Exec(noqueue, clsact, clsact again) = %v", err)
	}
	if root := tcQdisc(e, "t0", "noqueue"); root == nil || root["root"] != true {
		t.Errorf("tc qdisc show dev t0: noqueue root = %v, want it kept next to clsact", root)
	}
	cq := tcQdisc(e, "t0", "clsact")
	if cq == nil || cq["handle"] != "ffff:" || cq["parent"] != "ffff:fff1" {
		t.Fatalf("tc qdisc show dev t0: clsact = %v, want handle ffff: parent ffff:fff1", cq)
	}
	want := rtnl.Qdisc{Index: t0, Kind: "clsact", Handle: 0xFFFF0000, Parent: 0xFFFFFFF1}
	q, err := e.c.Clsact(ctx, t0)
	if err != nil || !reflect.DeepEqual(*q, want) {
		t.Errorf("Clsact(t0) = %+v, %v, want %+v", q, err, want)
	}

	t2 := e.tap("t2", tap.Options{})
	if q, err := e.c.Clsact(ctx, t2); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Clsact(t2 without clsact) = %+v, %v, want ENOENT", q, err)
	}
	if q, err := e.c.Clsact(ctx, 9999); !errors.Is(err, unix.ENODEV) {
		t.Errorf("Clsact(absent link) = %+v, %v, want ENODEV", q, err)
	}
	if err := e.c.AddClsact(ctx, 9999); !errors.Is(err, unix.ENODEV) {
		t.Errorf("AddClsact(absent link) = %v, want ENODEV", err)
	}
	e.tc("qdisc", "add", "dev", "t2", "ingress")
	if err := e.c.AddClsact(ctx, t2); !errors.Is(err, unix.EINVAL) {
		t.Errorf("AddClsact(t2 with an ingress qdisc) = %v, want EINVAL", err)
	}
	if q, err := e.c.Clsact(ctx, t2); err == nil {
		t.Errorf("Clsact(t2 with an ingress qdisc) = %+v, nil, want an error", q)
	}

	// The dump against iproute2: every qdisc of the namespace.
	all, err := e.c.Qdiscs(ctx, nil)
	if err != nil {
		t.Fatalf("Qdiscs(nil) = %v", err)
	}
	nameOf := e.nameOf()
	count := map[string]int{}
	for _, q := range all {
		count[nameOf[q.Index]+" "+q.Kind]++
	}
	wantCount := map[string]int{}
	for _, n := range e.names() {
		for _, q := range e.jsonOf("tc", "-j", "qdisc", "show", "dev", n) {
			wantCount[n+" "+q["kind"].(string)]++
		}
	}
	if !reflect.DeepEqual(count, wantCount) {
		t.Errorf("Qdiscs(nil) = %v, tc qdisc show says %v", count, wantCount)
	}
	filtered, err := e.c.Qdiscs(ctx, &rtnl.QdiscFilter{Index: t0})
	if err != nil || len(filtered) != 2 {
		t.Errorf("Qdiscs(index t0) = %+v, %v, want noqueue and clsact", filtered, err)
	}
	cls, err := e.c.Qdiscs(ctx, &rtnl.QdiscFilter{Kind: "clsact"})
	if err != nil || len(cls) != 2 || cls[0].Kind != "clsact" || cls[1].Kind != "clsact" {
		t.Errorf("Qdiscs(kind clsact) = %+v, %v, want those of t0 and t1", cls, err)
	}
}

func TestIntegrationIngressBPF(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	t0 := e.tap("t0", tap.Options{})
	mac := [6]byte{2, 0, 0, 0, 0xbe, 0xef}
	progA, progB := dropSource(mac, false), dropSource(mac, true)

	// No clsact yet: no program, and installing one fails.
	if p, err := e.c.IngressBPF(ctx, t0); p != nil || err != nil {
		t.Errorf("IngressBPF(t0 without clsact) = %v, %v, want nil, nil", p, err)
	}
	if err := e.c.SetIngressBPF(ctx, t0, progA); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SetIngressBPF(t0 without clsact) = %v, want EINVAL", err)
	}
	if err := e.c.AddClsact(ctx, t0); err != nil {
		t.Fatal(err)
	}
	// clsact without a filter chain.
	if p, err := e.c.IngressBPF(ctx, t0); p != nil || err != nil {
		t.Errorf("IngressBPF(t0, clsact without filters) = %v, %v, want nil, nil", p, err)
	}
	// A chain with someone else's filter at another priority.
	e.tc("filter", "add", "dev", "t0", "ingress", "prio", "5", "protocol", "all", "bpf", "da", "bytecode", "1,6 0 0 4294967295,")
	if p, err := e.c.IngressBPF(ctx, t0); p != nil || err != nil {
		t.Errorf("IngressBPF(t0, a filter at prio 5 only) = %v, %v, want nil, nil", p, err)
	}

	steps := []struct {
		name string
		prog []rtnl.SockFilter
	}{
		{"install", progA},
		{"replace", progB},
		{"replace again", progA},
		{"longest", longProgram(rtnl.MaxBPFInstructions)},
		{"back", progB},
	}
	for _, s := range steps {
		if err := e.c.SetIngressBPF(ctx, t0, s.prog); err != nil {
			t.Fatalf("%s: SetIngressBPF(t0, %d instructions) = %v", s.name, len(s.prog), err)
		}
		got, err := e.c.IngressBPF(ctx, t0)
		if err != nil || !reflect.DeepEqual(got, s.prog) {
			t.Errorf("%s: IngressBPF(t0) = %d instructions, %v, want the %d installed", s.name, len(got), err, len(s.prog))
		}
		if len(s.prog) > 500 {
			continue // tc's JSON of 4096 instructions is not worth reading
		}
		tcProg, handle, direct := tcFilterProgram(e, "t0")
		if !reflect.DeepEqual(tcProg, s.prog) || handle != "0x"+strconv.FormatUint(uint64(rtnl.IngressBPFHandle), 16) || !direct {
			t.Errorf("%s: tc filter show = %v handle %s direct-action %v, want %v handle %#x direct-action",
				s.name, tcProg, handle, direct, s.prog, rtnl.IngressBPFHandle)
		}
	}
	// One filter at our priority, not one per install.
	n := 0
	for _, f := range e.jsonOf("tc", "-j", "filter", "show", "dev", "t0", "ingress") {
		if f["pref"] == float64(rtnl.IngressBPFPriority) && f["options"] != nil {
			n++
		}
	}
	if n != 1 {
		t.Errorf("tc filter show dev t0 ingress: %d filters at pref %d, want 1", n, rtnl.IngressBPFPriority)
	}

	// A program the kernel's checker refuses (a jump out of the program)
	// leaves the installed one.
	bad := []rtnl.SockFilter{{Op: bpfJeqK, Jt: 9, Jf: 9}, {Op: bpfRetK}}
	if err := e.c.SetIngressBPF(ctx, t0, bad); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SetIngressBPF(t0, invalid program) = %v, want EINVAL", err)
	}
	if got, err := e.c.IngressBPF(ctx, t0); err != nil || !reflect.DeepEqual(got, progB) {
		t.Errorf("IngressBPF(t0) after a refused program = %v, %v, want the one before", got, err)
	}
	// AddClsact again keeps the filter.
	if err := e.c.AddClsact(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if got, err := e.c.IngressBPF(ctx, t0); err != nil || !reflect.DeepEqual(got, progB) {
		t.Errorf("IngressBPF(t0) after AddClsact again = %v, %v, want the program kept", got, err)
	}

	// The link is gone.
	if p, err := e.c.IngressBPF(ctx, 9999); !errors.Is(err, unix.ENODEV) {
		t.Errorf("IngressBPF(absent link) = %v, %v, want ENODEV", p, err)
	}
	if err := e.c.SetIngressBPF(ctx, 9999, progA); !errors.Is(err, unix.ENODEV) {
		t.Errorf("SetIngressBPF(absent link) = %v, want ENODEV", err)
	}

	// Someone else's filter of another kind holds our priority.
	t1 := e.tap("t1", tap.Options{})
	if err := e.c.AddClsact(ctx, t1); err != nil {
		t.Fatal(err)
	}
	e.tc("filter", "add", "dev", "t1", "ingress", "prio", "1", "handle", "800::1", "protocol", "all", "u32", "match", "u32", "0", "0")
	if p, err := e.c.IngressBPF(ctx, t1); err == nil {
		t.Errorf("IngressBPF(t1 with u32 at prio 1) = %v, nil, want an error", p)
	}
	if err := e.c.SetIngressBPF(ctx, t1, progA); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SetIngressBPF(t1 with u32 at prio 1) = %v, want EINVAL", err)
	}

	// Gets in a batch: results line up, absent ones are nil.
	var batch rtnl.Batch
	dst := make([][]rtnl.SockFilter, 3)
	for i := range dst {
		dst[i] = []rtnl.SockFilter{{Op: 1}} // must not survive
	}
	t2 := e.tap("t2", tap.Options{})
	batch.GetIngressBPF(t0, &dst[0])
	batch.GetIngressBPF(t2, &dst[1])
	batch.GetIngressBPF(9999, &dst[2])
	res, _ := e.c.Exec(ctx, &batch)
	if res[0] != nil || !reflect.DeepEqual(dst[0], progB) {
		t.Errorf("batch GetIngressBPF(t0) = %v, %v, want progB", dst[0], res[0])
	}
	if res[1] != nil || dst[1] != nil {
		t.Errorf("batch GetIngressBPF(t2 without clsact) = %v, %v, want nil, nil", dst[1], res[1])
	}
	if !errors.Is(res[2], unix.ENODEV) {
		t.Errorf("batch GetIngressBPF(absent link) = %v, want ENODEV", res[2])
	}
}

// TestIntegrationIngressBPFBatchOfLongPrograms installs the longest
// program on many TAPs in one batch: more bytes than one sendmsg can carry
// (the socket's send buffer), so Exec must split the batch by size.
func TestIntegrationIngressBPFBatchOfLongPrograms(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	const n = 16 // 16 x 32 KiB, beyond the default 208 KiB send buffer
	prog := longProgram(rtnl.MaxBPFInstructions)
	var b rtnl.Batch
	idx := make([]uint32, n)
	for i := range idx {
		idx[i] = e.tap(fmt.Sprintf("t%d", i), tap.Options{})
		b.AddClsact(idx[i])
		b.SetIngressBPF(idx[i], prog)
	}
	if _, err := e.c.Exec(ctx, &b); err != nil {
		t.Fatalf("Exec(%d clsact + %d-instruction programs) = %v", n, len(prog), err)
	}
	b.Reset()
	got := make([][]rtnl.SockFilter, n)
	for i := range idx {
		b.GetIngressBPF(idx[i], &got[i])
	}
	if _, err := e.c.Exec(ctx, &b); err != nil {
		t.Fatalf("Exec(%d gets of %d-instruction programs) = %v", n, len(prog), err)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], prog) {
			t.Errorf("program of t%d = %d instructions, want the %d installed", i, len(got[i]), len(prog))
		}
	}
}

// TestIntegrationIngressBPFAtomicReplace replaces the ingress program of a
// TAP thousands of times, alternating two programs that both drop every
// frame from one MAC, while another goroutine writes such frames (and
// others) into the TAP. If there were a moment without a program, a frame
// would pass it: the clsact qdisc must count exactly one drop per frame
// from that MAC, and no drop of the others.
func TestIntegrationIngressBPFAtomicReplace(t *testing.T) {
	e := newNS(t)
	ctx := t.Context()
	d, err := tap.Create("t0", &tap.Options{NetNS: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := e.index("t0")
	// No IPv6 link-local traffic of the host's own in the counters.
	if err := e.c.SetLink(ctx, &rtnl.LinkChange{Index: t0, AddrGenModeNone: true}); err != nil {
		t.Fatal(err)
	}
	bad := [6]byte{2, 0, 0, 0, 0xbe, 0xef}
	good := [6]byte{2, 0, 0, 0, 0xbe, 0xee}
	progs := [2][]rtnl.SockFilter{dropSource(bad, false), dropSource(bad, true)}
	var b rtnl.Batch
	b.AddClsact(t0)
	b.SetIngressBPF(t0, progs[0])
	b.SetLink(&rtnl.LinkChange{Index: t0, Up: ptr(true)})
	if _, err := e.c.Exec(ctx, &b); err != nil {
		t.Fatal(err)
	}

	frame := func(src [6]byte) []byte {
		f := make([]byte, 60)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:], src[:])
		f[12], f[13] = 0x88, 0xb5 // IEEE local experimental ethertype
		return f
	}
	const rounds = 200000
	q := d.Queues()[0]
	var wg sync.WaitGroup
	done := make(chan struct{})
	var werr error
	nbad, ngood := 0, 0
	wg.Go(func() {
		defer close(done)
		fb, fg := frame(bad), frame(good)
		for i := range rounds {
			f, n := fb, &nbad
			if i%4 == 3 {
				f, n = fg, &ngood
			}
			if _, err := q.Write(f); err != nil {
				werr = err
				return
			}
			*n++
		}
	})
	replaced := 0
	for running := true; running; replaced++ {
		select {
		case <-done:
			running = false
		default:
		}
		if err := e.c.SetIngressBPF(ctx, t0, progs[replaced%2]); err != nil {
			t.Fatalf("SetIngressBPF #%d = %v", replaced, err)
		}
	}
	wg.Wait()
	if werr != nil {
		t.Fatalf("write frame: %v", os.NewSyscallError("write", werr))
	}
	st, err := e.c.Clsact(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames from the dropped MAC, %d others, %d replacements; clsact saw %d, dropped %d",
		nbad, ngood, replaced, st.Stats.Packets, st.Stats.Drops)
	if replaced < 100 {
		t.Errorf("only %d replacements while the frames flowed, want at least 100 for the test to mean something", replaced)
	}
	if st.Stats.Drops != uint32(nbad) {
		t.Errorf("clsact dropped %d frames, want exactly the %d from %x: a program was missing or wrong", st.Stats.Drops, nbad, bad)
	}
	if st.Stats.Packets != uint64(nbad+ngood) {
		t.Errorf("clsact saw %d frames, want the %d written", st.Stats.Packets, nbad+ngood)
	}
	// iproute2 agrees with the counters.
	if tq := tcQdisc(e, "t0", "clsact"); tq["drops"] != float64(nbad) || tq["packets"] != float64(nbad+ngood) {
		t.Errorf("tc -s qdisc show dev t0: clsact packets %v drops %v, want %d, %d", tq["packets"], tq["drops"], nbad+ngood, nbad)
	}
}
