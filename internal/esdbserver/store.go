package esdbserver

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
)

const (
	// firstPosition is the $all position of the first record. EventStoreDB
	// positions are byte offsets in its transaction file, so they start
	// past a header and grow by each record's size.
	firstPosition = 4096
	// recordOverhead is the bytes a record takes besides its names and
	// payloads, so that positions are sparse like the real ones.
	recordOverhead = 96
	// defaultSearchWindow is the filter window when a request names none.
	defaultSearchWindow = 32
	// nanosecondsPerTick converts Unix nanoseconds to .NET ticks (100 ns),
	// the unit of the "created" metadata the client parses.
	nanosecondsPerTick = 100
)

// Metadata keys the client reads and writes on every event.
const (
	metaType        = "type"
	metaContentType = "content-type"
	metaCreated     = "created"
)

// record is one committed event. Records are never modified after commit.
type record struct {
	stream      string
	revision    uint64
	position    uint64
	id          [16]byte
	typ         string
	contentType string
	created     int64 // .NET ticks since the Unix epoch
	data        []byte
	meta        []byte
}

// stream is one stream's records, by revision.
type stream struct {
	records        []int  // indices into store.log
	truncateBefore uint64 // revisions below are hidden (soft delete)
}

// last is the stream's last revision, or -1 when it has no records.
func (st *stream) last() int64 {
	if st == nil {
		return -1
	}
	return int64(len(st.records)) - 1
}

// visible reports whether reads see any record of the stream.
func (st *stream) visible() bool {
	return st != nil && uint64(len(st.records)) > st.truncateBefore
}

// proposed is an event as the client proposed it.
type proposed struct {
	id          [16]byte
	typ         string
	contentType string
	data, meta  []byte
}

// expectation is an append's or delete's expected stream state.
type expectation struct {
	kind     expectKind
	revision uint64
}

type expectKind int

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectRevision
)

func (e expectation) matches(st *stream) bool {
	switch e.kind {
	case expectNoStream:
		return !st.visible()
	case expectExists:
		return st.visible()
	case expectRevision:
		return st.last() == int64(e.revision)
	default:
		return true
	}
}

// store is the server's in-memory log. The caller holds Server.mu.
type store struct {
	log     []*record
	streams map[string]*stream
	ids     map[[16]byte]int // event id -> index into log, for idempotent appends
	nextPos uint64
	changed chan struct{} // closed and replaced on every commit
	now     func() time.Time
}

func newStore(now func() time.Time) *store {
	return &store{
		streams: map[string]*stream{},
		ids:     map[[16]byte]int{},
		nextPos: firstPosition,
		changed: make(chan struct{}),
		now:     now,
	}
}

// appendResult is what an append did: committed records, or the stream's
// state when the expectation failed.
type appendResult struct {
	last      *record // last record written (or found, for a repeated append)
	wrong     bool
	current   int64 // the stream's last revision when wrong
	duplicate bool  // the events were already there: nothing was written
}

