package rtnl_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readCorpusFile reads a one-value []byte file in the "go test fuzz v1"
// format.
func readCorpusFile(tb testing.TB, path string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		tb.Fatalf("%s: not a one-value []byte fuzz corpus file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// formatCorpusFile formats b as a "go test fuzz v1" file.
func formatCorpusFile(b []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
}

func TestCorpusFileFormat(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, []byte("a\"b\\c"), {0xff, 0xfe, 0x80, 0x7f, '\n'}} {
		path := filepath.Join(t.TempDir(), "x")
		if err := os.WriteFile(path, formatCorpusFile(b), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := readCorpusFile(t, path); !bytes.Equal(got, b) {
			t.Errorf("readCorpusFile(formatCorpusFile(%x)) = %x", b, got)
		}
	}
}
