package master

// pendingSet holds a slave's calls in flight, by id.
//
// Ids are handed out in sequence, so a slice indexed by id-base stands in
// for a map, sparing a hash of each id in and out on every call. A call
// that stays pending while maxSpan later calls come and go (a long
// concurrent call) moves to a small overflow map, so that the slice stays
// bounded.
type pendingSet struct {
	base     uint64        // the id of slots[0]
	slots    []pendingCall // nil once answered
	live     int
	overflow map[uint64]pendingCall
}

const maxSpan = 1 << 16

// add registers p under the next id and returns it. Ids start at 1.
func (ps *pendingSet) add(p pendingCall) uint64 {
	if ps.base == 0 {
		ps.base = 1
	}
	id := ps.base + uint64(len(ps.slots))
	ps.slots = append(ps.slots, p)
	ps.live++
	for len(ps.slots) > maxSpan {
		if old := ps.slots[0]; old != nil {
			if ps.overflow == nil {
				ps.overflow = make(map[uint64]pendingCall)
			}
			ps.overflow[ps.base] = old
		}
		ps.slots[0] = nil
		ps.slots = ps.slots[1:]
		ps.base++
	}
	return id
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
	if i >= uint64(len(ps.slots)) {
		return nil
	}
	p := ps.slots[i]
	if p == nil {
		return nil
	}
	ps.slots[i] = nil
	ps.live--
	for len(ps.slots) > 0 && ps.slots[0] == nil {
		ps.slots = ps.slots[1:]
		ps.base++
	}
	if len(ps.slots) == 0 {
		ps.slots = ps.slots[:0:0] // let the backing array go
	}
	return p
}

// drain removes and returns every pending call, with its id at the same
// index.
func (ps *pendingSet) drain() (calls []pendingCall, ids []uint64) {
	calls, ids = make([]pendingCall, 0, ps.live), make([]uint64, 0, ps.live)
	for id, p := range ps.overflow {
		calls, ids = append(calls, p), append(ids, id)
	}
	for i, p := range ps.slots {
		if p != nil {
			calls, ids = append(calls, p), append(ids, ps.base+uint64(i))
		}
	}
	ps.base += uint64(len(ps.slots))
	ps.slots, ps.overflow, ps.live = nil, nil, 0
	return calls, ids
}

// peek returns the call pending under id, leaving it there.
func (ps *pendingSet) peek(id uint64) pendingCall {
	if id < ps.base {
		return ps.overflow[id]
	}
	if i := id - ps.base; i < uint64(len(ps.slots)) {
		return ps.slots[i]
	}
	return nil
}
