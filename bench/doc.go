// Package bench proves tapbridge's speed side by side with baselines, in one
// `go test -bench` run. It holds no code of its own beyond the benchmarks
// (in the _test files) and their helpers under internal/.
//
// Every benchmark runs each contender in its own fresh throwaway network
// namespace, never the host's, with a bridge br0 in it. The contenders
// (the impl= part of each name):
//
//   - tapbridge: the library as a caller gets it (bridge.New on the
//     namespace; Config, the default Delete, which returns at once and
//     deletes in the background, GC through a gc.Orchestrator);
//     tapbridge-sync is the same with Config.SyncDelete,
//     tapbridge-bound with an address bound to every NIC (guard l2),
//     tapbridge-readdb the GC scan alone; guardoff is tapbridge with the
//     guard off and reaper tapbridge with StartReaper called;
//   - orig: the original design's call sequence on vishvananda/netlink
//     v1.3.1 (package functions: one socket per call, default qdisc);
//   - ip: iproute2 driven through one long-lived `ip -batch` process;
//   - floor: the same kernel operations as tapbridge (noqueue qdisc; MTU,
//     txqueuelen, MAC, owner tag, IPv6 address generation off, master and
//     up; alternative name; learning off; the guest's static FDB entry;
//     delete by moving into a group that an asynchronous reaper deletes,
//     or, for floor-sync, one RTM_DELLINK each), written with x/sys/unix
//     alone, one message and one acknowledgement at a time;
//   - thin: the thin floor of issue 13, bare syscalls doing less than
//     tapbridge (open, TUNSETIFF, TUNSETPERSIST, close, a noqueue root,
//     one RTM_NEWLINK with master, MTU, txqueuelen and up, learning off),
//     deleting as the async floor does; thin+STEP (ConfigSteps only) is
//     the thin floor plus one of tapbridge's steps;
//   - defaultqdisc (GuestTraffic only): tapbridge's TAPs with their root
//     qdisc replaced by the default one, to isolate what noqueue changes.
//
// The benchmarks and their custom metrics:
//
//   - Config: p50-ms and p99-ms of one Config call (deletion outside the
//     timed region), allocs/op for tapbridge;
//   - ConfigSteps: the same for the thin floor plus one step at a time;
//   - Scale: 10 bridges x 1,000 1-NIC VMs through the public API, 4
//     workers: Config rate and latency, GC, List, Verify and Delete per
//     1,000 (skipped when TAPBRIDGE_BENCH_SKIP_SCALE is set);
//   - Churn: VMs/s creating and deleting VMs with a bounded live set;
//   - Delete: p50-ms and p99-ms of the caller's delete call (ns/op is one
//     create and delete cycle);
//   - TAPMemory: MB/TAP of kernel memory (MemFree delta) per multi-queue
//     TAP while up;
//   - GCScan: ms/scan over 5,000 TAPs among 7,006 links;
//   - GCReclaim: ms/reclaim of one GC cycle reclaiming N orphans;
//   - GuestTraffic: pkts/s and drop-% of frames a guest writes into one
//     TAP and another guest reads from a second TAP across the bridge, with
//     tapbridge's noqueue TAPs and the original's default qdisc.
//
// The benchmarks need root (CAP_NET_ADMIN and CAP_SYS_ADMIN), /dev/net/tun,
// iproute2 (ip, tc) and nsenter, and skip otherwise. Run them with `make bench`,
// which prints the table of cmd/benchtable at the end.
package bench
