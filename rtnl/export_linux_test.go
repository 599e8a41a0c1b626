package rtnl

// UnmarshalLink decodes an RTM_NEWLINK payload (struct ifinfomsg and its
// attributes) the way Conn decodes link replies, for the fuzz target,
// benchmarks and decoder tests of package rtnl_test.
func UnmarshalLink(b []byte) (*Link, error) {
	l := new(Link)
	if err := l.unmarshal(b); err != nil {
		return nil, err
	}
	return l, nil
}

// UnmarshalQdisc decodes an RTM_NEWQDISC payload as Conn does.
func UnmarshalQdisc(b []byte) (*Qdisc, error) {
	q := new(Qdisc)
	if err := q.decode(b); err != nil {
		return nil, err
	}
	return q, nil
}

// BPFFilter is what the decoder reads of an RTM_NEWTFILTER payload.
type BPFFilter struct {
	Index, Handle, Parent, Info uint32

	Kind   string
	Prog   []SockFilter
	OpsLen int // -1 if absent
	Flags  uint32
	EBPF   bool
}

// UnmarshalBPFFilter decodes an RTM_NEWTFILTER payload as Conn does.
func UnmarshalBPFFilter(b []byte) (*BPFFilter, error) {
	var f bpfFilter
	if err := f.decode(b); err != nil {
		return nil, err
	}
	return &BPFFilter{
		Index: f.index, Handle: f.handle, Parent: f.parent, Info: f.info,
		Kind: f.kind, Prog: f.ops, OpsLen: f.opsLen, Flags: f.flags, EBPF: f.ebpf,
	}, nil
}

// DecodeQdiscInto decodes an RTM_NEWQDISC payload into q, reused, as
// WalkQdiscs does.
func DecodeQdiscInto(q *Qdisc, b []byte) error { return q.decode(b) }

// DecodeBPFInto decodes an RTM_NEWTFILTER answer into *prog, reusing its
// storage, as a GetIngressBPF destination is filled.
func DecodeBPFInto(prog *[]SockFilter, b []byte) error {
	return (*bpfAnswer)(prog).decode(0x2c /* RTM_NEWTFILTER */, b)
}

// UnmarshalFDBEntry decodes an AF_BRIDGE RTM_NEWNEIGH payload as FDB and
// FDBEntry do.
func UnmarshalFDBEntry(b []byte) (*FDBEntry, error) {
	e := new(FDBEntry)
	if err := e.decode(b); err != nil {
		return nil, err
	}
	return e, nil
}
