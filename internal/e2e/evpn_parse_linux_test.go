package e2e

import (
	"testing"
	"time"
)

// The parsers and the gap measure of the many-hosts tests, without root.

func TestParseMonitor(t *testing.T) {
	out := "Timestamp: Mon Dec  7 23:32:22 2026 734936 usec\n" +
		"Deleted 2e:5c:2b:cd:04:8d dev vxlan100 extern_learn master br0 \n" +
		"Timestamp: Mon Dec  7 23:32:23 2026 000017 usec\n" +
		"fa:d2:d4:9e:37:7c dev vxlan100 extern_learn master br0 \n" +
		"stray line without a stamp\n"
	evs := parseMonitor(out, time.UTC)
	want := []fdbEvent{
		{at: time.Date(2026, 12, 7, 23, 32, 22, 734936000, time.UTC), deleted: true, line: "2e:5c:2b:cd:04:8d dev vxlan100 extern_learn master br0"},
		{at: time.Date(2026, 12, 7, 23, 32, 23, 17000, time.UTC), line: "fa:d2:d4:9e:37:7c dev vxlan100 extern_learn master br0"},
	}
	if len(evs) != len(want) {
		t.Fatalf("parseMonitor() = %d events %+v, want %d", len(evs), evs, len(want))
	}
	for i := range want {
		if !evs[i].at.Equal(want[i].at) || evs[i].deleted != want[i].deleted || evs[i].line != want[i].line {
			t.Errorf("parseMonitor()[%d] = %+v, want %+v", i, evs[i], want[i])
		}
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	lines := []stampedLine{
		{at(0), "PING 10.99.0.10 (10.99.0.10): 56 data bytes"},
		{at(0), "64 bytes from 10.99.0.10: seq=0 ttl=64 time=1.2 ms"},
		{at(50), "64 bytes from 10.99.0.10: seq=1 ttl=64 time=1.1 ms"},
		{at(100), "64 bytes from 10.99.0.10: seq=2 ttl=64 time=1.0 ms"},
		// seq 3..5 lost, then the guest was paused: the host's clock sees 700 ms
		{at(800), "64 bytes from 10.99.0.10: seq=6 ttl=64 time=0.9 ms"},
		{at(850), "64 bytes from 10.99.0.10: seq=7 ttl=64 time=0.9 ms"},
	}
	rs := pingReplies(lines)
	if len(rs) != 5 {
		t.Fatalf("pingReplies() = %d replies, want 5", len(rs))
	}
	g := longestGap(rs)
	if g.gap != 700*time.Millisecond || g.from.seq != 2 || g.to.seq != 6 || g.lost != 3 || g.replies != 5 {
		t.Errorf("longestGap() = gap %v from seq %d to %d, lost %d, replies %d; want 700ms from 2 to 6, lost 3, replies 5",
			g.gap, g.from.seq, g.to.seq, g.lost, g.replies)
	}
	if g := longestGap(nil); g.gap != 0 || g.lost != 0 {
		t.Errorf("longestGap(nil) = %+v, want zero", g)
	}
}
