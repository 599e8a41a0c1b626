package bench_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/bench/internal/orig"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

// vnetHdrLen is sizeof(struct virtio_net_hdr), the header tun prepends and
// expects with IFF_VNET_HDR at the default TUNSETVNETHDRSZ.
const vnetHdrLen = 10

// BenchmarkGuestTraffic checks that noqueue costs guests nothing. Two
// multi-queue TAPs are ports of one bridge; "guest A" writes Ethernet
// frames (64 bytes after a zero virtio-net header) into its queue fd,
// addressed to guest B's MAC, as fast as it can, and "guest B" reads them
// from its own queue fd. It reports the frames B received per second
// (pkts/s) and the share A sent that never arrived (drop-%: tun drops when
// B's ring is full, qdisc or not). tapbridge's TAPs have a noqueue root
// qdisc; orig's have the default one (mq with pfifo_fast per queue), plus a
// static FDB entry for B so that neither floods. defaultqdisc isolates the
// qdisc: tapbridge's TAPs with their root qdisc replaced by the default
// (mq with the system's default qdisc per queue, as at link-up). guardoff
// isolates the guard: tapbridge's TAPs without its ingress filter (the
// frames are IPv4/UDP, which the default guard passes for an unbound NIC).
func BenchmarkGuestTraffic(b *testing.B) {
	for _, impl := range []string{"tapbridge", "guardoff", "defaultqdisc", "orig"} {
		b.Run("frame=64/impl="+impl, func(b *testing.B) { benchTraffic(b, impl) })
	}
}

// guestPair makes the two TAPs and returns their names and guest MACs.
func guestPair(b *testing.B, e *env, impl string) (names [2]string, macs [2]net.HardwareAddr) {
	b.Helper()
	switch impl {
	case "tapbridge", "guardoff", "defaultqdisc":
		o := contenderOpts{impl: "tapbridge", nics: 1, cpu: 2, sync: true}
		if impl == "guardoff" {
			o.impl = impl
		}
		c := newContender(b, e, o).(*tapbridgeC)
		for i, id := range []string{"guest-a", "guest-b"} {
			recs, err := c.br.Config(context.Background(), id, 1, &types.VMConfig{CPU: 2})
			if err != nil {
				b.Fatalf("Config(%s) = %v", id, err)
			}
			mac, err := net.ParseMAC(recs[0].Mac)
			if err != nil {
				b.Fatal(err)
			}
			names[i], macs[i] = recs[0].Tap, mac
			if impl == "defaultqdisc" {
				testutil.Run(b, e.ns, "tc", "qdisc", "replace", "dev", names[i], "root", "mq")
			}
		}
	case "orig":
		c := newContender(b, e, contenderOpts{impl: "orig", nics: 1, cpu: 2}).(*origC)
		for i, id := range []string{"guest-a", "guest-b"} {
			names[i] = tapName(id, 0)
			macs[i] = net.HardwareAddr{0x02, 0, 0, 0, 0, byte(0xa + i)}
			if err := orig.ConfigNIC(names[i], 2, c.br); err != nil {
				b.Fatal(err)
			}
			idx, err := e.conn.Index(names[i])
			if err != nil {
				b.Fatal(err)
			}
			if err := e.conn.AddFDB(idx, macs[i]); err != nil {
				b.Fatalf("add FDB entry: %v", err)
			}
		}
	}
	return names, macs
}

// openQueue attaches one queue to TAP name, as a VMM does, and returns the
// file and its fd, set non-blocking for raw reads.
func openQueue(b *testing.B, e *env, name string) (*os.File, int) {
	b.Helper()
	d, err := tap.Open(name, &tap.Options{MultiQueue: true, Queues: 1, VnetHdr: true, NetNS: e.ns})
	if err != nil {
		b.Fatalf("tap.Open(%s) = %v", name, err)
	}
	f := d.Release()[0]
	b.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		b.Fatal(err)
	}
	return f, fd
}

func benchTraffic(b *testing.B, impl string) {
	e := newEnv(b)
	names, macs := guestPair(b, e, impl)
	fa, fdA := openQueue(b, e, names[0])
	fb, fdB := openQueue(b, e, names[1])
	defer func() {
		// The raw fds are used below: keep their files (and so the fds) open.
		_, _ = fa.Stat()
		_, _ = fb.Stat()
	}()

	frame := make([]byte, vnetHdrLen+64)
	udpFrame(frame[vnetHdrLen:], macs[1], macs[0])

	var got, lastRx atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- readFrames(fdB, macs[0], &got, &lastRx, stop) }()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()

	// Wait until the ports forward (carrier comes with the attached queue).
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("no frame crossed the bridge in 10s")
		}
		if err := writeFrame(fdA, frame); err != nil {
			b.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	got.Store(0)

	var sent int64
	start := time.Now()
	for b.Loop() {
		if err := writeFrame(fdA, frame); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	// Let B drain its ring.
	for prev := int64(-1); prev != got.Load(); {
		prev = got.Load()
		time.Sleep(200 * time.Millisecond)
	}
	n := got.Load()
	el := time.Duration(lastRx.Load() - start.UnixNano())
	if n == 0 || el <= 0 {
		b.Fatalf("guest B received nothing of %d frames", sent)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "pkts/s")
	b.ReportMetric(100*float64(sent-n)/float64(sent), "drop-%")
}

// udpFrame fills eth (64 bytes) with an IPv4/UDP frame from src to dst,
// 10.0.0.1:1234 to 10.0.0.2:5678, with a valid header checksum: bridge
// netfilter drops IPv4 with a bad one, and the guard passes only IPv4, ARP
// and IPv6.
func udpFrame(eth []byte, dst, src net.HardwareAddr) {
	copy(eth[0:6], dst)
	copy(eth[6:12], src)
	eth[12], eth[13] = 0x08, 0x00
	ip := eth[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(eth)-14))
	ip[8], ip[9] = 64, unix.IPPROTO_UDP
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	var sum uint32
	for i := 0; i < len(ip); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	udp := eth[34:42]
	binary.BigEndian.PutUint16(udp[0:2], 1234)
	binary.BigEndian.PutUint16(udp[2:4], 5678)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(eth)-34))
}

func writeFrame(fd int, frame []byte) error {
	for {
		_, err := unix.Write(fd, frame)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return err
	}
}

// readFrames counts the frames from src arriving on fd until stop.
func readFrames(fd int, src net.HardwareAddr, got, lastRx *atomic.Int64, stop <-chan struct{}) error {
	buf := make([]byte, 4096)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if _, err := unix.Poll(pfd, 50); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				return err
			}
			if n >= vnetHdrLen+14 && bytes.Equal(buf[vnetHdrLen+6:vnetHdrLen+12], src) {
				got.Add(1)
				lastRx.Store(time.Now().UnixNano())
			}
		}
	}
}
