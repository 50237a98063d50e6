package enrich

// ring is a FIFO queue that grows up to a fixed capacity.
type ring[T any] struct {
	buf        []T
	head, size int
	max        int
}

func newRing[T any](capacity int) ring[T] { return ring[T]{max: capacity} }

func (r *ring[T]) len() int   { return r.size }
func (r *ring[T]) full() bool { return r.size == r.max }
func (r *ring[T]) front() *T  { return &r.buf[r.head] }

// at returns the i-th element from the front.
func (r *ring[T]) at(i int) T { return r.buf[(r.head+i)%len(r.buf)] }

// push adds v at the back; the caller makes room first when full.
func (r *ring[T]) push(v T) {
	if r.size == len(r.buf) {
		grown := make([]T, min(max(2*len(r.buf), 64), r.max))
		for i := range r.size {
			grown[i] = r.at(i)
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v
}
