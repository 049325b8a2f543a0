// Package redistest starts real redis-server child processes for tests,
// benchmarks and the demo. It is the only way Herald's tests talk to Redis:
// no shared server, no mock.
//
// Each server is a separate redis-server process in its own process group,
// listening on a free port on 127.0.0.1, with its own data directory and log
// file. Tests call [Start], which fails the test (never skips it) when
// redis-server is missing, and kills the process and removes its directory
// at cleanup:
//
//	srv := redistest.Start(t, redistest.WithAOF())
//	rdb := srv.Client(t)
//
// [StartReplica] adds a replica to a Server (for tests of WAIT), and
// [StartCluster] starts a Redis Cluster, with replicas if asked.
//
// Code without a testing.TB (a TestMain, a benchmark harness, a demo command)
// calls [Launch] and must call [Server.Close].
//
// A Server can also misbehave on purpose, to test failure handling: [Server.Kill]
// crashes it (SIGKILL), [Server.Stop] shuts it down gracefully,
// [Server.Restart] brings it back on the same port and data directory (with
// AOF, every acknowledged write survives), and [Server.Pause] /
// [Server.Resume] freeze and thaw it (SIGSTOP/SIGCONT) so that clients time
// out.
//
// Who may import it: tests (in-package and external), test helpers, and
// cmd/herald for its demo. Production packages must not; internal/archtest
// checks this.
//
// All Server methods are safe for concurrent use.
package redistest
