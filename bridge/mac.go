package bridge

import (
	"crypto/rand"
	"net"
)

func validUnicast(mac net.HardwareAddr) bool {
	if len(mac) != 6 || mac[0]&1 != 0 {
		return false
	}
	for _, c := range mac {
		if c != 0 {
			return true
		}
	}
	return false
}

// randomMAC returns a random locally administered unicast MAC whose first
// byte is not 0xfe (reserved for TAP host sides).
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac) // crypto/rand.Read never fails
	mac[0] = mac[0]&0xfc | 0x02
	if mac[0] == 0xfe {
		mac[0] = 0xfa
	}
	return mac
}

// hostMAC is the TAP's own MAC for guest MAC g: 0xfe and g's last five
// bytes. It differs from g (whose first byte is never 0xfe) and, being
// high, never becomes the bridge's MAC (DESIGN.md, kernel facts 7 and 15).
func hostMAC(g [6]byte) net.HardwareAddr {
	return net.HardwareAddr{0xfe, g[1], g[2], g[3], g[4], g[5]}
}
