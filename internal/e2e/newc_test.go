package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// newcWriter writes a cpio archive in the "new ASCII" (newc) format, the
// only one the kernel unpacks into the initramfs (init/initramfs.c,
// Documentation/driver-api/early-userspace/buffer-format.rst). Every entry is
// owned by root with mtime 0, so the archive depends only on its contents.
type newcWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// cpio mode bits (the S_IF* values of stat(2)).
const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

func (c *newcWriter) entry(name string, mode uint32, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	var hdr bytes.Buffer
	hdr.WriteString("070701")
	for _, v := range []uint32{
		c.ino, mode, 0, 0, nlink, 0, uint32(len(data)),
		0, 0, rdevMajor, rdevMinor, uint32(len(name) + 1), 0,
	} {
		fmt.Fprintf(&hdr, "%08x", v)
	}
	hdr.WriteString(name)
	hdr.WriteByte(0)
	pad4(&hdr, hdr.Len())
	hdr.Write(data)
	pad4(&hdr, len(data))
	_, c.err = c.w.Write(hdr.Bytes())
}

// pad4 pads b with NULs so that n bytes become a multiple of 4: the header
// plus name, and the data, are each 4-byte aligned.
func pad4(b *bytes.Buffer, n int) {
	for ; n%4 != 0; n++ {
		b.WriteByte(0)
	}
}

func (c *newcWriter) dir(name string)            { c.entry(name, cpioDir|0o755, 0, 0, nil) }
func (c *newcWriter) file(name string, b []byte) { c.entry(name, cpioFile|0o644, 0, 0, b) }
func (c *newcWriter) exec(name string, b []byte) { c.entry(name, cpioFile|0o755, 0, 0, b) }
func (c *newcWriter) symlink(name, target string) {
	c.entry(name, cpioSymlink|0o777, 0, 0, []byte(target))
}
func (c *newcWriter) charDev(name string, maj, min uint32) {
	c.entry(name, cpioCharDev|0o600, maj, min, nil)
}

// close writes the trailer and returns the first error.
func (c *newcWriter) close() error {
	c.ino = 0
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	return c.err
}

// TestNewcWriter checks the archive against cpio(1), an independent reader,
// when it is installed (.ci/deps installs it), and its framing in any case.
func TestNewcWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &newcWriter{w: &buf}
	w.dir("bin")
	w.exec("bin/busybox", []byte("abc"))
	w.symlink("bin/sh", "busybox")
	w.charDev("dev/console", 5, 1)
	w.file("etc/x", []byte("four"))
	if err := w.close(); err != nil {
		t.Fatalf("close() = %v, want nil", err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length = %d, want a multiple of 4", buf.Len())
	}
	// First header: magic, ino 1, a directory, name "bin".
	hdr := buf.String()[:110]
	if !strings.HasPrefix(hdr, "070701") {
		t.Fatalf("magic = %q, want 070701", hdr[:6])
	}
	if mode, _ := strconv.ParseUint(hdr[14:22], 16, 32); mode != cpioDir|0o755 {
		t.Errorf("first mode = %o, want %o", mode, cpioDir|0o755)
	}

	if _, err := exec.LookPath("cpio"); err != nil {
		t.Logf("cpio not installed: framing checked only")
		return
	}
	cmd := exec.Command("cpio", "-t", "-v", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -tv: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []struct{ perm, name string }{
		{"drwxr-xr-x", "bin"},
		{"-rwxr-xr-x", "bin/busybox"},
		{"lrwxrwxrwx", "bin/sh -> busybox"},
		{"crw-------", "dev/console"},
		{"-rw-r--r--", "etc/x"},
	}
	if len(lines) != len(want) {
		t.Fatalf("cpio -tv listed %d entries, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w.perm) || !strings.HasSuffix(lines[i], " "+w.name) {
			t.Errorf("cpio -tv line %d = %q, want %s ... %s", i, lines[i], w.perm, w.name)
		}
	}
}
