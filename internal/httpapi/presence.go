package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

type device struct {
	Device string `json:"device"`
	Edge   string `json:"edge"`
	Since  int64  `json:"since"`
}

// GET /v1/presence?tenant&user
func (a *API) presence(w http.ResponseWriter, r *http.Request, k *Key) error {
	q := r.URL.Query()
	tenant, user := q.Get("tenant"), q.Get("user")
	if err := a.checkTenant(k, tenant); err != nil {
		return err
	}
	if !validID(user) {
		return badRequest("user", "user %q is not [A-Za-z0-9_.@-]{1,128}", clip(user))
	}
	m, err := a.cfg.Redis.HGetAll(r.Context(), a.cfg.Space.Presence(tenant, user)).Result()
	if err != nil {
		return err
	}
	devs := make([]device, 0, len(m))
	for dev, v := range m {
		// "<edge> <session> <since unix ms>"; entries of older edges have no since
		f := strings.Fields(v)
		d := device{Device: dev}
		if len(f) > 0 {
			d.Edge = f[0]
		}
		if len(f) > 2 {
			d.Since, _ = strconv.ParseInt(f[2], 10, 64)
		}
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(x, y device) int { return strings.Compare(x.Device, y.Device) })
	return writeJSON(w, http.StatusOK, struct {
		Tenant  string   `json:"tenant"`
		User    string   `json:"user"`
		Devices []device `json:"devices"`
	}{tenant, user, devs})
}

// GET /v1/online?tenant
func (a *API) online(w http.ResponseWriter, r *http.Request, k *Key) error {
	tenant := r.URL.Query().Get("tenant")
	if err := a.checkTenant(k, tenant); err != nil {
		return err
	}
	var users *redis.IntCmd
	var conns *redis.StringSliceCmd
	_, err := a.cfg.Redis.Pipelined(r.Context(), func(p redis.Pipeliner) error {
		users = p.SCard(r.Context(), a.cfg.Space.OnlineUsers(tenant))
		conns = p.HVals(r.Context(), a.cfg.Space.Online(tenant))
		return nil
	})
	if err != nil {
		return err
	}
	n := 0
	for _, v := range conns.Val() {
		c, _ := strconv.Atoi(v)
		n += c
	}
	return writeJSON(w, http.StatusOK, struct {
		Tenant      string `json:"tenant"`
		Users       int64  `json:"users"`
		Connections int    `json:"connections"`
	}{tenant, users.Val(), n})
}

func (a *API) checkTenant(k *Key, tenant string) error {
	if tenant == "" || len(tenant) > 64 || strings.ContainsAny(tenant, ".@") || !validID(tenant) {
		return badRequest("tenant", "tenant %q is not [A-Za-z0-9_-]{1,64}", clip(tenant))
	}
	if !k.MayActOn(tenant) {
		return forbidden(k, tenant)
	}
	return nil
}
