package floor

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestParseLink encodes a link message with the request builder and reads
// it back: the two halves of the floor agree on the wire format.
func TestParseLink(t *testing.T) {
	tests := []struct {
		name   string
		alias  string
		group  uint32
		tap    bool
		queues uint32
	}{
		{"bt0000002a-0", "tb1 i=0123456789abcdef v=0000002a", 7, true, 2},
		{"tun0", "", 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Conn{tx: make([]byte, 0, 512)}
			c.ifinfo(unix.RTM_NEWLINK, 0, 42, 0, 0)
			c.attrString(unix.IFLA_IFNAME, tt.name)
			if tt.alias != "" {
				c.attr(unix.IFLA_IFALIAS, []byte(tt.alias))
			}
			c.attrU32(unix.IFLA_GROUP, tt.group)
			li := c.nest(unix.IFLA_LINKINFO)
			c.attrString(unix.IFLA_INFO_KIND, "tun")
			data := c.nest(unix.IFLA_INFO_DATA)
			typ := byte(unix.IFF_TUN)
			if tt.tap {
				typ = unix.IFF_TAP
			}
			c.attr(unix.IFLA_TUN_TYPE, []byte{typ})
			c.attrU32(unix.IFLA_TUN_NUM_QUEUES, tt.queues)
			c.end(data)
			c.end(li)

			var l Link
			parseLink(c.tx[unix.NLMSG_HDRLEN:], &l)
			if l.Index != 42 || string(l.Name) != tt.name || string(l.Alias) != tt.alias ||
				l.Group != tt.group || l.TAP != tt.tap || l.Queues != tt.queues {
				t.Errorf("parseLink = {%d %q %q %d %v %d}, want {42 %q %q %d %v %d}",
					l.Index, l.Name, l.Alias, l.Group, l.TAP, l.Queues,
					tt.name, tt.alias, tt.group, tt.tap, tt.queues)
			}
		})
	}
}
