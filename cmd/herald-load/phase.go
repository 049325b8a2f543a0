package main

import (
	"sync/atomic"
	"time"
)

// Phase kinds: what the notifications of a phase's run mean to a worker.
const (
	kindPersonal  = "personal"  // event n is for user n mod users
	kindBroadcast = "broadcast" // event n is round n, for every client
)

// phaseState is a worker's counts for the current phase: what its clients
// received of the phase's run. A phase command replaces it whole, so a
// late notification of the phase before counts as foreign in the new one.
type phaseState struct {
	run     string
	kind    string
	perUser []atomic.Int64
	rounds  []struct{ count, maxUS atomic.Int64 }
	latency histogram
	windows windowHists

	delivered, foreign, dups, acks atomic.Int64
}

func newPhaseState(cmd workerCmd, clients int) *phaseState {
	ph := &phaseState{run: cmd.Run, kind: cmd.Kind, perUser: make([]atomic.Int64, clients)}
	if cmd.Kind == kindBroadcast {
		ph.rounds = make([]struct{ count, maxUS atomic.Int64 }, max(0, cmd.Rounds))
	}
	return ph
}

func (ph *phaseState) counts() phaseCounts {
	return phaseCounts{Delivered: ph.delivered.Load(), Foreign: ph.foreign.Load(), Dups: ph.dups.Load(), Acks: ph.acks.Load()}
}

// stormState is a worker's view of a reconnect storm: the reconnects'
// welcomes, how many resumed, and when they came.
type stormState struct {
	atUS     int64 // when every connection was dropped
	welcomes atomic.Int64
	resumed  atomic.Int64
	lastUS   atomic.Int64 // latest welcome, µs after atUS
	h        histogram    // welcome times, µs after atUS
}

// stormData is a storm's wire form.
type stormData struct {
	Welcomes int64     `json:"welcomes"`
	Resumed  int64     `json:"resumed"`
	LastUS   int64     `json:"last_us"`
	Hist     *histData `json:"hist,omitempty"`
}

func (st *stormState) welcome(now time.Time, resumed bool) {
	us := now.UnixMicro() - st.atUS
	st.h.record(us)
	for m := st.lastUS.Load(); us > m && !st.lastUS.CompareAndSwap(m, us); m = st.lastUS.Load() {
	}
	if resumed {
		st.resumed.Add(1)
	}
	st.welcomes.Add(1)
}

func (st *stormState) data(withHist bool) stormData {
	d := stormData{Welcomes: st.welcomes.Load(), Resumed: st.resumed.Load(), LastUS: st.lastUS.Load()}
	if withHist {
		h := st.h.data()
		d.Hist = &h
	}
	return d
}
