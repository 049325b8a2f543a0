package centrifugo

import (
	"errors"
	"fmt"
)

var (
	// ErrNoGo means Install found no centrifugo binary of the right version
	// and no go command to build one.
	ErrNoGo = errors.New("no go command to install centrifugo with")

	// ErrWrongVersion means the binary Install built is not Version.
	ErrWrongVersion = errors.New("centrifugo binary is not " + Version)

	// ErrBadConfig means `centrifugo checkconfig --strict` refused the
	// generated configuration: a key Centrifugo does not know, or a value it
	// does not accept.
	ErrBadConfig = errors.New("centrifugo refused the generated configuration")

	// ErrExited means the centrifugo process exited before it was ready.
	ErrExited = errors.New("centrifugo exited before it was ready")

	// ErrDied means the centrifugo process had exited before Stop was
	// called: it crashed or was killed from outside.
	ErrDied = errors.New("centrifugo exited before Stop")

	// ErrLeaked means Stop found processes of the server's process group still
	// running after centrifugo itself had exited; Stop killed them.
	ErrLeaked = errors.New("centrifugo left processes running")

	// ErrKilled means centrifugo did not exit within the grace period after
	// SIGTERM and Stop killed it with SIGKILL.
	ErrKilled = errors.New("centrifugo ignored SIGTERM and was killed")

	// ErrDataNotJSON means a publication's data is not a JSON value. With
	// Centrifugo's JSON protocol the data travels embedded in the frames, so
	// it must be JSON.
	ErrDataNotJSON = errors.New("publication data is not JSON")

	// errPortInUse marks a start that failed because the port was taken.
	errPortInUse = errors.New("port already in use")

	// ErrNoCommand means a batch Command names neither a channel nor
	// channels.
	ErrNoCommand = errors.New("command has no channel")
)

// APIError is an error Centrifugo's server API answered for one command
// (codes as in Centrifugo's API docs: 102 unknown channel, 107 bad request,
// ...).
type APIError struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("centrifugo api error %d: %s", e.Code, e.Message)
}

// ReplyError is an error reply to a client command, such as a refused
// connect (109 token expired, 101 unauthorized...). Temporary errors may be
// retried.
type ReplyError struct {
	ID        uint32 `json:"-"`
	Code      uint32 `json:"code"`
	Message   string `json:"message"`
	Temporary bool   `json:"temporary"`
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("centrifugo reply %d: error %d: %s", e.ID, e.Code, e.Message)
}
