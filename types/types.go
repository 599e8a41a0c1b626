// Package types holds the data types tapbridge exchanges with its callers.
package types

import "time"

// VMConfig is what the network provider needs to know about a VM.
type VMConfig struct {
	// CPU is the number of vCPUs; virtio-net gets one queue pair per vCPU.
	// Zero means 1.
	CPU int `json:"cpu"`

	// QueueSize is the virtio queue size. Zero means 512.
	QueueSize int `json:"queue_size"`
}

// NetworkConfig describes one NIC of a VM: what the VMM needs to open it.
// It is also the record a caller persists to recover the VM after a host
// reboot (pass it back as Config's existing argument).
type NetworkConfig struct {
	Tap       string `json:"tap"`        // TAP device name
	Mac       string `json:"mac"`        // guest MAC, locally administered unicast
	NumQueues int    `json:"num_queues"` // virtio queues: 2 per vCPU, at least 2
	QueueSize int    `json:"queue_size"` // virtio queue size
	Backend   string `json:"backend"`    // "bridge"
	BridgeDev string `json:"bridge_dev"` // the bridge the TAP is a port of
}

// Network is one VM's network as the kernel records it.
type Network struct {
	VMID      string           `json:"vm_id"`
	BridgeDev string           `json:"bridge_dev"`
	NICs      []*NetworkConfig `json:"nics"`

	// Links holds the kernel state of each NIC, in the order of NICs.
	Links []*LinkState `json:"links"`
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
	Deleting       bool      `json:"deleting"`        // waiting for the reaper
	Created        time.Time `json:"created"`
}
