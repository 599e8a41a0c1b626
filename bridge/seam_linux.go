package bridge

import (
	"context"

	"github.com/tapbridge/tapbridge/rtnl"
	"github.com/tapbridge/tapbridge/tap"
)

// conn is the provider's seam to rtnetlink: the message runner and the
// link walker. *rtnl.Conn is its only production implementation. Tests
// wrap it (see Bridge.wrap) to fail or cut short the very batches that
// production sends; they never change which messages are sent.
type conn interface {
	// Exec runs a batch: see rtnl.Conn.Exec.
	Exec(ctx context.Context, b *rtnl.Batch) ([]error, error)
	// WalkLinks walks a filtered link dump: see rtnl.Conn.WalkLinks.
	WalkLinks(ctx context.Context, f *rtnl.LinkFilter, fn func(*rtnl.Link) error, reset ...func()) error
	// WalkQdiscs walks a qdisc dump: see rtnl.Conn.WalkQdiscs.
	WalkQdiscs(ctx context.Context, f *rtnl.QdiscFilter, fn func(*rtnl.Qdisc) error, reset ...func()) error
	// IndexByName and IndexMTUByName look a link up by ioctl: see
	// rtnl.Conn.IndexByName.
	IndexByName(ctx context.Context, name string) (uint32, error)
	IndexMTUByName(ctx context.Context, name string) (index, mtu uint32, err error)
	Close() error
}

var _ conn = (*rtnl.Conn)(nil)

// createFunc is the TAP-creation seam: tap.Create in production.
type createFunc func(name string, o *tap.Options) (*tap.Device, error)

// wrapFunc, when a test sets one (Bridge.wrap), wraps every conn the
// Bridge and its GC module dial. nil in production.
type wrapFunc func(conn) conn

// dialConn dials rtnetlink in the namespace nsFD (0: the caller's) and
// applies wrap.
func dialConn(nsFD int, wrap wrapFunc) (conn, error) {
	c, err := rtnl.Dial(&rtnl.Config{NetNS: nsFD})
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		return wrap(c), nil
	}
	return c, nil
}

// getLink looks one link up by name, through c.
func getLink(ctx context.Context, c conn, name string) (*rtnl.Link, error) {
	var b rtnl.Batch
	l := new(rtnl.Link)
	b.GetLinkByName(name, l)
	res, _ := c.Exec(ctx, &b)
	if res[0] != nil {
		return nil, res[0]
	}
	return l, nil
}
