// Package progress draws the progress of a long run of a known size for
// the command-line tools (herald publish --count, herald-load): a bar
// redrawn in place on a terminal, a plain line every few seconds
// otherwise. It imports only the standard library; a Bar is owned by one
// goroutine.
package progress
