package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// herald inbox | online | presence: clients of the HTTP API (docs/api.md).

func init() {
	register(command{name: "inbox", summary: "list a user's inbox or mark it read, through the HTTP API", run: runInbox})
	register(command{name: "online", summary: "users and connections online in a tenant, through the HTTP API", run: runOnline})
	register(command{name: "presence", summary: "a user's online devices, through the HTTP API", run: runPresence})
}

// apiKeyEnv holds the service key of herald online and presence.
const apiKeyEnv = "HERALD_API_KEY"

// apiClient is what the three commands share.
type apiClient struct {
	url, credential string
	out             io.Writer
}

func (f *flags) apiClient(c *apiClient, credential, usage string) {
	f.String(&c.url, "api-url", "http://127.0.0.1:8080", "an edge's public listener")
	// Not f.String: a secret, read from the environment after parsing, and
	// --help must not print it.
	f.StringVar(&c.credential, credential, "", usage)
}

// do sends one request and prints the answer's JSON, indented; an error
// answer becomes an error naming its status and message.
func (c *apiClient) do(ctx context.Context, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.url, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("%w: --api-url: %v", errUsage, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.credential)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(raw, &e)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error.Message)
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		buf.Reset()
		buf.Write(raw)
	}
	_, err = c.out.Write(buf.Bytes())
	return err
}

func runInbox(ctx context.Context, args []string) error {
	c := &apiClient{out: os.Stdout}
	var (
		limit           int
		before, device  string
		unread, count   bool
		markAll         bool
		markIDs, markTo string
	)
	f := newFlags("inbox", "Lists a user's inbox (GET /v1/inbox), its unread count, or marks it read (POST /v1/inbox/read), as the user's device.\n"+
		"Example: herald inbox --token \"$(herald token --tenant acme --user 42)\" --unread")
	f.apiClient(c, "token", "the user's JWT (env HERALD_TOKEN)")
	f.Int(&limit, "limit", 50, "notifications per page, 1 to 200")
	f.String(&before, "before", "", "the next cursor of the previous page")
	f.String(&device, "device", "", "the device, when the token names none")
	f.Bool(&unread, "unread", false, "only unread notifications")
	f.Bool(&count, "count", false, "print the unread count only")
	f.Bool(&markAll, "mark-all-read", false, "mark everything read")
	f.String(&markIDs, "mark-read", "", "comma-separated notification ids to mark read")
	f.String(&markTo, "mark-read-up-to", "", "mark this notification and everything older read")
	if err := f.parse(args); err != nil {
		return err
	}
	if c.credential == "" {
		c.credential = os.Getenv("HERALD_TOKEN")
	}
	if c.credential == "" {
		return fmt.Errorf("%w: no token: pass --token or set HERALD_TOKEN", errUsage)
	}
	dev := ""
	if device != "" {
		dev = "device=" + url.QueryEscape(device)
	}
	switch {
	case markAll || markIDs != "" || markTo != "":
		body := map[string]any{}
		switch {
		case markAll:
			body["all"] = true
		case markIDs != "":
			body["ids"] = splitList(markIDs)
		default:
			body["up_to"] = markTo
		}
		return c.do(ctx, "POST", "/v1/inbox/read?"+dev, body)
	case count:
		return c.do(ctx, "GET", "/v1/inbox/unread?"+dev, nil)
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if before != "" {
		q.Set("before", before)
	}
	if unread {
		q.Set("unread", "true")
	}
	if device != "" {
		q.Set("device", device)
	}
	return c.do(ctx, "GET", "/v1/inbox?"+q.Encode(), nil)
}

func runOnline(ctx context.Context, args []string) error {
	c := &apiClient{out: os.Stdout}
	var tenant string
	f := newFlags("online", "Prints the users and connections online in a tenant across all edges (GET /v1/online).\n"+
		"Example: HERALD_API_KEY=... herald online --tenant acme")
	f.apiClient(c, "api-key", "a service key of the edges' --api-keys file (env "+apiKeyEnv+")")
	f.String(&tenant, "tenant", "", "tenant id (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := c.needKey(); err != nil {
		return err
	}
	if tenant == "" {
		return fmt.Errorf("%w: --tenant is required", errUsage)
	}
	return c.do(ctx, "GET", "/v1/online?tenant="+url.QueryEscape(tenant), nil)
}

func runPresence(ctx context.Context, args []string) error {
	c := &apiClient{out: os.Stdout}
	var tenant, user string
	f := newFlags("presence", "Prints a user's online devices, with the edge and since when (GET /v1/presence).\n"+
		"Example: HERALD_API_KEY=... herald presence --tenant acme --user 42")
	f.apiClient(c, "api-key", "a service key of the edges' --api-keys file (env "+apiKeyEnv+")")
	f.String(&tenant, "tenant", "", "tenant id (required)")
	f.String(&user, "user", "", "user id (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := c.needKey(); err != nil {
		return err
	}
	if tenant == "" || user == "" {
		return fmt.Errorf("%w: --tenant and --user are required", errUsage)
	}
	return c.do(ctx, "GET", "/v1/presence?tenant="+url.QueryEscape(tenant)+"&user="+url.QueryEscape(user), nil)
}

func (c *apiClient) needKey() error {
	if c.credential == "" {
		c.credential = os.Getenv(apiKeyEnv)
	}
	if c.credential == "" {
		return fmt.Errorf("%w: no service key: pass --api-key or set %s", errUsage, apiKeyEnv)
	}
	return nil
}
