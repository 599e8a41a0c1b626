package tap

import (
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		name string
		ok   bool
		why  string // substring of the error text
	}{
		{desc: "simple", name: "tap0", ok: true},
		{desc: "one byte", name: "t", ok: true},
		{desc: "15 bytes", name: "abcdefghijklmno", ok: true},
		{desc: "dashes dots underscores", name: "vm-1.net_0", ok: true},
		{desc: "dot prefix", name: ".tap", ok: true},
		{desc: "unicode within length", name: "tap-é", ok: true},
		{desc: "unicode 15 bytes", name: "ééééééé0", ok: true},
		{desc: "unicode NEL is not a kernel space", name: "t\u0085", ok: true},
		{desc: "empty", name: "", why: "empty"},
		{desc: "16 bytes", name: "abcdefghijklmnop", why: "16 bytes"},
		{desc: "far too long", name: strings.Repeat("x", 64), why: "64 bytes"},
		{desc: "unicode over length", name: "éééééééé", why: "16 bytes"},
		{desc: "slash", name: "a/b", why: `'/'`},
		{desc: "colon alias", name: "eth0:1", why: `':'`},
		{desc: "template", name: "tap%d", why: `'%'`},
		{desc: "space", name: "tap 0", why: `' '`},
		{desc: "tab", name: "tap\t0", why: `'\t'`},
		{desc: "newline", name: "tap0\n", why: `'\n'`},
		{desc: "vertical tab", name: "\vtap", why: `'\v'`},
		{desc: "form feed", name: "ta\fp", why: `'\f'`},
		{desc: "carriage return", name: "tap\r", why: `'\r'`},
		{desc: "dot", name: ".", why: "reserved"},
		{desc: "dotdot", name: "..", why: "reserved"},
		{desc: "NUL", name: "ta\x00p", why: `'\x00'`},
		// The kernel's isspace (lib/ctype.c) counts 0xA0, Latin-1 NBSP, as
		// whitespace; it is the second byte of the UTF-8 for U+00E0 and
		// U+00A0, so dev_valid_name refuses these names with EINVAL.
		{desc: "U+00E0 contains byte 0xa0", name: "tap-à", why: `'\u00a0'`},
		{desc: "U+00A0", name: "tap\u00a0", why: `'\u00a0'`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			err := ValidateName(tt.name)
			if tt.ok {
				if err != nil {
					t.Errorf("ValidateName(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ValidateName(%q) = %v, want an error wrapping %v", tt.name, err, ErrInvalidName)
			}
			if q := strconv.Quote(tt.name); !strings.Contains(err.Error(), q) {
				t.Errorf("ValidateName(%q) = %q, want it to quote the name as %s", tt.name, err, q)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("ValidateName(%q) = %q, want it to mention %s", tt.name, err, tt.why)
			}
		})
	}
}

func TestOptionsQueues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		o    Options
		want int
		ok   bool
	}{
		{desc: "zero means one", o: Options{}, want: 1, ok: true},
		{desc: "zero means one multi-queue", o: Options{MultiQueue: true}, want: 1, ok: true},
		{desc: "one", o: Options{Queues: 1}, want: 1, ok: true},
		{desc: "one multi-queue", o: Options{Queues: 1, MultiQueue: true}, want: 1, ok: true},
		{desc: "two multi-queue", o: Options{Queues: 2, MultiQueue: true}, want: 2, ok: true},
		{desc: "max", o: Options{Queues: MaxQueues, MultiQueue: true}, want: MaxQueues, ok: true},
		{desc: "negative", o: Options{Queues: -1}},
		{desc: "negative multi-queue", o: Options{Queues: -1, MultiQueue: true}},
		{desc: "min int", o: Options{Queues: math.MinInt, MultiQueue: true}},
		{desc: "257", o: Options{Queues: 257, MultiQueue: true}},
		{desc: "257 single-queue", o: Options{Queues: 257}},
		{desc: "two without multi-queue", o: Options{Queues: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			got, err := tt.o.queues("tap0")
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("%+v.queues() = %d, %v, want %d, nil", tt.o, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("%+v.queues() = %d, %v, want an error wrapping %v", tt.o, got, err, ErrInvalidOptions)
			}
			if err != nil && !strings.Contains(err.Error(), "tap0") {
				t.Errorf("%+v.queues() = %q, want the device name in it", tt.o, err)
			}
		})
	}
}

