package bridge

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/internal/testutil"
	"github.com/tapbridge/tapbridge/types"
)

// TestIntegrationVerifyGuard removes a guarded NIC's filter with tc, then
// unlocks another's port with ip, and checks that Verify names each.
func TestIntegrationVerifyGuard(t *testing.T) {
	f := newFixture(t, nil)
	recs := f.config(t, "vm-v", 2, nil)
	if err := f.b.Verify(t.Context(), "vm-v"); err != nil {
		t.Fatalf("Verify(vm-v) as made = %v, want nil", err)
	}
	f.run(t, "tc", "filter", "del", "dev", recs[0].Tap, "ingress")
	f.ip(t, "link", "set", "dev", recs[1].Tap, "type", "bridge_slave", "locked", "off")
	err := f.b.Verify(t.Context(), "vm-v")
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify(vm-v) after tc filter del = %v, want ErrMismatch", err)
	}
	for _, want := range []string{
		"nic 0 (" + recs[0].Tap + "): guard l2, but no guard filter on its ingress",
		"nic 1 (" + recs[1].Tap + "): guard l2, but the bridge port is not locked",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Verify(vm-v) = %q, want it to name %q", err, want)
		}
	}
	// Config repairs both.
	f.config(t, "vm-v", 2, nil)
	if err := f.b.Verify(t.Context(), "vm-v"); err != nil {
		t.Errorf("Verify(vm-v) after Config repaired it = %v, want nil", err)
	}
}

// TestIntegrationGuardNothingLeft checks that the guard leaves nothing in
// the namespace: after Delete, Cleanup and a GC cycle reclaimed the
// guarded VMs, tc lists no clsact qdisc and no filter anywhere.
func TestIntegrationGuardNothingLeft(t *testing.T) {
	f := newFixture(t, &config.Config{GCGrace: -1})
	f.config(t, "vm-del", 2, nil)
	f.config(t, "vm-clean", 1, nil)
	f.config(t, "vm-gc", 1, nil)
	f.config(t, "vm-strict", 1, &types.VMConfig{Guard: "strict"})
	if qs := f.clsacts(t); len(qs) != 5 {
		t.Fatalf("clsact qdiscs with the guard on = %v, want 5 (one per NIC)", qs)
	}
	if _, err := f.b.Delete(t.Context(), []string{"vm-del", "vm-strict"}); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	conf := f.b.conf
	if _, err := Cleanup(t.Context(), &conf, []string{"vm-clean"}); err != nil {
		t.Fatal(err)
	}
	gcRun(t, gcOrch(f.b, newGCLive()), f.b.ownership.inst)
	if qs := f.clsacts(t); len(qs) != 0 {
		t.Errorf("clsact qdiscs after Delete, Cleanup and GC = %v, want none", qs)
	}
	for name := range f.links(t) {
		if out, err := testutil.RunErr(f.ns, "tc", "-j", "filter", "show", "dev", name, "ingress"); err == nil && strings.TrimSpace(string(out)) != "[]" {
			t.Errorf("tc filter show dev %s ingress = %s, want none", name, out)
		}
	}
	f.checkLinks(t, []string{"lo", testBridge})
}

// clsacts lists the clsact qdiscs of the namespace (tc -j qdisc show) as
// "dev kind".
func (f *fixture) clsacts(t *testing.T) []string {
	t.Helper()
	var qs []struct {
		Kind string `json:"kind"`
		Dev  string `json:"dev"`
	}
	if err := json.Unmarshal(f.run(t, "tc", "-j", "qdisc", "show"), &qs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range qs {
		if q.Kind == "clsact" || q.Kind == "ingress" {
			out = append(out, q.Dev+" "+q.Kind)
		}
	}
	return out
}
