package main

import (
	_ "embed"
	"net/http"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/wsedge/auth"
)

//go:embed web/console.html
var consoleHTML []byte

// handler is the public listener's handler: the edge, plus in herald dev a
// console page at / and a development token endpoint for it. The token
// endpoint signs any user's token, so it exists only in dev, never in edge.
func (o *edgeFlags) handler(edge http.Handler) http.Handler {
	if !o.console {
		return edge
	}
	mux := http.NewServeMux()
	mux.Handle("/", edge)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(consoleHTML)
	})
	mux.HandleFunc("GET /dev/token", func(w http.ResponseWriter, r *http.Request) {
		user, tenant := r.URL.Query().Get("user"), r.URL.Query().Get("tenant")
		if tenant == "" {
			tenant = "acme"
		}
		if !events.ValidID(user) || !events.ValidTenant(tenant) {
			http.Error(w, "user and tenant must be valid ids", http.StatusBadRequest)
			return
		}
		tok, err := auth.Mint([]byte(o.secret), auth.Claims{Subject: user, Tenant: tenant, Topics: []string{"*"}}, time.Hour)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(tok))
	})
	return mux
}
