package owner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	// MaxVMIDLen bounds VM IDs so that alternative names stay under the
	// kernel's 127 bytes.
	MaxVMIDLen = 64

	// MaxNICs is the number of NICs a VM may have (indices 0..MaxNICs-1).
	MaxNICs = 16

	// Candidates is the number of TAP names tried for one NIC.
	Candidates = 4

	// namePrefix starts every TAP name; altPrefix every alternative name.
	namePrefix = "bt"
	altPrefix  = "tb."

	// tagVersion starts every owner tag.
	tagVersion = "tb1"

	// hashChars is the alphabet of hashed name candidates.
	hashChars = "0123456789abcdefghijklmnopqrstuv"
)

// ErrInvalidVMID is wrapped by the errors of ValidateVMID.
var ErrInvalidVMID = errors.New("invalid VM ID")

// Instance identifies one tapbridge instance: the first 8 bytes of the
// SHA-256 of its absolute, cleaned root directory. Instances with different
// root directories never touch each other's TAPs.
type Instance [8]byte

// InstanceOf returns the instance identity of rootDir. A relative rootDir is
// made absolute against the working directory.
func InstanceOf(rootDir string) Instance {
	if abs, err := filepath.Abs(rootDir); err == nil {
		rootDir = abs
	}
	sum := sha256.Sum256([]byte(filepath.Clean(rootDir)))
	var i Instance
	copy(i[:], sum[:])
	return i
}

// String returns the 16 hex digits of i.
func (i Instance) String() string { return hex.EncodeToString(i[:]) }

// Group returns the device group reserved for i's doomed TAPs: "tb" in the
// top 16 bits, two instance bytes below, kept under 2^31 because the kernel
// stores groups as int.
func (i Instance) Group() uint32 {
	return 0x74620000 | uint32(i[0])<<8 | uint32(i[1])
}

// ValidateVMID reports whether id can name a VM: 1 to MaxVMIDLen bytes of
// ASCII letters, digits, '.', '_' and '-', and not "." or "..". The error
// wraps ErrInvalidVMID and quotes the ID.
func ValidateVMID(id string) error {
	if validVMID(id) {
		return nil
	}
	var why string
	switch {
	case id == "":
		why = "empty"
	case len(id) > MaxVMIDLen:
		why = "longer than " + strconv.Itoa(MaxVMIDLen) + " bytes"
	case id == "." || id == "..":
		why = "reserved"
	default:
		for i := 0; i < len(id); i++ {
			if !idChar(id[i]) {
				why = fmt.Sprintf("byte %d is %q; allowed: A-Z a-z 0-9 . _ -", i, id[i])
				break
			}
		}
	}
	if len(id) > MaxVMIDLen+16 {
		id = id[:MaxVMIDLen] + "..."
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidVMID, id, why)
}

func idChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// AppendName appends candidate k (0..Candidates-1) of the TAP name of NIC
// nic of VM id to dst. id must be valid and nic in 0..MaxNICs-1.
func AppendName(dst []byte, id string, nic, k int) []byte {
	dst = append(dst, namePrefix...)
	if k == 0 {
		dst = append(dst, id[:min(len(id), 8)]...)
	} else {
		// FNV-1a over the ID and the candidate number.
		h := uint64(14695981039346656037)
		for i := 0; i < len(id); i++ {
			h = (h ^ uint64(id[i])) * 1099511628211
		}
		h = (h ^ uint64(k)) * 1099511628211
		for range 8 {
			dst = append(dst, hashChars[h&31])
			h >>= 5
		}
	}
	dst = append(dst, '-')
	return strconv.AppendInt(dst, int64(nic), 10)
}

// Name returns candidate k of the TAP name of NIC nic of VM id.
func Name(id string, nic, k int) string {
	var buf [16]byte
	return string(AppendName(buf[:0], id, nic, k))
}

// ParseName splits a TAP name made by AppendName into its 1 to 8 byte stem
// (the VM ID prefix or the hash) and NIC index. It reports false for any
// other name. Names say nothing about ownership; see ParseTag.
func ParseName(name string) (stem string, nic int, ok bool) {
	if len(name) < len(namePrefix)+3 || name[:len(namePrefix)] != namePrefix {
		return "", 0, false
	}
	rest := name[len(namePrefix):]
	dash := strings.LastIndexByte(rest, '-')
	if dash < 1 || dash > 8 || dash == len(rest)-1 {
		return "", 0, false
	}
	n, ok := parseUint(rest[dash+1:], MaxNICs-1)
	if !ok {
		return "", 0, false
	}
	return rest[:dash], n, true
}

// appendAltName appends the alternative name of NIC nic of VM id of
// instance inst to dst.
func appendAltName(dst []byte, inst Instance, id string, nic int) []byte {
	dst = append(dst, altPrefix...)
	dst = hex.AppendEncode(dst, inst[:4])
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(nic), 10)
	dst = append(dst, '.')
	return append(dst, id...)
}

// AltName returns the alternative name of NIC nic of VM id of instance inst.
func AltName(inst Instance, id string, nic int) string {
	var buf [96]byte
	return string(appendAltName(buf[:0], inst, id, nic))
}

// parseUint parses a decimal number without sign or leading zeros (except
// "0" itself) no larger than max: the canonical form, so that what parses
// formats back to the same string.
func parseUint(s string, max int) (int, bool) {
	n, ok := parseUint64(s, uint64(max))
	return int(n), ok
}

// parseUint64 is parseUint for up to 19 digits.
func parseUint64(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > max {
			return 0, false
		}
	}
	return n, true
}
