package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tapbridge/tapbridge/config"
	"github.com/tapbridge/tapbridge/launch"
	"github.com/tapbridge/tapbridge/types"
)

// TestIntegrationUpPrint checks that up --print prints exactly what the
// launch package renders for the records up made (the same records as
// --json), for every VMM, and that a firecracker snippet follows the
// profile.
func TestIntegrationUpPrint(t *testing.T) {
	c := newCLIEnv(t)
	up := func(hv, vm string, extra ...string) string {
		return c.ok(t, append([]string{"up", "--bridge", "br0", "--vm", vm, "--nics", "2", "--cpus", "2", "--hypervisor", hv}, extra...)...)
	}
	for _, tt := range []struct {
		hv  string
		vmm launch.VMM
	}{
		{config.CloudHypervisor, launch.CloudHypervisor},
		{config.QEMU, launch.QEMU},
		{config.QEMU, launch.Libvirt},
		{config.Firecracker, launch.Firecracker},
		{config.Firecracker, launch.QEMU},
	} {
		vm := "vm-" + tt.hv
		var recs []*types.NetworkConfig
		if err := json.Unmarshal([]byte(up(tt.hv, vm, "--json")), &recs); err != nil {
			t.Fatal(err)
		}
		nics := []launch.NIC{{Config: recs[0]}, {Config: recs[1]}}
		want, err := launch.Render(tt.vmm, nics, &launch.Options{Profile: tt.hv})
		if err != nil {
			t.Fatalf("Render(%s, %s) = %v", tt.vmm, tt.hv, err)
		}
		// up is idempotent: the same VM again prints its snippet.
		if got := up(tt.hv, vm, "--print", string(tt.vmm)); got != want {
			t.Errorf("up --hypervisor %s --print %s = %q, want %q", tt.hv, tt.vmm, got, want)
		}
		if tt.hv == config.Firecracker && strings.Contains(want, "queues=") {
			t.Errorf("up --hypervisor firecracker --print %s = %q: a single-queue TAP got queues=", tt.vmm, want)
		}
	}
}
