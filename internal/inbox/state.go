package inbox

import (
	"slices"
	"strconv"
	"strings"
)

// feedRead is one feed's read state: everything at or below mark in epoch
// is read, and so are the seqs in set (ascending, all above mark).
type feedRead struct {
	epoch string
	mark  uint64
	set   []uint64
}

// readState is a user's read state per feed name.
type readState map[string]feedRead

// parseState reads the read-state hash. A malformed field counts as
// nothing read in that feed: read state is a convenience, never a reason
// to fail a request.
func parseState(m map[string]string) readState {
	st := readState{}
	for _, name := range feedNames {
		var fr feedRead
		if w, ok := m["w:"+name]; ok {
			ep, num, ok := strings.Cut(w, ":")
			mark, err := strconv.ParseUint(num, 10, 64)
			if !ok || err != nil {
				continue
			}
			fr.epoch, fr.mark = ep, mark
		}
		if s := m["s:"+name]; s != "" && fr.epoch != "" {
			for part := range strings.SplitSeq(s, ",") {
				if n, err := strconv.ParseUint(part, 10, 64); err == nil && n > fr.mark {
					fr.set = append(fr.set, n)
				}
			}
			slices.Sort(fr.set)
		}
		st[name] = fr
	}
	return st
}

// isRead reports whether the entry seq of epoch is read.
func (fr feedRead) isRead(epoch string, seq uint64) bool {
	if fr.epoch != epoch {
		return false
	}
	if seq <= fr.mark {
		return true
	}
	_, found := slices.BinarySearch(fr.set, seq)
	return found
}

// setText is the set as the scripts take it: comma-separated.
func (fr feedRead) setText() string {
	b := make([]byte, 0, len(fr.set)*6)
	for i, n := range fr.set {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, n, 10)
	}
	return string(b)
}
