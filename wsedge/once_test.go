package wsedge_test

import "sync"

// stopSet remembers which edges were stopped, so stop can run from a test
// and again from its cleanup.
type stopSet struct{ m sync.Map }

func (s *stopSet) once(k any) bool {
	_, loaded := s.m.LoadOrStore(k, true)
	return !loaded
}
