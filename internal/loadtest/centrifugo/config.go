package centrifugo

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"
)

// PersonalNamespace is the channel namespace of the personal channels: user
// u's channel is "personal:#u" (see PersonalChannel).
const PersonalNamespace = "personal"

// PersonalChannel returns the channel Centrifugo subscribes user's
// connections to on the server side, as it names it itself: namespace,
// namespace boundary ':', user boundary '#', user.
func PersonalChannel(user string) string { return PersonalNamespace + ":#" + user }

// Config describes a Centrifugo server to start. The zero value is the
// history-off variant with random secrets on a free loopback port.
type Config struct {
	// History turns on per-channel history for the personal channels:
	// HistorySize publications kept for HistoryTTL in a Redis stream per
	// channel, and recovery forced on, so a reconnecting client gets what it
	// missed. false means no history: publications go through Redis PUB/SUB
	// only.
	History bool

	// HistorySize is the history_size of the personal namespace with History.
	// 0 means 20.
	HistorySize int

	// HistoryTTL is the history_ttl of the personal namespace with History.
	// 0 means 300s.
	HistoryTTL time.Duration

	// NoPresence turns presence off on the personal namespace. By default it
	// is on: every connection writes its presence to Redis when it subscribes
	// and refreshes it, as Herald's edges keep a presence hash per user.
	NoPresence bool

	// Secret is the HMAC key connection tokens are signed with (HS256). ""
	// means a random one; Server.Token signs with it either way.
	Secret string

	// APIKey is the server API key (X-API-Key). "" means a random one.
	APIKey string

	// RedisPrefix prefixes every Redis key and PUB/SUB channel Centrifugo
	// uses. "" means "centrifugo". Servers on one Redis with the same prefix
	// form one Centrifugo cluster.
	RedisPrefix string

	// PingInterval is how often the server pings each client ({} frames).
	// 0 means 25s, Centrifugo's default and Herald's heartbeat.
	PingInterval time.Duration

	// PongTimeout is how long the server waits for a client's pong before it
	// closes the connection. 0 means 8s. It must be below PingInterval.
	PongTimeout time.Duration

	// ShutdownTimeout bounds Centrifugo's graceful shutdown on SIGTERM; Stop
	// kills the process if it is still running 5s after that. 0 means 5s.
	ShutdownTimeout time.Duration

	// LogLevel is Centrifugo's log level (trace, debug, info, warn, error,
	// none). "" means "info".
	LogLevel string

	// Dir holds the configuration file and the log. "" means a new temporary
	// directory, removed by Stop.
	Dir string

	// StartTimeout bounds how long Start waits for the server to answer. 0
	// means 30s.
	StartTimeout time.Duration
}

// withDefaults returns c with every zero field that has a default filled in,
// random secrets included.
func (c Config) withDefaults() Config {
	c.HistorySize = cmp.Or(c.HistorySize, 20)
	c.HistoryTTL = cmp.Or(c.HistoryTTL, 300*time.Second)
	c.Secret = cmp.Or(c.Secret, randomHex(32))
	c.APIKey = cmp.Or(c.APIKey, randomHex(16))
	c.RedisPrefix = cmp.Or(c.RedisPrefix, "centrifugo")
	c.PingInterval = cmp.Or(c.PingInterval, 25*time.Second)
	c.PongTimeout = cmp.Or(c.PongTimeout, 8*time.Second)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 5*time.Second)
	c.LogLevel = cmp.Or(c.LogLevel, "info")
	c.StartTimeout = cmp.Or(c.StartTimeout, 30*time.Second)
	return c
}

// fileConfig is Centrifugo v6's configuration file, the keys this package
// sets. Field order is the file's key order.
type fileConfig struct {
	HTTPServer struct {
		Address string `json:"address"`
		Port    int    `json:"port"`
	} `json:"http_server"`
	Log struct {
		Level string `json:"level"`
	} `json:"log"`
	Engine struct {
		Type  string `json:"type"`
		Redis struct {
			Address []string `json:"address"`
			Prefix  string   `json:"prefix"`
		} `json:"redis"`
	} `json:"engine"`
	Client struct {
		Token struct {
			HMACSecretKey string `json:"hmac_secret_key"`
		} `json:"token"`
		SubscribeToUserPersonalChannel struct {
			Enabled                  bool   `json:"enabled"`
			PersonalChannelNamespace string `json:"personal_channel_namespace"`
		} `json:"subscribe_to_user_personal_channel"`
		PingInterval string `json:"ping_interval"`
		PongTimeout  string `json:"pong_timeout"`
	} `json:"client"`
	Channel struct {
		Namespaces []namespace `json:"namespaces"`
	} `json:"channel"`
	HTTPAPI struct {
		Key string `json:"key"`
	} `json:"http_api"`
	Health struct {
		Enabled bool `json:"enabled"`
	} `json:"health"`
	UsageStats struct {
		Disabled bool `json:"disabled"`
	} `json:"usage_stats"`
	Node struct {
		Name string `json:"name"`
	} `json:"node"`
	Shutdown struct {
		Timeout string `json:"timeout"`
	} `json:"shutdown"`
}

type namespace struct {
	Name          string `json:"name"`
	Presence      bool   `json:"presence"`
	HistorySize   int    `json:"history_size,omitempty"`
	HistoryTTL    string `json:"history_ttl,omitempty"`
	ForceRecovery bool   `json:"force_recovery,omitempty"`
}

// renderConfig returns the configuration file for a server of c (defaults
// filled in) listening on 127.0.0.1:port, named node, using the Redis at
// redisAddr ("host:port").
func renderConfig(c Config, redisAddr string, port int, node string) ([]byte, error) {
	var f fileConfig
	f.HTTPServer.Address = "127.0.0.1"
	f.HTTPServer.Port = port
	f.Log.Level = c.LogLevel
	f.Engine.Type = "redis"
	f.Engine.Redis.Address = []string{"redis://" + redisAddr}
	f.Engine.Redis.Prefix = c.RedisPrefix
	f.Client.Token.HMACSecretKey = c.Secret
	f.Client.SubscribeToUserPersonalChannel.Enabled = true
	f.Client.SubscribeToUserPersonalChannel.PersonalChannelNamespace = PersonalNamespace
	f.Client.PingInterval = duration(c.PingInterval)
	f.Client.PongTimeout = duration(c.PongTimeout)
	ns := namespace{Name: PersonalNamespace, Presence: !c.NoPresence}
	if c.History {
		ns.HistorySize = c.HistorySize
		ns.HistoryTTL = duration(c.HistoryTTL)
		ns.ForceRecovery = true
	}
	f.Channel.Namespaces = []namespace{ns}
	f.HTTPAPI.Key = c.APIKey
	f.Health.Enabled = true
	f.UsageStats.Disabled = true
	f.Node.Name = node
	f.Shutdown.Timeout = duration(c.ShutdownTimeout)
	if c.PongTimeout >= c.PingInterval {
		return nil, fmt.Errorf("centrifugo config: pong timeout %v must be below ping interval %v", c.PongTimeout, c.PingInterval)
	}
	if _, _, err := net.SplitHostPort(redisAddr); err != nil {
		return nil, fmt.Errorf("centrifugo config: redis address %q: %w", redisAddr, err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("centrifugo config: %w", err)
	}
	return append(b, '\n'), nil
}

// duration formats d the way Centrifugo's docs write durations: whole
// seconds as "300s", anything finer in milliseconds.
func duration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
