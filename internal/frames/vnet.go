package frames

// Sizes of the virtio-net header a TAP with IFF_VNET_HDR expects before
// each frame.
const (
	// VnetHdrLen is struct virtio_net_hdr, a TAP's default vnet_hdr_sz
	// (drivers/net/tun.c: tun->vnet_hdr_sz = sizeof(struct virtio_net_hdr)).
	VnetHdrLen = 10

	// VnetHdrMrgLen is struct virtio_net_hdr_mrg_rxbuf, which VMMs select
	// with TUNSETVNETHDRSZ 12.
	VnetHdrMrgLen = 12
)

// VnetHdr returns frame behind an all-zero virtio-net header of size bytes
// (VnetHdrLen or VnetHdrMrgLen): no checksum offload, no GSO.
func VnetHdr(frame []byte, size int) []byte {
	if size != VnetHdrLen && size != VnetHdrMrgLen {
		panic("frames: a virtio-net header is 10 or 12 bytes")
	}
	return append(make([]byte, size, size+len(frame)), frame...)
}
