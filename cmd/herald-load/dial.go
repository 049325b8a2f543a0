package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// rawConnKey is the context key under which a client leaves a *net.Conn
// for the dialer to fill with the connection's socket.
type rawConnKey struct{}

// newDialer is the HTTP client a worker's clients dial with: from a
// source address, with the port chosen at connect time rather than at
// bind (bindNoPort), so a source address is not used up by the sockets
// that earlier runs left in TIME_WAIT. It hands the socket to the client
// that dialled (withRawConn), which can then end it with a reset.
func newDialer(localAddr string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: bindNoPort}
	if localAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localAddr)}
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if slot, ok := ctx.Value(rawConnKey{}).(*net.Conn); ok && err == nil {
			*slot = c
		}
		return c, err
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial}}
}

// newDialers returns one dialer for each of n consecutive source
// addresses from first (one for the system's choice when first is "").
func newDialers(first string, n int) ([]*http.Client, error) {
	if first == "" {
		return []*http.Client{newDialer("")}, nil
	}
	addrs, err := sourceAddrs(first, n)
	if err != nil {
		return nil, err
	}
	out := make([]*http.Client, n)
	for i, a := range addrs {
		out[i] = newDialer(a)
	}
	return out, nil
}

// sourceAddrs returns n consecutive addresses from base ("" for all when
// base is "any").
func sourceAddrs(base string, n int) ([]string, error) {
	out := make([]string, n)
	if base == "any" {
		return out, nil
	}
	a, err := netip.ParseAddr(base)
	if err != nil {
		return nil, fmt.Errorf("%w: --source-base %q: %v", errUsage, base, err)
	}
	for i := range out {
		if !a.IsValid() || !a.IsLoopback() {
			return nil, fmt.Errorf("%w: --source-base %s: %d addresses would leave 127.0.0.0/8", errUsage, base, n)
		}
		out[i] = a.String()
		a = a.Next()
	}
	return out, nil
}

// nextAddr is the address n after base ("any" stays "any").
func nextAddr(base string, n int) string {
	a, err := netip.ParseAddr(base)
	if err != nil {
		return base
	}
	for range n {
		a = a.Next()
	}
	return a.String()
}

// withRawConn returns a context under which the dialer stores the socket
// it connects in *slot.
func withRawConn(ctx context.Context, slot *net.Conn) context.Context {
	return context.WithValue(ctx, rawConnKey{}, slot)
}

// resetClose closes a TCP socket with SO_LINGER 0: the kernel sends a
// reset instead of a FIN, and the peer sees the connection die without a
// WebSocket close or even an orderly TCP close.
func resetClose(c net.Conn) error {
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			tc.Close()
			return fmt.Errorf("set SO_LINGER 0: %w", err)
		}
	}
	return c.Close()
}

// autoSourceBase is a random first source address in 127.1.0.1 to
// 127.254.255.1, so that consecutive runs dial from fresh addresses.
func autoSourceBase() string {
	return fmt.Sprintf("127.%d.%d.1", 1+rand.IntN(254), rand.IntN(256))
}
