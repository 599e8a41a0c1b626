package tap

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestValidationBeforeSyscall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		name string
		o    Options
		want error
	}{
		{desc: "bad name", name: "a/b", want: ErrInvalidName},
		{desc: "empty name", name: "", want: ErrInvalidName},
		{desc: "long name", name: "abcdefghijklmnop", want: ErrInvalidName},
		{desc: "bad name wins over bad options", name: "a b", o: Options{Queues: -1}, want: ErrInvalidName},
		{desc: "negative queues", name: "tap0", o: Options{Queues: -1}, want: ErrInvalidOptions},
		{desc: "257 queues", name: "tap0", o: Options{Queues: 257, MultiQueue: true}, want: ErrInvalidOptions},
		{desc: "two queues without multi-queue", name: "tap0", o: Options{Queues: 2}, want: ErrInvalidOptions},
		{desc: "zero queues is valid", name: "tap0", o: Options{}, want: unix.EBADF},
		{desc: "256 queues is valid", name: "tap0", o: Options{Queues: 256, MultiQueue: true}, want: unix.EBADF},
	}
	for _, tt := range tests {
		for _, fn := range []struct {
			name string
			f    func(string, *Options) (*Device, error)
		}{{"Create", Create}, {"Open", Open}} {
			t.Run(fn.name+"/"+tt.desc, func(t *testing.T) {
				t.Parallel()
				o := tt.o
				o.NetNS = badNetNS
				d, err := fn.f(tt.name, &o)
				if d != nil {
					d.Close()
					t.Fatalf("%s(%q, %+v) returned a Device, want an error", fn.name, tt.name, o)
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("%s(%q, %+v) = %v, want an error wrapping %v", fn.name, tt.name, o, err, tt.want)
				}
			})
		}
	}
}

func TestDecodeFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   uint16
		want Flags
	}{
		{0, Flags{}},
		{unix.IFF_TAP, Flags{}},
		{unix.IFF_TUN, Flags{TUN: true}},
		{unix.IFF_TAP | unix.IFF_NO_PI, Flags{NoPI: true}},
		{unix.IFF_TAP | unix.IFF_VNET_HDR, Flags{VnetHdr: true}},
		{unix.IFF_TAP | unix.IFF_MULTI_QUEUE, Flags{MultiQueue: true}},
		{unix.IFF_TAP | unix.IFF_PERSIST, Flags{Persist: true}},
		{unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE | unix.IFF_PERSIST,
			Flags{NoPI: true, VnetHdr: true, MultiQueue: true, Persist: true}},
	}
	for _, tt := range tests {
		if got := decodeFlags(tt.in); got != tt.want {
			t.Errorf("decodeFlags(%#x) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestSetIffError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc  string
		o     Options
		errno unix.Errno
		text  string
	}{
		{"exclusive busy", Options{Exclusive: true}, unix.EBUSY, "already exists"},
		{"busy", Options{}, unix.EBUSY, "already attached"},
		{"invalid", Options{}, unix.EINVAL, "multi-queue flag"},
		{"not permitted", Options{}, unix.EPERM, "CAP_NET_ADMIN"},
		{"too many queues", Options{}, unix.E2BIG, "too many queues"},
		{"other errno passes through", Options{}, unix.ENOMEM, "tap tap0: ioctl TUNSETIFF:"},
	}
	for _, tt := range tests {
		in := os.NewSyscallError("ioctl TUNSETIFF", tt.errno)
		err := setIffError("tap0", &tt.o, in)
		if !errors.Is(err, tt.errno) {
			t.Errorf("%s: setIffError(tap0, %+v, %v) = %v, want an error wrapping %v", tt.desc, tt.o, in, err, tt.errno)
		}
		if err == nil || !strings.Contains(err.Error(), tt.text) || !strings.HasPrefix(err.Error(), "tap tap0: ") {
			t.Errorf("%s: setIffError(tap0, %+v, %v) = %q, want it to start with %q and mention %q", tt.desc, tt.o, in, err, "tap tap0: ", tt.text)
		}
	}
}
