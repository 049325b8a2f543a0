package wsedge

import (
	"context"
	"sync"
)

// workQueue is an unbounded FIFO of work items for a fixed pool of
// goroutines. Pushing never blocks, so it can be called under locks; every
// producer pushes a given item at most once at a time (the session's
// scheduled flag, the cursor's catching flag), which bounds the queue by the
// number of sessions and cursors.
type workQueue[T any] struct {
	mu     sync.Mutex
	items  []T
	head   int
	notify chan struct{}
}

func newWorkQueue[T any]() *workQueue[T] {
	return &workQueue[T]{notify: make(chan struct{}, 1)}
}

func (q *workQueue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop blocks until an item is there or ctx ends.
func (q *workQueue[T]) pop(ctx context.Context) (T, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			v := q.items[q.head]
			var zero T
			q.items[q.head] = zero
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			}
			more := q.head < len(q.items)
			q.mu.Unlock()
			if more {
				select {
				case q.notify <- struct{}{}:
				default:
				}
			}
			return v, true
		}
		q.mu.Unlock()
		select {
		case <-q.notify:
		case <-ctx.Done():
			var zero T
			return zero, false
		}
	}
}

func (q *workQueue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// take removes and returns up to max items without blocking, appended to
// buf.
func (q *workQueue[T]) take(buf []T, max int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.items)-q.head)
	buf = append(buf, q.items[q.head:q.head+n]...)
	clear(q.items[q.head : q.head+n])
	q.head += n
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return buf
}
