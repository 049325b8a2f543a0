package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
)

// probe is a raw WebSocket connection for bad-input checks: it sends
// exactly what it is told and reports what comes back.
type probe struct {
	conn *websocket.Conn
}

// dialProbe connects with token in ?token= ("" for none) and, when header
// is set, in an Authorization header instead.
func dialProbe(ctx context.Context, rawURL, token string, header http.Header, hc *http.Client) (*probe, error) {
	u := rawURL
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	if hc == nil {
		hc = wsHTTP
	}
	dctx, cancel := context.WithTimeout(ctx, dialWait)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	return &probe{conn: conn}, nil
}

// read returns the next frame, or the error that ended the connection.
func (p *probe) read(timeout time.Duration) (frame, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := p.conn.Read(ctx)
	if err != nil {
		return frame{}, nil, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, b, err
	}
	return f, b, nil
}

// next returns the next frame that is not a notification.
func (p *probe) next(timeout time.Duration) (frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, _, err := p.read(time.Until(deadline))
		if err != nil || f.T != "n" {
			return f, err
		}
	}
}

// closeCode reads until the connection ends and returns its close code
// (-1 when it ended without a close frame, 0 when it did not end).
func (p *probe) closeCode(timeout time.Duration) websocket.StatusCode {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, _, err := p.read(time.Until(deadline))
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return 0
			}
			return -1
		}
	}
	return 0
}

func (p *probe) send(typ websocket.MessageType, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.conn.Write(ctx, typ, b)
}

func (p *probe) text(s string) error { return p.send(websocket.MessageText, []byte(s)) }

func (p *probe) close() { p.conn.CloseNow() }
