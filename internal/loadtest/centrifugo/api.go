package centrifugo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// APIConfig tunes an API client. The zero value is fine for 10,000
// publishes a second from one process.
type APIConfig struct {
	// MaxConns bounds the HTTP connections to the server, idle ones
	// included, so that concurrent requests reuse them. 0 means 64.
	MaxConns int

	// Timeout bounds one request. 0 means 10s.
	Timeout time.Duration

	// ParallelBatch has Centrifugo run a Batch's commands concurrently
	// ("parallel": true, up to 1,024 at once), so that its Redis client
	// pipelines them: several times faster than one after the other, which
	// waits for Redis once per command. Two publications into one channel in
	// the same batch may then swap, so put at most one per channel in a
	// batch. false runs them one after the other, in order.
	ParallelBatch bool
}

// API is a client of Centrifugo's server HTTP API (POST <base>/<method>,
// X-API-Key). It keeps a pool of keep-alive connections; it is safe for
// concurrent use.
type API struct {
	base     string
	key      string
	parallel bool
	tr       *http.Transport
	hc       *http.Client
}

// NewAPI returns a client of the API at baseURL (Server.APIURL) with key.
func NewAPI(baseURL, key string, cfg APIConfig) *API {
	conns := cmp.Or(cfg.MaxConns, 64)
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &API{
		base: baseURL, key: key, parallel: cfg.ParallelBatch, tr: tr,
		hc: &http.Client{Transport: tr, Timeout: cmp.Or(cfg.Timeout, 10*time.Second)},
	}
}

// Close closes the client's idle connections. Requests in flight finish.
func (a *API) Close() { a.tr.CloseIdleConnections() }

// Command is one command of a Batch: a publish into Channel, or, when
// Channel is "", a broadcast of the same data into Channels.
type Command struct {
	Channel  string
	Channels []string
	// Data is the publication's data, a JSON value (ErrDataNotJSON
	// otherwise); it reaches the subscribers as it is.
	Data []byte
	// IdempotencyKey, when not empty, has Centrifugo publish the command
	// once however often it is sent with this key (its idempotency_key:
	// the result is kept in Redis for idempotent_result_ttl, 5 minutes by
	// default).
	IdempotencyKey string
}

// wire forms of the API's requests and replies.
type (
	publishRequest struct {
		Channel        string          `json:"channel"`
		Data           json.RawMessage `json:"data"`
		IdempotencyKey string          `json:"idempotency_key,omitempty"`
	}
	broadcastRequest struct {
		Channels       []string        `json:"channels"`
		Data           json.RawMessage `json:"data"`
		IdempotencyKey string          `json:"idempotency_key,omitempty"`
	}
	publishResponse struct {
		Error  *APIError `json:"error"`
		Result *Position `json:"result"`
	}
	broadcastResult struct {
		Responses []publishResponse `json:"responses"`
	}
	broadcastResponse struct {
		Error  *APIError        `json:"error"`
		Result *broadcastResult `json:"result"`
	}
	batchCommand struct {
		Publish   *publishRequest   `json:"publish,omitempty"`
		Broadcast *broadcastRequest `json:"broadcast,omitempty"`
	}
	batchReply struct {
		Error     *APIError        `json:"error"`
		Publish   *Position        `json:"publish"`
		Broadcast *broadcastResult `json:"broadcast"`
	}
	batchResponse struct {
		Replies []batchReply `json:"replies"`
	}
)

// Publish publishes data (a JSON value) into channel and returns the
// publication's position in the channel's history (zero without history).
func (a *API) Publish(ctx context.Context, channel string, data []byte) (Position, error) {
	var resp publishResponse
	if err := a.call(ctx, "publish", publishRequest{Channel: channel, Data: data}, &resp); err != nil {
		return Position{}, err
	}
	if resp.Error != nil {
		return Position{}, fmt.Errorf("publish into %s: %w", channel, resp.Error)
	}
	if resp.Result == nil {
		return Position{}, nil
	}
	return *resp.Result, nil
}

// Broadcast publishes the same data (a JSON value) into each of channels,
// in one request. If some channels fail, the error names how many and
// wraps the first channel's *APIError.
func (a *API) Broadcast(ctx context.Context, channels []string, data []byte) error {
	var resp broadcastResponse
	if err := a.call(ctx, "broadcast", broadcastRequest{Channels: channels, Data: data}, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return fmt.Errorf("broadcast into %d channels: %w", len(channels), resp.Error)
	}
	if resp.Result == nil {
		return nil
	}
	return broadcastErr(len(channels), resp.Result)
}

// Batch sends cmds in one request (/api/batch). Centrifugo runs them one
// after the other, in order, so publications into one channel keep their
// order, unless APIConfig.ParallelBatch says otherwise. It returns how many commands failed (a broadcast fails if any of
// its channels does) and the first of their errors; when the request as a
// whole fails, every command counts as failed.
func (a *API) Batch(ctx context.Context, cmds []Command) (failed int, err error) {
	req := struct {
		Commands []batchCommand `json:"commands"`
		Parallel bool           `json:"parallel,omitempty"`
	}{Commands: make([]batchCommand, len(cmds)), Parallel: a.parallel}
	for i, c := range cmds {
		switch {
		case c.Channel != "":
			req.Commands[i].Publish = &publishRequest{Channel: c.Channel, Data: c.Data, IdempotencyKey: c.IdempotencyKey}
		case len(c.Channels) > 0:
			req.Commands[i].Broadcast = &broadcastRequest{Channels: c.Channels, Data: c.Data, IdempotencyKey: c.IdempotencyKey}
		default:
			return len(cmds), fmt.Errorf("batch command %d: %w", i, ErrNoCommand)
		}
	}
	var resp batchResponse
	if err := a.call(ctx, "batch", req, &resp); err != nil {
		return len(cmds), err
	}
	if len(resp.Replies) != len(cmds) {
		return len(cmds), fmt.Errorf("batch of %d commands: %d replies", len(cmds), len(resp.Replies))
	}
	var first error
	for i, r := range resp.Replies {
		var e error
		switch {
		case r.Error != nil:
			e = r.Error
		case r.Broadcast != nil:
			e = broadcastErr(len(cmds[i].Channels), r.Broadcast)
		}
		if e != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("batch command %d: %w", i, e)
			}
		}
	}
	return failed, first
}

// broadcastErr returns nil if every channel of a broadcast into n channels
// succeeded, and otherwise an error counting the failures.
func broadcastErr(n int, r *broadcastResult) error {
	var failed int
	var first *APIError
	for _, resp := range r.Responses {
		if resp.Error != nil {
			failed++
			first = cmp.Or(first, resp.Error)
		}
	}
	if failed == 0 {
		return nil
	}
	return fmt.Errorf("broadcast: %d of %d channels failed: %w", failed, n, first)
}

// call posts req as JSON to the API method and decodes the reply into resp.
func (a *API) call(ctx context.Context, method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		// The only thing that fails to marshal here is data that is not JSON.
		return fmt.Errorf("centrifugo api %s: %w: %v", method, ErrDataNotJSON, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/"+method, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("centrifugo api %s: %w", method, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-API-Key", a.key)
	hresp, err := a.hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("centrifugo api %s: %w", method, err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(hresp.Body)
	if err != nil {
		return fmt.Errorf("centrifugo api %s: read reply: %w", method, err)
	}
	if hresp.StatusCode != http.StatusOK {
		return fmt.Errorf("centrifugo api %s: %s: %.200s", method, hresp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, resp); err != nil {
		return fmt.Errorf("centrifugo api %s: decode reply: %w", method, err)
	}
	return nil
}
