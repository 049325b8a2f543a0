package centrifugo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

const (
	pollInterval = 20 * time.Millisecond
	probeTimeout = time.Second
)

// waitReady polls the server API's info method until it lists node, the
// name p was configured with, p exits, or timeout (or ctx) runs out. Asking
// for the node's name makes sure another server that holds the port is not
// taken for p, and that the API key and the Redis engine work.
func waitReady(ctx context.Context, p *process, apiURL, key, node string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: probeTimeout}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := probe(ctx, hc, apiURL, key, node)
		if err == nil {
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-p.done:
			return fmt.Errorf("%w: %v", ErrExited, p.err)
		case <-ctx.Done():
			return fmt.Errorf("centrifugo %d not ready within %v: %w (last try: %v)", p.pid, timeout, ctx.Err(), err)
		}
	}
}

// probe asks the API at apiURL for the cluster's nodes and checks that node
// is one of them.
func probe(ctx context.Context, hc *http.Client, apiURL, key, node string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/info", bytes.NewReader([]byte("{}")))
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("info: %s", resp.Status)
	}
	var info struct {
		Result struct {
			Nodes []nodeInfo `json:"nodes"`
		} `json:"result"`
		Error *APIError `json:"error"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return fmt.Errorf("info: %w", err)
	}
	if info.Error != nil {
		return info.Error
	}
	if !slices.ContainsFunc(info.Result.Nodes, func(n nodeInfo) bool { return n.Name == node }) {
		return errors.New("info does not list node " + node + " yet")
	}
	return nil
}

// nodeInfo is the part of a node in the info result that probe reads.
type nodeInfo struct {
	Name string `json:"name"`
}
