package owner

import (
	"encoding/hex"
	"strconv"
	"strings"
)

const (
	// maxTagLen is the longest alias the kernel stores (IFALIASZ - 1).
	maxTagLen = 255
	// maxCreated bounds Tag.Created in a tag (18 digits).
	maxCreated = 999_999_999_999_999_999
)

// Tag is the owner record a TAP carries in its alias.
type Tag struct {
	Instance  Instance
	VMID      string
	NIC       int     // this NIC's index
	NICs      int     // how many NICs the VM was given
	MAC       [6]byte // the guest's MAC
	Queues    int     // virtio queues (2 per queue pair)
	QueueSize int

	// Hypervisor is the VMM profile the TAP was made for (config's
	// CloudHypervisor, Firecracker or QEMU): it decided the TAP's
	// multi-queue flag. Empty in tags that do not record it.
	Hypervisor string

	// Guard is the port-security mode the NIC was made with (guard's
	// "strict" or "off"); empty for the default ("l2") and in tags that
	// do not record it.
	Guard string

	// Staged marks a NIC made staged for a live migration's destination:
	// not forwarding and without its FDB entry until activated.
	Staged bool

	Created int64 // unix milliseconds when a Config last made or adopted the TAP
}

// maxProfileLen bounds Tag.Hypervisor.
const maxProfileLen = 16

// Append appends the alias form of t to dst.
func (t *Tag) Append(dst []byte) []byte {
	dst = append(dst, tagVersion+" i="...)
	dst = hex.AppendEncode(dst, t.Instance[:])
	dst = append(dst, " v="...)
	dst = append(dst, t.VMID...)
	dst = append(dst, " n="...)
	dst = strconv.AppendInt(dst, int64(t.NIC), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(t.NICs), 10)
	dst = append(dst, " m="...)
	dst = appendMAC(dst, t.MAC[:])
	dst = append(dst, " q="...)
	dst = strconv.AppendInt(dst, int64(t.Queues), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(t.QueueSize), 10)
	if t.Hypervisor != "" {
		dst = append(dst, " h="...)
		dst = append(dst, t.Hypervisor...)
	}
	if t.Guard != "" {
		dst = append(dst, " g="...)
		dst = append(dst, t.Guard...)
	}
	if t.Staged {
		dst = append(dst, " s=1"...)
	}
	dst = append(dst, " c="...)
	return strconv.AppendInt(dst, t.Created, 10)
}

// String returns the alias form of t.
func (t *Tag) String() string {
	var buf [maxTagLen]byte
	return string(t.Append(buf[:0]))
}

// ParseTag parses an alias made by Tag.Append into t. It reports false for
// anything else, including tags whose fields are out of range: such a
// device is not ours. t.VMID is a substring of s; ParseTag does not
// allocate.
func ParseTag(s string, t *Tag) bool {
	*t = Tag{}
	var ok bool
	if s, ok = strings.CutPrefix(s, tagVersion+" i="); !ok || len(s) < 16 {
		return false
	}
	for i := range t.Instance {
		hi, lo := unhex(s[2*i]), unhex(s[2*i+1])
		if hi < 0 || lo < 0 {
			return false
		}
		t.Instance[i] = byte(hi<<4 | lo)
	}
	s = s[16:]
	var f string
	if f, s, ok = field(s, " v="); !ok || !validVMID(f) {
		return false
	}
	t.VMID = f
	if f, s, ok = field(s, " n="); !ok {
		return false
	}
	if t.NIC, t.NICs, ok = pair(f, MaxNICs-1, MaxNICs); !ok || t.NICs < 1 || t.NIC >= t.NICs {
		return false
	}
	if f, s, ok = field(s, " m="); !ok || len(f) != 17 {
		return false
	}
	if !parseMAC(f, &t.MAC) {
		return false
	}
	if f, s, ok = field(s, " q="); !ok {
		return false
	}
	if t.Queues, t.QueueSize, ok = pair(f, 1024, 1<<16); !ok {
		return false
	}
	if strings.HasPrefix(s, " h=") {
		if f, s, _ = field(s, " h="); !validProfile(f) {
			return false
		}
		t.Hypervisor = f
	}
	if strings.HasPrefix(s, " g=") {
		if f, s, _ = field(s, " g="); !validProfile(f) {
			return false
		}
		t.Guard = f
	}
	if strings.HasPrefix(s, " s=") {
		if f, s, _ = field(s, " s="); f != "1" {
			return false
		}
		t.Staged = true
	}
	if f, s, ok = field(s, " c="); !ok || s != "" {
		return false
	}
	// Canonical digits only (no sign, no leading zero): a tag that parses
	// formats back to the same string.
	c, ok := parseUint64(f, maxCreated)
	t.Created = int64(c)
	return ok
}

// field expects s to start with key and returns the value up to the next
// space, and what follows it (starting at that space).
func field(s, key string) (val, rest string, ok bool) {
	if s, ok = strings.CutPrefix(s, key); !ok {
		return "", "", false
	}
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i:], true
	}
	return s, "", true
}

// pair parses "a/b" with a <= maxA and b <= maxB.
func pair(s string, maxA, maxB int) (a, b int, ok bool) {
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return 0, 0, false
	}
	if a, ok = parseUint(s[:i], maxA); !ok {
		return 0, 0, false
	}
	if b, ok = parseUint(s[i+1:], maxB); !ok {
		return 0, 0, false
	}
	return a, b, true
}

// validProfile accepts 1 to maxProfileLen bytes of a-z, 0-9 and '-': a
// hypervisor profile or a guard mode.
func validProfile(p string) bool {
	if p == "" || len(p) > maxProfileLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validVMID is ValidateVMID without the error: it allocates nothing.
func validVMID(id string) bool {
	if id == "" || len(id) > MaxVMIDLen || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return false
		}
	}
	return true
}

func appendMAC(dst []byte, mac []byte) []byte {
	for i, b := range mac {
		if i > 0 {
			dst = append(dst, ':')
		}
		dst = append(dst, "0123456789abcdef"[b>>4], "0123456789abcdef"[b&15])
	}
	return dst
}

// parseMAC parses "xx:xx:xx:xx:xx:xx" in lower-case hex.
func parseMAC(s string, mac *[6]byte) bool {
	for i := range 6 {
		p := s[i*3:]
		if i < 5 && p[2] != ':' {
			return false
		}
		hi, lo := unhex(p[0]), unhex(p[1])
		if hi < 0 || lo < 0 {
			return false
		}
		mac[i] = byte(hi<<4 | lo)
	}
	return true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