// append commits events to name if the expectation holds.
func (s *store) append(name string, exp expectation, events []proposed) appendResult {
	st := s.streams[name]
	if last, ok := s.alreadyAppended(name, st, exp, events); ok {
		return appendResult{last: last, duplicate: true}
	}
	if !exp.matches(st) {
		current := st.last()
		if !st.visible() {
			current = -1
		}
		return appendResult{wrong: true, current: current}
	}
	if st == nil {
		st = &stream{}
		s.streams[name] = st
	}
	created := s.now().UnixNano() / nanosecondsPerTick
	var last *record
	for _, e := range events {
		r := &record{
			stream:      name,
			revision:    uint64(len(st.records)),
			position:    s.nextPos,
			id:          e.id,
			typ:         e.typ,
			contentType: e.contentType,
			created:     created,
			data:        e.data,
			meta:        e.meta,
		}
		s.nextPos += uint64(recordOverhead + len(name) + len(e.typ) + len(e.data) + len(e.meta))
		st.records = append(st.records, len(s.log))
		s.ids[e.id] = len(s.log)
		s.log = append(s.log, r)
		last = r
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return appendResult{last: last}
}

// alreadyAppended implements EventStoreDB's idempotent appends: a request
// whose events (by id, in order) are already in the stream where the
// expectation would have put them succeeds again without writing.
func (s *store) alreadyAppended(name string, st *stream, exp expectation, events []proposed) (*record, bool) {
	if st == nil || len(events) == 0 {
		return nil, false
	}
	var first uint64
	switch exp.kind {
	case expectRevision:
		first = exp.revision + 1
	case expectNoStream:
		first = 0
	default:
		i, ok := s.ids[events[0].id]
		if !ok || s.log[i].stream != name {
			return nil, false
		}
		first = s.log[i].revision
	}
	if first+uint64(len(events)) > uint64(len(st.records)) {
		return nil, false
	}
	for k, e := range events {
		if s.log[st.records[first+uint64(k)]].id != e.id {
			return nil, false
		}
	}
	return s.log[st.records[first+uint64(len(events))-1]], true
}

// readStream returns up to count visible records of name, forwards from
// revision from (inclusive) or backwards from it (inclusive). ok is false
// when the stream has no visible records.
func (s *store) readStream(name string, from uint64, fromEnd, backwards bool, count uint64) (out []*record, ok bool) {
	st := s.streams[name]
	if !st.visible() {
		return nil, false
	}
	visible := st.records[st.truncateBefore:]
	if strings.HasPrefix(name, "$$") {
		// Metastreams keep only their last event.
		visible = visible[len(visible)-1:]
	}
	if !backwards {
		if fromEnd {
			return nil, true
		}
		for _, i := range visible {
			if uint64(len(out)) == count {
				break
			}
			if s.log[i].revision >= from {
				out = append(out, s.log[i])
			}
		}
		return out, true
	}
	for k := len(visible) - 1; k >= 0; k-- {
		if uint64(len(out)) == count {
			break
		}
		r := s.log[visible[k]]
		if fromEnd || r.revision <= from {
			out = append(out, r)
		}
	}
	return out, true
}

// validPosition reports whether a $all read or subscription may start at
// pos: the start, an event's position, or the end of the log and beyond.
// EventStoreDB cannot start reading inside a record and answers
// "Trying to read from an invalid position".
func (s *store) validPosition(pos uint64) bool {
	if pos == 0 || pos >= s.nextPos {
		return true
	}
	i := s.indexFrom(pos)
	return i < len(s.log) && s.log[i].position == pos
}

// indexAfter is the index of the first record with position > pos.
func (s *store) indexAfter(pos uint64) int {
	return sort.Search(len(s.log), func(i int) bool { return s.log[i].position > pos })
}

// indexFrom is the index of the first record with position >= pos.
func (s *store) indexFrom(pos uint64) int {
	return sort.Search(len(s.log), func(i int) bool { return s.log[i].position >= pos })
}

// filter is a server-side subscription or read filter.
type filter struct {
	onType   bool
	re       *regexp.Regexp
	prefixes []string
	// checkpointEvery is the number of records considered between two
	// checkpoints of a filtered $all subscription.
	checkpointEvery int
}

func newFilter(o *api.ReadReq_Options_FilterOptions) (*filter, error) {
	if o == nil {
		return nil, nil
	}
	f := &filter{}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	switch {
	case o.GetStreamIdentifier() != nil:
		expr = o.GetStreamIdentifier()
	case o.GetEventType() != nil:
		f.onType = true
		expr = o.GetEventType()
	default:
		return nil, fmt.Errorf("filter has neither a stream nor an event type expression")
	}
	if expr.GetRegex() != "" {
		re, err := regexp.Compile(expr.GetRegex())
		if err != nil {
			return nil, fmt.Errorf("filter regex: %w", err)
		}
		f.re = re
	}
	f.prefixes = expr.GetPrefix()
	window := int(o.GetMax())
	if window == 0 {
		window = defaultSearchWindow
	}
	multiplier := int(o.GetCheckpointIntervalMultiplier())
	if multiplier == 0 {
		multiplier = 1
	}
	f.checkpointEvery = window * multiplier
	return f, nil
}

func (f *filter) match(r *record) bool {
	if f == nil {
		return true
	}
	subject := r.stream
	if f.onType {
		subject = r.typ
	}
	if f.re != nil && f.re.MatchString(subject) {
		return true
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}
