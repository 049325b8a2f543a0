package dispatcher

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed heartbeat.lua
	heartbeatSrc string
	//go:embed renew.lua
	renewSrc string
	//go:embed release.lua
	releaseSrc string
	//go:embed delconsumer.lua
	delConsumerSrc string
)

// The scripts run by SHA; go-redis falls back to EVAL on NOSCRIPT.
var (
	heartbeatScript   = redis.NewScript(heartbeatSrc)
	renewScript       = redis.NewScript(renewSrc)
	releaseScript     = redis.NewScript(releaseSrc)
	delConsumerScript = redis.NewScript(delConsumerSrc)
)
