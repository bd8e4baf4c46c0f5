package master

// pendingSet holds a slave's calls in flight, by id.
//
// Ids are handed out in sequence, so a ring indexed by id-base stands in
// for a map, sparing a hash of each id in and out on every call; a ring
// rather than a sliding slice, whose appends would copy it over and over
// as its window moves on. A call that stays pending while maxSpan later
// calls come and go (a long concurrent call) moves to a small overflow
// map, so that the ring stays bounded.
type pendingSet struct {
	base     uint64        // the id of the oldest call in the ring
	ring     []pendingCall // a power of two long; nil once answered
	head     int           // the index in ring of base
	span     int           // the ids base to base+span-1 are in the ring
	live     int
	overflow map[uint64]pendingCall
}

const maxSpan = 1 << 16

// keptRing is the longest ring an empty set keeps for the calls to come.
const keptRing = 1 << 10

// slot is the ring's slot of the id base+i.
func (ps *pendingSet) slot(i int) *pendingCall {
	return &ps.ring[(ps.head+i)&(len(ps.ring)-1)]
}

// add registers p under the next id and returns it. Ids start at 1.
func (ps *pendingSet) add(p pendingCall) uint64 {
	if ps.base == 0 {
		ps.base = 1
	}
	if ps.span == maxSpan { // the oldest moves out of the ring
		if old := *ps.slot(0); old != nil {
			if ps.overflow == nil {
				ps.overflow = make(map[uint64]pendingCall)
			}
			ps.overflow[ps.base] = old
		}
		ps.popFront()
	}
	if ps.span == len(ps.ring) {
		ring := make([]pendingCall, max(16, 2*len(ps.ring)))
		for i := range ps.span {
			ring[i] = *ps.slot(i)
		}
		ps.ring, ps.head = ring, 0
	}
	id := ps.base + uint64(ps.span)
	*ps.slot(ps.span) = p
	ps.span++
	ps.live++
	return id
}

// popFront forgets the oldest id of the ring.
func (ps *pendingSet) popFront() {
	*ps.slot(0) = nil
	ps.head = (ps.head + 1) & (len(ps.ring) - 1)
	ps.base++
	ps.span--
}

// take removes and returns the call with id, or nil.
func (ps *pendingSet) take(id uint64) pendingCall {
	if id < ps.base {
		p := ps.overflow[id]
		if p != nil {
			delete(ps.overflow, id)
			ps.live--
		}
		return p
	}
	i := id - ps.base
	if i >= uint64(ps.span) {
		return nil
	}
	sl := ps.slot(int(i))
	p := *sl
	if p == nil {
		return nil
	}
	*sl = nil
	ps.live--
	for ps.span > 0 && *ps.slot(0) == nil {
		ps.popFront()
	}
	if ps.span == 0 && len(ps.ring) > keptRing {
		ps.ring, ps.head = nil, 0 // let a big ring go
	}
	return p
}

// each calls fn for each call pending, with its id.
func (ps *pendingSet) each(fn func(id uint64, p pendingCall)) {
	for id, p := range ps.overflow {
		fn(id, p)
	}
	for i := range ps.span {
		if p := *ps.slot(i); p != nil {
			fn(ps.base+uint64(i), p)
		}
	}
}

// drain removes and returns every pending call, with its id at the same
// index.
func (ps *pendingSet) drain() (calls []pendingCall, ids []uint64) {
	calls, ids = make([]pendingCall, 0, ps.live), make([]uint64, 0, ps.live)
	ps.each(func(id uint64, p pendingCall) {
		calls, ids = append(calls, p), append(ids, id)
	})
	ps.base += uint64(ps.span)
	ps.ring, ps.head, ps.span, ps.overflow, ps.live = nil, 0, 0, nil, 0
	return calls, ids
}

// peek returns the call pending under id, leaving it there.
func (ps *pendingSet) peek(id uint64) pendingCall {
	if id < ps.base {
		return ps.overflow[id]
	}
	if i := id - ps.base; i < uint64(ps.span) {
		return *ps.slot(int(i))
	}
	return nil
}
