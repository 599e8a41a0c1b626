package fuzz

import (
	"errors"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/bridge/owner"
	"github.com/tapbridge/tapbridge/tap"
)

// FuzzTapName checks that every valid VM ID and NIC yields, for each
// candidate, a valid interface name that parses back to its stem and NIC.
func FuzzTapName(f *testing.F) {
	f.Add("vm-000001", 0, 0)
	f.Add("a", 15, 3)
	f.Add("0123456789abcdef", 7, 1)
	f.Fuzz(func(t *testing.T, id string, nic, k int) {
		if owner.ValidateVMID(id) != nil || nic < 0 || nic >= owner.MaxNICs || k < 0 || k >= owner.Candidates {
			return
		}
		name := owner.Name(id, nic, k)
		if err := tap.ValidateName(name); err != nil {
			t.Fatalf("Name(%q, %d, %d) = %q: %v", id, nic, k, name, err)
		}
		stem, n, ok := owner.ParseName(name)
		if !ok || n != nic || len(stem) < 1 || len(stem) > 8 {
			t.Fatalf("ParseName(%q) = %q, %d, %v, want a stem and %d", name, stem, n, ok, nic)
		}
		if k == 0 && stem != id[:min(8, len(id))] {
			t.Fatalf("ParseName(%q) stem = %q, want the ID prefix", name, stem)
		}
		if alt := owner.AltName(owner.InstanceOf("/x"), id, nic); len(alt) > 127 {
			t.Fatalf("AltName(%q) is %d bytes, the kernel limit is 127", id, len(alt))
		}
	})
}

// FuzzParseName checks that ParseName never accepts what AppendName could
// not have made.
func FuzzParseName(f *testing.F) {
	f.Add("btvm-00000-0")
	f.Add("bt-1")
	f.Add("btabcdefghi-1")
	f.Add("bt0mu7mrq7-15")
	f.Fuzz(func(t *testing.T, name string) {
		stem, nic, ok := owner.ParseName(name)
		if !ok {
			return
		}
		if nic < 0 || nic >= owner.MaxNICs || len(stem) < 1 || len(stem) > 8 {
			t.Fatalf("ParseName(%q) = %q, %d, true: out of range", name, stem, nic)
		}
		if !strings.HasPrefix(name, "bt"+stem+"-") {
			t.Fatalf("ParseName(%q) stem %q is not the name's", name, stem)
		}
	})
}

// FuzzVMID checks ValidateVMID against its documented rule.
func FuzzVMID(f *testing.F) {
	for _, s := range []string{"", ".", "..", "vm-1", "a/b", "a b", "é", strings.Repeat("x", 65), "A.b_c-9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := owner.ValidateVMID(id)
		want := id != "" && len(id) <= owner.MaxVMIDLen && id != "." && id != ".."
		for i := 0; i < len(id) && want; i++ {
			c := id[i]
			want = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
		}
		if (err == nil) != want {
			t.Fatalf("ValidateVMID(%q) = %v, want valid=%v", id, err, want)
		}
		if err != nil && !errors.Is(err, owner.ErrInvalidVMID) {
			t.Fatalf("ValidateVMID(%q) = %v, want ErrInvalidVMID", id, err)
		}
	})
}

// FuzzTag checks that ParseTag accepts only canonical tags: whatever it
// accepts formats back to the same string, and what it formats parses back.
func FuzzTag(f *testing.F) {
	t0 := owner.Tag{Instance: owner.InstanceOf("/var/lib/tapbridge"), VMID: "vm-000001", NIC: 1, NICs: 2,
		MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 4, QueueSize: 512, Created: 1764000000000}
	f.Add(t0.String())
	f.Add("tb1 i=0000000000000000 v=a n=0/1 m=02:00:00:00:00:01 q=2/256 c=0")
	f.Add("tb1 i=00 v=a")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		var tag owner.Tag
		if !owner.ParseTag(s, &tag) {
			return
		}
		if got := tag.String(); got != s {
			t.Fatalf("ParseTag(%q) then String() = %q: not canonical", s, got)
		}
		if owner.ValidateVMID(tag.VMID) != nil || tag.NIC >= tag.NICs || tag.NICs > owner.MaxNICs {
			t.Fatalf("ParseTag(%q) accepted out-of-range fields: %+v", s, tag)
		}
		var again owner.Tag
		if !owner.ParseTag(tag.String(), &again) || again != tag {
			t.Fatalf("round trip of %+v = %+v", tag, again)
		}
	})
}

// FuzzIfName checks tap.ValidateName against the kernel's dev_valid_name
// rule (whose isspace, lib/ctype.c, includes 0xa0) plus tapbridge's refusal
// of templates.
func FuzzIfName(f *testing.F) {
	for _, s := range []string{"", ".", "..", "eth0", "a/b", "a:b", "a%d", "a b", "0123456789abcdef", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := tap.ValidateName(name)
		want := name != "" && len(name) <= 15 && name != "." && name != ".." &&
			!strings.ContainsAny(name, "/:% \t\n\v\f\r\x00") && strings.IndexByte(name, 0xa0) < 0
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, want valid=%v", name, err, want)
		}
		if err != nil && !errors.Is(err, tap.ErrInvalidName) {
			t.Fatalf("ValidateName(%q) = %v, want ErrInvalidName", name, err)
		}
	})
}
