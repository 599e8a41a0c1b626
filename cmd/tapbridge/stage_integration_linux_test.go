package main

import (
	"testing"
	"time"

	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/tap"
	"github.com/tapbridge/tapbridge/types"
)

// TestIntegrationUpStagedActivate: up --staged makes a NIC without its FDB
// entry; activate fails while no VMM holds the TAP, then works once one
// does, twice; an unknown VM fails.
func TestIntegrationUpStagedActivate(t *testing.T) {
	c := newCLIEnv(t)
	mac := "02:00:00:00:bb:01"
	recs := decode[[]types.NetworkConfig](t, "up --staged --json",
		c.ok(t, "up", "--bridge", "br0", "--vm", "vm-s", "--staged", "--mac", mac, "--json"))
	tapName := recs[0].Tap
	ls := decode[[]types.Network](t, "ls --json", c.ok(t, "ls", "--json"))
	if len(ls) != 1 || !ls[0].Links[0].Staged || ls[0].Links[0].FDB {
		t.Errorf("ls --json after up --staged = %+v, want one staged NIC without FDB entry", ls)
	}
	c.fails(t, exitFail, "not open (no carrier)", false, "activate", "--vm", "vm-s")
	c.fails(t, exitFail, "not found", false, "activate", "--vm", "vm-nope", "--bridge", "br0")
	d, err := tap.Open(tapName, &tap.Options{VnetHdr: true, NetNS: c.ns})
	if err != nil {
		t.Fatalf("tap.Open(%s) = %v", tapName, err)
	}
	defer d.Close()
	waitState(t, c.ns, tapName, "forwarding")
	c.ok(t, "activate", "--vm", "vm-s")
	c.ok(t, "activate", "--vm", "vm-s")
	ls = decode[[]types.Network](t, "ls --json", c.ok(t, "ls", "--json"))
	if len(ls) != 1 || ls[0].Links[0].Staged || !ls[0].Links[0].FDB {
		t.Errorf("ls --json after activate = %+v, want an active NIC with its FDB entry", ls)
	}
	c.ok(t, "verify", "--vm", "vm-s")
	c.ok(t, "down", "--vm", "vm-s")
	c.checkOnly(t)
}

// waitState waits for bridge port dev to reach state.
func waitState(t *testing.T, ns int, dev, state string) {
	t.Helper()
	for range 500 {
		if l := testutil.IPLinkByName(t, ns, dev); l != nil && l.LinkInfo.SlaveData["state"] == state {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("port %s never reached state %s", dev, state)
}
