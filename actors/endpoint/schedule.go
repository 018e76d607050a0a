package endpoint

import "time"

// The retry schedule as pure functions of (t0, last attempt start, now).
// An event first attempted at t0 has slots t0 + k·Interval for
// k = 0..lastSlot; after an attempt that started at s, the next attempt is
// due at the first slot after s. A slot already past when it is computed
// (the process was down, the log was unavailable, the previous request was
// still in flight) collapses with every other missed slot into one attempt
// at once, provided the window is still open.

// lastSlot is the index of the last slot: floor(Window/Interval).
func lastSlot(p RetryPolicy) int64 { return int64(p.Window / p.Interval) }

// slotAfter returns the first slot t0 + k·Interval strictly after t, and
// false when that slot lies past the last one (the schedule is exhausted).
func slotAfter(t0, t time.Time, p RetryPolicy) (time.Time, bool) {
	var k int64
	if !t.Before(t0) {
		k = int64(t.Sub(t0)/p.Interval) + 1
	}
	if k > lastSlot(p) {
		return time.Time{}, false
	}
	return t0.Add(time.Duration(k) * p.Interval), true
}

// mayStart reports whether an attempt of an event first attempted at t0,
// whose slot is due, may start at now: by t0+Window, or, for a slot at the
// very end of the window, within MaxDispatchLateness of the slot.
func mayStart(t0, due, now time.Time, p RetryPolicy) bool {
	return !now.After(t0.Add(p.Window)) || !now.After(due.Add(MaxDispatchLateness))
}

// nextDue is when an event first attempted at t0, whose last attempt
// started at lastStart, is next attempted as seen at now: the next slot,
// or now if that slot has passed (missed slots collapse into one immediate
// attempt). It returns false when the event is to be abandoned: its last
// slot has been attempted, or its window closed before now.
func nextDue(t0, lastStart, now time.Time, p RetryPolicy) (time.Time, bool) {
	slot, ok := slotAfter(t0, lastStart, p)
	if !ok {
		return time.Time{}, false
	}
	if !slot.Before(now) {
		return slot, true
	}
	if !mayStart(t0, slot, now, p) {
		return time.Time{}, false
	}
	return now, true
}
