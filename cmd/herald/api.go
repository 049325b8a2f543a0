package main

import (
	"log/slog"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/httpapi"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/redis/go-redis/v9"
)

// newAPI builds the HTTP API served beside /ws, with the service keys of
// --api-keys (nil without it).
func (o *edgeFlags) newAPI(rdb redis.UniversalClient, space keys.Space, ver *auth.Verifier, rules *edgeRules, log *slog.Logger) (*httpapi.API, *httpapi.Keys, error) {
	var ks *httpapi.Keys
	var err error
	switch {
	case o.apiKeys != "":
		if ks, err = httpapi.LoadKeys(o.apiKeys); err != nil {
			return nil, nil, err
		}
	case o.console != nil: // herald dev --dev-console: a key for this run, for the console's admin panel
		if ks, err = httpapi.ParseKeys("dev console", []byte("dev-console "+o.console.apiKey+" *\n")); err != nil {
			return nil, nil, err
		}
	}
	cfg := httpapi.Config{
		Redis: rdb, Space: space, Verifier: ver, Keys: ks, Partitions: o.partitions,
		Limits: events.Limits{MaxData: o.maxData}, Logger: log.With("component", "api"),
	}
	if rules.limiter != nil {
		cfg.Allow = rules.limiter.Publish
	}
	api, err := httpapi.New(cfg)
	if o.apiKeys == "" {
		ks = nil // nothing to reload on SIGHUP
	}
	return api, ks, err
}

// reloadAPIKeys re-reads the API keys file (on SIGHUP); a bad file is
// refused with its line and field, and the keys in use stay.
func reloadAPIKeys(ks *httpapi.Keys, log *slog.Logger) func() {
	return func() {
		if err := ks.Reload(); err != nil {
			log.Error("API keys not reloaded on SIGHUP: the keys in use stay", "err", err)
			return
		}
		log.Info("API keys reloaded on SIGHUP")
	}
}
