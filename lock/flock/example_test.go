//go:build linux

package flock_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tapbridge/tapbridge/lock/flock"
)

func Example() {
	dir, err := os.MkdirTemp("", "flock-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "run", "vm.lock")
	ctx := context.Background()

	// Many VM creations share the lock...
	create := flock.New(path, flock.Shared)
	if err := create.Lock(ctx); err != nil {
		log.Fatal(err)
	}

	// ...which keeps out an exclusive holder, in this or another process.
	gc := flock.New(path, flock.Exclusive)
	ok, err := gc.TryLock(ctx)
	fmt.Println("exclusive while shared held:", ok, err)

	if err := create.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	ok, err = gc.TryLock(ctx)
	fmt.Println("exclusive after shared released:", ok, err)
	if err := gc.Unlock(ctx); err != nil {
		log.Fatal(err)
	}

	// Output:
	// exclusive while shared held: false <nil>
	// exclusive after shared released: true <nil>
}
