package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// benchDialer is the HTTP client a worker's WebSocket clients dial with:
// from its source address, with the port chosen at connect time rather
// than at bind (bindNoPort), so a source address is not used up by the
// sockets that earlier runs left in TIME_WAIT.
func benchDialer(localAddr string) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: bindNoPort}
	if localAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localAddr)}
	}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// autoSourceBase is a random first source address in 127.1.0.1 to
// 127.254.255.1, so that consecutive runs dial from fresh addresses.
func autoSourceBase() string {
	return fmt.Sprintf("127.%d.%d.1", 1+rand.IntN(254), rand.IntN(256))
}
