// Command herald is Herald's single binary: the dispatcher, the WebSocket
// edge, the all-in-one dev server and the tools that publish, inspect the
// dead-letter queue, manage rate rules and load-test.
//
// Every setting is a flag and a HERALD_* environment variable; flags win.
// `herald <command> --help` lists a command's settings with their defaults.
package main