// badNetNS is an fd number no process has open: setns fails on it with
// EBADF before anything else happens, so a test that reaches the first
// system call by mistake gets EBADF instead of creating a device in the
// host namespace.
const badNetNS = math.MaxInt32

// TestValidationBeforeSyscall checks, without privileges, that Create and
// Open refuse bad names and options before their first system call (which
// is setns into Options.NetNS), and that good ones reach it.
func TestDeviceQueuesIsACopy(t *testing.T) {
	t.Parallel()
	d, _ := pipeDevice(t, 2)
	q := d.Queues()
	if len(q) != 2 {
		t.Fatalf("len(Device.Queues()) = %d, want 2", len(q))
	}
	first := q[0]
	q[0] = nil
	if got := d.Queues()[0]; got != first {
		t.Errorf("Device.Queues()[0] after the caller changed its copy = %v, want %v", got, first)
	}
	// The files themselves are shared, not duplicated.
	if got := d.Queues()[1]; got != q[1] {
		t.Errorf("Device.Queues()[1] = %p, want the owned *os.File %p", got, q[1])
	}
	if d.Name() != "tap0" || d.Flags() != (Flags{NoPI: true}) {
		t.Errorf("Device.Name(), Flags() = %q, %+v, want %q, %+v", d.Name(), d.Flags(), "tap0", Flags{NoPI: true})
	}
}

func TestDeviceCloseIdempotent(t *testing.T) {
	t.Parallel()
	d, _ := pipeDevice(t, 3)
	files := d.Queues()
	for i := range 3 {
		if err := d.Close(); err != nil {
			t.Fatalf("Device.Close() #%d = %v, want nil", i+1, err)
		}
	}
	if got := d.Queues(); len(got) != 0 {
		t.Errorf("Device.Queues() after Close = %v, want none", got)
	}
	for i, f := range files {
		if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("queue %d Stat() after Device.Close = %v, want %v", i, err, os.ErrClosed)
		}
	}
}

func TestDeviceRelease(t *testing.T) {
	t.Parallel()
	d, ws := pipeDevice(t, 2)
	files := d.Release()
	if len(files) != 2 {
		t.Fatalf("len(Device.Release()) = %d, want 2", len(files))
	}
	if got := d.Queues(); len(got) != 0 {
		t.Errorf("Device.Queues() after Release = %v, want none", got)
	}
	if got := d.Release(); len(got) != 0 {
		t.Errorf("second Device.Release() = %v, want none", got)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Device.Close() after Release = %v, want nil", err)
	}
	// The released files are still open and now the caller's.
	for i, f := range files {
		if _, err := ws[i].Write([]byte{byte(i)}); err != nil {
			t.Fatalf("write to pipe %d: %v", i, err)
		}
		b := make([]byte, 1)
		if n, err := f.Read(b); n != 1 || err != nil || b[0] != byte(i) {
			t.Errorf("released queue %d Read() = %d, %v (byte %d), want 1, nil (byte %d)", i, n, err, b[0], i)
		}
		if err := f.Close(); err != nil {
			t.Errorf("released queue %d Close() = %v, want nil", i, err)
		}
	}
}

// pipeDevice returns a Device owning n pipe read ends in place of queue
// files, and the write ends, closed at cleanup.
func pipeDevice(t *testing.T, n int) (*Device, []*os.File) {
	t.Helper()
	d := &Device{name: "tap0", flags: Flags{NoPI: true}}
	var ws []*os.File
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatalf("os.Pipe() = %v", err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		d.files = append(d.files, r)
		ws = append(ws, w)
	}
	return d, ws
}
