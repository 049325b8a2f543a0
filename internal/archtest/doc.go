// Package archtest holds tests that keep Herald's architecture true as the
// code grows. It has no API; its tests run `go list` on the module and check:
//
//   - events imports only the standard library;
//   - producer, dispatcher and wsedge (with their subpackages) never depend
//     on each other, so the stages talk only through Redis data;
//   - store depends on no other Herald package;
//   - nothing outside cmd/ imports a package under cmd/;
//   - test helpers (internal/redistest, internal/leakcheck and any package
//     whose name ends in "test") are imported only by tests, other test
//     helpers and cmd/herald (its demo);
//   - every package with non-test Go files has a doc.go with a package
//     comment ("Package x ..." for libraries).
//
// Production code is checked through its whole dependency graph; test files
// may import across these lines (a dispatcher test may publish with
// producer). A rule about a package that does not exist yet checks nothing.
package archtest
