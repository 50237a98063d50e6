package enrich

// ring is a FIFO queue that grows up to a fixed capacity. Every element has
// an absolute position, counted from the first ever pushed, so that other
// structures can point at it and tell when it is gone.
type ring[T any] struct {
	buf        []T
	head, size int
	max        int
	base       uint64 // absolute position of the front
}

func newRing[T any](capacity int) ring[T] { return ring[T]{max: capacity} }

func (r *ring[T]) len() int   { return r.size }
func (r *ring[T]) full() bool { return r.size == r.max }
func (r *ring[T]) front() *T  { return &r.buf[r.head] }

// at returns the i-th element from the front.
func (r *ring[T]) at(i int) T { return r.buf[(r.head+i)%len(r.buf)] }

// ptr returns the element at absolute position pos, or nil when it is no
// longer (or not yet) in the ring.
func (r *ring[T]) ptr(pos uint64) *T {
	if pos < r.base || pos-r.base >= uint64(r.size) {
		return nil
	}
	return &r.buf[(r.head+int(pos-r.base))%len(r.buf)]
}

// next is the absolute position the next push takes.
func (r *ring[T]) next() uint64 { return r.base + uint64(r.size) }

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
	r.base++
	return v
}
