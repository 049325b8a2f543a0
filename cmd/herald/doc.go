// Command herald is Herald's single binary: the dispatcher, the WebSocket
// edge, the all-in-one dev server and the tools that publish, inspect the
// dead-letter queue and manage rate rules. The load generator is a command
// of its own, cmd/herald-load.
//
// Every setting is a flag and a HERALD_* environment variable; flags win.
// `herald <command> --help` lists a command's settings with their defaults.
package main
