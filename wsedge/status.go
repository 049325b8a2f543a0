package wsedge

import (
	"strconv"

	"github.com/coder/websocket"
)

// Close codes of protocol 1 (contracts section 3). "Reconnect" codes mean
// the client should reconnect with backoff and resume; "terminal" codes mean
// reconnecting with the same token will fail the same way.
const (
	StatusUnauthorized      websocket.StatusCode = 4001                            // terminal: missing or invalid token
	StatusForbidden         websocket.StatusCode = 4003                            // terminal: not allowed
	StatusTokenExpired      websocket.StatusCode = 4004                            // reconnect with a fresh token
	StatusSlowConsumer      websocket.StatusCode = 4008                            // reconnect and resume; nothing is lost
	StatusTooMany           websocket.StatusCode = 4029                            // reconnect later, with backoff
	StatusProtocolViolation websocket.StatusCode = websocket.StatusPolicyViolation // 1008, terminal
	StatusTooBig            websocket.StatusCode = websocket.StatusMessageTooBig   // 1009, terminal
	StatusInternal          websocket.StatusCode = websocket.StatusInternalError   // 1011, reconnect
	StatusRestart           websocket.StatusCode = websocket.StatusServiceRestart  // 1012, reconnect
	StatusTryAgain          websocket.StatusCode = websocket.StatusTryAgainLater   // 1013, reconnect with backoff: Redis unavailable at set-up
	StatusReplaced          websocket.StatusCode = websocket.StatusNormalClosure   // 1000: the same device connected again
	StatusIdle              websocket.StatusCode = websocket.StatusGoingAway       // 1001: no frame or pong within the idle timeout
)

func codeLabel(c websocket.StatusCode) string { return strconv.Itoa(int(c)) }
