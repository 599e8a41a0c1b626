package bridge

import (
	"errors"
	"fmt"

	"github.com/tapbridge/tapbridge/bridge/owner"
)

// validIDs returns the valid IDs of vmIDs without duplicates, in order, and
// an error for each invalid one, wrapping ErrInvalidArgument; op names the
// call ("delete", "cleanup").
func validIDs(op string, vmIDs []string) ([]string, error) {
	out := make([]string, 0, len(vmIDs))
	seen := make(map[string]struct{}, len(vmIDs))
	var errs []error
	for _, id := range vmIDs {
		if err := owner.ValidateVMID(id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %w", op, ErrInvalidArgument, err))
			continue
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out, errors.Join(errs...)
}
