package tap_test

import (
	"errors"
	"fmt"
	"log"

	"golang.org/x/sys/unix"

	"github.com/tapbridge/tapbridge/tap"
)

func ExampleValidateName() {
	for _, name := range []string{"tap0", "vm-1.net0", "eth0:1", "tap%d", "a-very-long-name0", "tap-à"} {
		err := tap.ValidateName(name)
		fmt.Printf("%-20q ok=%-5v %v\n", name, err == nil, errors.Is(err, tap.ErrInvalidName))
	}
	// Output:
	// "tap0"               ok=true  false
	// "vm-1.net0"          ok=true  false
	// "eth0:1"             ok=false true
	// "tap%d"              ok=false true
	// "a-very-long-name0"  ok=false true
	// "tap-à"              ok=false true
}

// A VMM-facing TAP is created persistent with a single file, whatever the
// queue count, and reopened by name later. It needs CAP_NET_ADMIN, so this
// example is compiled but not run.
func ExampleCreate() {
	ns, err := unix.Open("/run/netns/vm1", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(ns)

	owner := uint32(1000)
	d, err := tap.Create("vm1-eth0", &tap.Options{
		MultiQueue: true,
		VnetHdr:    true,
		Exclusive:  true,
		Persist:    true,
		Owner:      &owner,
		Group:      &owner,
		NetNS:      ns,
	})
	if errors.Is(err, unix.EBUSY) {
		log.Fatal("vm1-eth0 already exists: ", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	// The device survives: it is persistent.
	if err := d.Close(); err != nil {
		log.Fatal(err)
	}
}

// A VMM opens the persistent TAP with the same multi-queue flag it was
// created with and takes the queue files.
func ExampleOpen() {
	ns, err := unix.Open("/run/netns/vm1", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(ns)

	d, err := tap.Open("vm1-eth0", &tap.Options{MultiQueue: true, VnetHdr: true, Queues: 4, NetNS: ns})
	switch {
	case errors.Is(err, tap.ErrNotPersistent):
		log.Fatal("create vm1-eth0 first: ", err)
	case err != nil:
		log.Fatal(err)
	}
	files := d.Release() // now ours to pass to the VMM and to close
	for _, f := range files {
		fmt.Println(f.Fd())
		f.Close()
	}
}
