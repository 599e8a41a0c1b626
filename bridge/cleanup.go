package bridge

import "github.com/tapbridge/tapbridge/bridge/owner"

// taggedTAP is a TAP that carries an owner tag, of whichever instance.
type taggedTAP struct {
	index uint32
	tag   owner.Tag
}

// cleanupTargets picks, among tagged TAPs, those of the VMs in ids,
// whatever instance made them, grouped by instance and VM: what
// CleanupTAPs deletes.
func cleanupTargets(taps []taggedTAP, ids []string) map[owner.Instance]map[string][]uint32 {
	want := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		want[id] = struct{}{}
	}
	out := map[owner.Instance]map[string][]uint32{}
	for _, t := range taps {
		if _, ok := want[t.tag.VMID]; !ok {
			continue
		}
		vms := out[t.tag.Instance]
		if vms == nil {
			vms = map[string][]uint32{}
			out[t.tag.Instance] = vms
		}
		vms[t.tag.VMID] = append(vms[t.tag.VMID], t.index)
	}
	return out
}
