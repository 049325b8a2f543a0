package wsedge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Client addresses behind load balancers. The per-address limits (connect
// rate, concurrent connections) and the audit log key on the client's
// address. Behind a load balancer every TCP peer is the balancer, so one
// noisy client would lock every other out; Config.TrustedProxies lists the
// balancers whose word on the client's address is taken: the PROXY
// protocol header (v1 text or v2 binary) at the start of the connection,
// or the X-Forwarded-For header of the upgrade request. A peer not listed
// is the client itself, and its headers are ignored.

// errProxyHeader: a trusted peer sent a PROXY header that does not parse.
var errProxyHeader = errors.New("malformed PROXY protocol header")

var (
	proxyV1Sig = []byte("PROXY ")
	proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// trusted reports whether addr is one of the trusted proxies.
func trusted(list []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range list {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// clientIP is the address the per-address limits key on.
func (e *Edge) clientIP(r *http.Request) string {
	peer := hostOf(r.RemoteAddr)
	list := e.cfg.TrustedProxies
	if len(list) == 0 {
		return peer
	}
	if fc, ok := r.Context().Value(connKey{}).(*frameConn); ok && fc.proxied.IsValid() {
		return fc.proxied.String() // the balancer's PROXY header named it
	}
	a, err := netip.ParseAddr(peer)
	if err != nil || !trusted(list, a) {
		return peer
	}
	// X-Forwarded-For: client, proxy1, proxy2; each proxy appends the peer
	// it saw. The client is the rightmost address that is not a trusted
	// proxy: anything left of it was written by the client.
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !trusted(list, h) || i == 0 {
			return h.Unmap().String()
		}
	}
	return peer
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// readProxyHeader reads a PROXY protocol header from a trusted peer. It
// returns the client's address (invalid for v2 LOCAL or v1 UNKNOWN: the
// peer's own connection) and the bytes it read that were not a header (a
// peer that sent none), which the connection's reader gets first.
func readProxyHeader(r io.Reader) (netip.Addr, []byte, error) {
	head := make([]byte, 16)
	n, err := io.ReadFull(r, head)
	if err != nil {
		return netip.Addr{}, head[:n], nil // too short to be a header: plain data
	}
	switch {
	case bytes.Equal(head[:12], proxyV2Sig):
		return readProxyV2(r, head)
	case bytes.HasPrefix(head, proxyV1Sig):
		return readProxyV1(r, head)
	}
	return netip.Addr{}, head, nil
}

// readProxyV1 finishes a text header: "PROXY TCP4 src dst sport dport\r\n",
// at most 107 bytes.
func readProxyV1(r io.Reader, head []byte) (netip.Addr, []byte, error) {
	line := head
	one := make([]byte, 1)
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) >= 107 {
			return netip.Addr{}, nil, errProxyHeader
		}
		if _, err := io.ReadFull(r, one); err != nil {
			return netip.Addr{}, nil, errProxyHeader
		}
		line = append(line, one[0])
	}
	f := strings.Fields(string(line[:len(line)-2]))
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return netip.Addr{}, nil, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return netip.Addr{}, nil, errProxyHeader
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil {
		return netip.Addr{}, nil, errProxyHeader
	}
	return a.Unmap(), nil, nil
}

// readProxyV2 finishes a binary header: 16 bytes (signature, version and
// command, family, length), then the addresses.
func readProxyV2(r io.Reader, head []byte) (netip.Addr, []byte, error) {
	if head[12]>>4 != 2 {
		return netip.Addr{}, nil, errProxyHeader
	}
	body := make([]byte, binary.BigEndian.Uint16(head[14:16]))
	if _, err := io.ReadFull(r, body); err != nil {
		return netip.Addr{}, nil, errProxyHeader
	}
	if head[12]&0x0f == 0 { // LOCAL: the balancer's own health check
		return netip.Addr{}, nil, nil
	}
	switch head[13] >> 4 {
	case 1: // AF_INET: src 4, dst 4, ports
		if len(body) < 12 {
			return netip.Addr{}, nil, errProxyHeader
		}
		return netip.AddrFrom4([4]byte(body[:4])), nil, nil
	case 2: // AF_INET6
		if len(body) < 36 {
			return netip.Addr{}, nil, errProxyHeader
		}
		return netip.AddrFrom16([16]byte(body[:16])).Unmap(), nil, nil
	}
	return netip.Addr{}, nil, nil // AF_UNSPEC or AF_UNIX: no address to use
}
