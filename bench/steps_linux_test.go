package bench_test

import (
	"fmt"
	"testing"
)

// configSteps are the steps BenchmarkConfigSteps adds to the thin floor
// one at a time, then all together: what tapbridge does beyond the thin
// floor, each as the thin floor would do it (one message, acknowledged).
//
//   - probe: the look-up of an existing TAP by alternative name (one
//     RTM_GETLINK answered with ENODEV): a round trip;
//   - upsplit: the link brought up by a message of its own after the
//     setup message, as tapbridge brings it up after closing the TAP's fd:
//     a round trip;
//   - upopen: the link brought up while the creating fd is still open,
//     then the fd closed: the carrier drops on a running port, which is
//     what tapbridge's bring-up after close avoids;
//   - mac: the host-side MAC in the setup message (dev_set_mac_address
//     and its notifications);
//   - addrgen: IPv6 address generation off in the setup message;
//   - alias: the owner tag (IFLA_IFALIAS) in the setup message;
//   - altname: the alternative name (RTM_NEWLINKPROP);
//   - locked: the port locked with unicast flood off, in the learning
//     message (the default guard's port settings);
//   - fdb: the guest MAC's static FDB entry (RTM_NEWNEIGH);
//   - guard: the clsact qdisc and the guard's cls_bpf filter (two
//     messages).
var configSteps = []string{"probe", "upsplit", "upopen", "mac", "addrgen", "alias", "altname", "locked", "fdb", "guard"}

// BenchmarkConfigSteps times where tapbridge's Config spends its time
// beyond the thin floor: p50-ms and p99-ms of one 1-NIC Config for the
// thin floor (impl=thin), the thin floor plus one step (impl=thin+STEP),
// plus every step but upopen (impl=thin+all), and tapbridge itself.
// benchtable prints each step's p50 over thin's.
func BenchmarkConfigSteps(b *testing.B) {
	all := "thin"
	for _, s := range configSteps {
		if s != "upopen" {
			all += "+" + s
		}
	}
	for _, cpu := range []int{1, 2} {
		impls := []string{"thin"}
		for _, s := range configSteps {
			impls = append(impls, "thin+"+s)
		}
		impls = append(impls, all, "tapbridge")
		for _, impl := range impls {
			name := impl
			if impl == all {
				name = "thin+all"
			}
			b.Run(fmt.Sprintf("nics=1/cpu=%d/impl=%s", cpu, name), func(b *testing.B) {
				benchConfig(b, contenderOpts{impl: impl, nics: 1, cpu: cpu})
			})
		}
	}
}
