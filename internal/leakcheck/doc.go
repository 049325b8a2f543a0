// Package leakcheck fails tests that leave goroutines running.
//
// Use it from a package's TestMain, which checks once after every test of
// the package has run:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
//
// or at the end of a single test with VerifyNone(t) (not in parallel tests:
// their goroutines would be reported too). Both wait a few seconds for
// goroutines that are still winding down before they report anything, and
// the report holds the full stack of each leaked goroutine.
//
// Goroutines that belong to the testing package and the runtime's signal
// handling are never reported. Options ignore more (IgnoreTopFunction,
// IgnoreAnyFunction, IgnoreCurrent), for libraries whose background
// goroutines live as long as the process.
//
// It uses only the standard library, so any package may import it from its
// tests. It is safe for concurrent use.
package leakcheck
