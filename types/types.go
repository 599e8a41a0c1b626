// Package types holds the data types tapbridge exchanges with its callers.
//
// NetworkConfig and Network have the shape of cocoon's types of the same
// names (github.com/cocoonstack/cocoon/types), field for field and JSON key
// for JSON key, so that a record cocoon persisted round-trips through
// tapbridge without losing a field; the fields tapbridge adds are marked.
package types

import "time"

// VMConfig is what the network provider needs to know about a VM.
type VMConfig struct {
	// CPU is the number of vCPUs; virtio-net gets one queue pair per vCPU.
	// Zero means 1.
	CPU int `json:"cpu"`

	// QueueSize is the virtio queue size. Zero means 512.
	QueueSize int `json:"queue_size"`

	// Guard overrides the provider's port-security mode for this VM's
	// NICs: "l2", "strict" or "off" (see package guard). Empty means the
	// provider's.
	Guard string `json:"guard,omitempty"`
}

// NetworkConfig describes one NIC of a VM: what the VMM needs to open it.
// It is also the record a caller persists to recover the VM after a host
// reboot (pass it back as Config's existing argument).
type NetworkConfig struct {
	Tap       string `json:"tap"`                  // TAP device name
	Mac       string `json:"mac"`                  // guest MAC, locally administered unicast
	NumQueues int    `json:"num_queues"`           // virtio queues: 2 per vCPU, at least 2
	QueueSize int    `json:"queue_size"`           // virtio queue size
	Backend   string `json:"backend,omitempty"`    // "bridge"
	BridgeDev string `json:"bridge_dev,omitempty"` // the bridge the TAP is a port of

	// NetnsPath is the network namespace the TAP lives in, as the provider
	// was configured with it (config.Config.NetnsPath); empty for the
	// caller's namespace.
	NetnsPath string `json:"netns_path,omitempty"`

	// Network is the guest's IP configuration, nil when it has none (the
	// guest uses DHCP and no address is bound to the NIC).
	Network *Network `json:"network,omitempty"`
}

// Network is two things, as in cocoon: the guest-visible IP configuration
// of a NIC (NetworkConfig.Network: IP, Gateway and Prefix only), and the
// network of a VM as Inspect and List read it from the kernel, where the
// IP fields describe the VM's first NIC and VMID, BridgeDev, NICs and
// Links (tapbridge's additions) describe it all. Every field is left out
// of the JSON form when empty.
type Network struct {
	IP      string `json:"ip,omitempty"`      // dotted decimal, such as "10.0.0.2"
	Gateway string `json:"gateway,omitempty"` // dotted decimal, such as "10.0.0.1"
	Prefix  int    `json:"prefix,omitempty"`  // CIDR prefix length, such as 24

	VMID      string           `json:"vm_id,omitempty"`
	BridgeDev string           `json:"bridge_dev,omitempty"`
	NICs      []*NetworkConfig `json:"nics,omitempty"`

	// Links holds the kernel state of each NIC, in the order of NICs.
	Links []*LinkState `json:"links,omitempty"`
}

// LinkState is the kernel's view of one NIC's TAP.
type LinkState struct {
	NIC            int       `json:"nic"`             // NIC index within the VM
	NICs           int       `json:"nics"`            // NIC count recorded at creation
	Index          int       `json:"ifindex"`         // kernel ifindex
	Master         string    `json:"master"`          // bridge the TAP is on, "" if none
	Up             bool      `json:"up"`              // administratively up
	MultiQueue     bool      `json:"multi_queue"`     // IFF_MULTI_QUEUE
	Hypervisor     string    `json:"hypervisor"`      // VMM profile it was made for; "" if not recorded
	AttachedQueues int       `json:"attached_queues"` // queue files open on it: > 0 while a VMM runs
	Deleting       bool      `json:"deleting"`        // deleted, and waiting for the background deletion
	Created        time.Time `json:"created"`

	// Guard is the NIC's port-security mode, as its installed filter
	// says ("l2", "strict"; "off" when it has none).
	Guard string `json:"guard"`
	// Bound lists the addresses bound to the NIC, as prefixes
	// ("10.0.0.2/24"; /32 or /128 when the length is unknown).
	Bound []string `json:"bound"`
	// GuardDrops counts the frames the guard dropped on the NIC since its
	// filter was installed.
	GuardDrops uint64 `json:"guard_drops"`

	// FDB reports whether the bridge's forwarding entry for the guest
	// MAC points to this TAP (for an active NIC a static one: Verify
	// fails without it).
	FDB bool `json:"fdb"`
	// Staged marks a NIC made by Stage and not yet activated: it has no
	// FDB entry and forwards nothing.
	Staged bool `json:"staged,omitempty"`
}
