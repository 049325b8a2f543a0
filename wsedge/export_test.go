package wsedge

// PendingTimers is the number of hold timers (a rate rule's) that have not
// fired or been stopped: tests check that an ended session or subscription
// leaves none behind.
func (e *Edge) PendingTimers() int {
	e.timersMu.Lock()
	defer e.timersMu.Unlock()
	return len(e.timers)
}
