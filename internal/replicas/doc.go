// Package replicas runs writes that return only once enough replicas have
// them (Redis WAIT), for deployments where a master may fail over: Redis
// replicates asynchronously, so a write that its master acknowledged and
// did not pass on before it died is lost from the promoted replica.
//
// WAIT counts the replicas that acknowledged the writes of its own
// connection, so Exec sends each master's commands and the WAIT after them
// on one connection: one pipeline per master (on Redis Cluster, the
// master of each command's key, as go-redis's cluster state has it).
//
// Imported by producer and internal/feed; imports internal/keys and
// go-redis. Exec is
// safe for concurrent use.
package replicas
