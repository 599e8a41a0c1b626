package owner

import (
	"errors"
	"strings"
	"testing"
)

func TestNameCandidates(t *testing.T) {
	if got, want := Name("vm-000001", 0, 0), "btvm-00000-0"; got != want {
		t.Fatalf("Name(vm-000001, 0, 0) = %q, want %q", got, want)
	}
	seen := map[string]bool{}
	for k := range Candidates {
		n := Name("vm-000001", 15, k)
		if len(n) > 15 || seen[n] {
			t.Fatalf("candidate %d = %q: too long or repeated", k, n)
		}
		seen[n] = true
		stem, nic, ok := ParseName(n)
		if !ok || nic != 15 || len(stem) != 8 {
			t.Fatalf("ParseName(%q) = %q, %d, %v", n, stem, nic, ok)
		}
	}
	if Name("vm-000001", 0, 1) == Name("vm-000002", 0, 1) {
		t.Fatal("hashed candidates of different IDs collide")
	}
}

func TestTagRoundTrip(t *testing.T) {
	in := Tag{Instance: InstanceOf("/var/lib/x"), VMID: "vm-1", NIC: 2, NICs: 4,
		MAC: [6]byte{2, 0xab, 3, 4, 5, 6}, Queues: 4, QueueSize: 512, Created: 1764000000000}
	s := in.String()
	var out Tag
	if !ParseTag(s, &out) || out != in {
		t.Fatalf("ParseTag(%q) = %+v, want %+v", s, out, in)
	}
	for _, bad := range []string{"", "tb1", s + " ", strings.Replace(s, "n=2/4", "n=4/4", 1), strings.Replace(s, "v=vm-1", "v=vm/1", 1)} {
		if ParseTag(bad, &out) {
			t.Errorf("ParseTag(%q) = true, want false", bad)
		}
	}
	// The optional fields round-trip, and only in their canonical form.
	full := in
	full.Hypervisor, full.Guard, full.Staged = "qemu", "strict", true
	fs := full.String()
	if !strings.Contains(fs, " h=qemu g=strict s=1 c=") || !ParseTag(fs, &out) || out != full {
		t.Errorf("ParseTag(%q) = %+v, want %+v", fs, out, full)
	}
	for _, bad := range []string{strings.Replace(fs, "s=1", "s=0", 1), strings.Replace(fs, "g=strict", "g=", 1),
		strings.Replace(fs, "g=strict", "g=STRICT", 1), strings.Replace(fs, " g=strict s=1", " s=1 g=strict", 1)} {
		if ParseTag(bad, &out) {
			t.Errorf("ParseTag(%q) = true, want false", bad)
		}
	}
	if a := testing.AllocsPerRun(100, func() { ParseTag(s, &out) }); a != 0 {
		t.Errorf("ParseTag allocs = %v, want 0", a)
	}
	var buf [256]byte
	nics := 0
	if a := testing.AllocsPerRun(100, func() {
		in.Append(buf[:0])
		AppendName(buf[:0], "vm-1", 3, 2)
		_, nic, _ := ParseName("btvm-1-3")
		nics += nic
	}); a != 0 {
		t.Errorf("Append/AppendName/ParseName allocs = %v, want 0", a)
	}
}

func TestValidateVMID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "a/b", "a b", "a\n", "é", strings.Repeat("a", 65), "a%d", "a:b"} {
		if err := ValidateVMID(id); !errors.Is(err, ErrInvalidVMID) {
			t.Errorf("ValidateVMID(%q) = %v, want ErrInvalidVMID", id, err)
		}
	}
	for _, id := range []string{"a", "vm-000001", "A.b_c-9", strings.Repeat("a", 64)} {
		if err := ValidateVMID(id); err != nil {
			t.Errorf("ValidateVMID(%q) = %v, want nil", id, err)
		}
	}
}
