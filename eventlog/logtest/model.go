package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/memlog"
)

// Sizes of the property test: enough operations to interleave conflicts,
// few enough that a durable backend (one fsync per append) stays fast.
const (
	modelMaxOps        = 40
	modelMaxEvents     = 3
	modelMaxReadLimit  = 6
	modelMaxDataBytes  = 64
	modelWrongVersions = 4 // how far a deliberately wrong Exact may stray
)

// modelStreams are the streams the property test draws from: few, so that
// conflicts are common, and prefixes of each other on purpose.
var modelStreams = []string{"t", "t1", "t-ü", "endpoint-😀", "endpoint-😀x"}

// RunModel checks with random operations that a backend agrees with the
// memlog model: random appends to random streams with random (often
// wrong) expected versions, interleaved with ReadStream and ReadAll. Both
// must give the same error kinds, versions and records; positions are
// compared by order, since a backend's positions may be sparse.
//
// One backend log serves every check (opening a durable log a hundred
// times would dominate the run): each check uses its own stream names
// (a per-check prefix) and reads only the positions after those of the
// checks before it.
func RunModel(t *testing.T, open Opener) {
	l := open(t)
	defer l.Close()
	var (
		checks int
		base   eventlog.Position
	)
	rapid.Check(t, func(rt *rapid.T) {
		m := memlog.New()
		defer m.Close()
		checks++
		c := &modelCheck{l: l, m: m, prefix: fmt.Sprintf("check%d:", checks), base: base}
		defer func() {
			if len(c.positions) > 0 {
				base = c.positions[len(c.positions)-1]
			}
		}()
		ops := rapid.IntRange(1, modelMaxOps).Draw(rt, "ops")
		for range ops {
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0, 1, 2, 3, 4, 5:
				c.append(rt)
			case 6, 7:
				c.readStream(rt)
			default:
				c.readAll(rt)
			}
		}
		c.readAllCompare(rt, 0, 0)
	})
}

type modelCheck struct {
	l, m   eventlog.Log
	prefix string            // added to the backend's stream names
	base   eventlog.Position // the backend's last position before the check
	// positions[i] is the backend's position of the model's record i+1.
	positions []eventlog.Position
}

func (c *modelCheck) modelVersion(stream string) int64 {
	recs, _ := c.m.ReadStream(context.Background(), stream, 0, 0)
	return int64(len(recs)) - 1
}

func (c *modelCheck) append(t *rapid.T) {
	ctx := context.Background()
	stream := rapid.SampledFrom(modelStreams).Draw(t, "stream")
	current := c.modelVersion(stream)
	var expected eventlog.ExpectedVersion
	switch rapid.IntRange(0, 4).Draw(t, "expectedKind") {
	case 0:
		expected = eventlog.Any
	case 1:
		expected = eventlog.NoStream
	case 2, 3:
		if current >= 0 {
			expected = eventlog.Exact(uint64(current))
		} else {
			expected = eventlog.NoStream
		}
	default:
		v := current + int64(rapid.IntRange(-modelWrongVersions, modelWrongVersions).Draw(t, "delta"))
		if v < 0 {
			v = 0
		}
		expected = eventlog.Exact(uint64(v))
	}
	n := rapid.IntRange(0, modelMaxEvents).Draw(t, "events")
	events := make([]eventlog.Event, n)
	for i := range events {
		events[i] = eventlog.Event{
			Type: rapid.SampledFrom([]string{"queued", "attempt", "delivered"}).Draw(t, "type"),
			Data: rapid.SliceOfN(rapid.Byte(), 0, modelMaxDataBytes).Draw(t, "data"),
		}
	}
	wantRes, wantErr := c.m.Append(ctx, stream, expected, events...)
	gotRes, gotErr := c.l.Append(ctx, c.prefix+stream, expected, events...)
	if err := c.sameErrorKind(gotErr, wantErr); err != nil {
		t.Fatalf("Append(%q, %v, %d events): %v", stream, expected, n, err)
	}
	if wantErr != nil {
		return
	}
	if gotRes.Version != wantRes.Version {
		t.Fatalf("Append(%q, %v): got version %d, want %d", stream, expected, gotRes.Version, wantRes.Version)
	}
	// The model's positions are dense: the append took the last n of them.
	first := len(c.positions)
	for range n {
		c.positions = append(c.positions, 0)
	}
	if first > 0 && gotRes.Position <= c.positions[first-1] {
		t.Fatalf("Append(%q): got position %d, want > %d (the previous append's)", stream, gotRes.Position, c.positions[first-1])
	}
	c.positions[len(c.positions)-1] = gotRes.Position
	// Learn the positions of the other events from ReadAll.
	recs, err := c.l.ReadAll(ctx, c.before(first), n)
	if err != nil || len(recs) != n {
		t.Fatalf("ReadAll after append: got %d records, %v, want %d", len(recs), err, n)
	}
	for i, r := range recs {
		c.positions[first+i] = r.Position
	}
	if recs[n-1].Position != gotRes.Position {
		t.Fatalf("append's last record: got position %d from ReadAll, want %d from AppendResult", recs[n-1].Position, gotRes.Position)
	}
}

// before is the backend position after which model record index i+1 comes.
func (c *modelCheck) before(i int) eventlog.Position {
	if i == 0 {
		return c.base
	}
	return c.positions[i-1]
}

func (c *modelCheck) readStream(t *rapid.T) {
	ctx := context.Background()
	stream := rapid.SampledFrom(modelStreams).Draw(t, "stream")
	from := uint64(rapid.IntRange(0, 8).Draw(t, "from"))
	limit := rapid.IntRange(0, modelMaxReadLimit).Draw(t, "limit")
	want, wantErr := c.m.ReadStream(ctx, stream, from, limit)
	got, gotErr := c.l.ReadStream(ctx, c.prefix+stream, from, limit)
	if err := c.sameErrorKind(gotErr, wantErr); err != nil {
		t.Fatalf("ReadStream(%q, %d, %d): %v", stream, from, limit, err)
	}
	if err := c.sameRecords(got, want); err != nil {
		t.Fatalf("ReadStream(%q, %d, %d): %v", stream, from, limit, err)
	}
}

func (c *modelCheck) readAll(t *rapid.T) {
	after := rapid.IntRange(0, len(c.positions)).Draw(t, "after")
	limit := rapid.IntRange(0, modelMaxReadLimit).Draw(t, "limit")
	c.readAllCompare(t, after, limit)
}

func (c *modelCheck) readAllCompare(t *rapid.T, after, limit int) {
	ctx := context.Background()
	want, wantErr := c.m.ReadAll(ctx, eventlog.Position(after), limit)
	got, gotErr := c.l.ReadAll(ctx, c.before(after), limit)
	if err := c.sameErrorKind(gotErr, wantErr); err != nil {
		t.Fatalf("ReadAll(after record %d, %d): %v", after, limit, err)
	}
	if err := c.sameRecords(got, want); err != nil {
		t.Fatalf("ReadAll(after record %d, %d): %v", after, limit, err)
	}
}

func (c *modelCheck) sameRecords(got, want []eventlog.Record) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Stream != c.prefix+w.Stream || g.Version != w.Version || g.Type != w.Type || !bytes.Equal(g.Data, w.Data) {
			return fmt.Errorf("record %d: got %s, want %s", i, describe(g), describe(w))
		}
		if wantPos := c.positions[w.Position-1]; g.Position != wantPos {
			return fmt.Errorf("record %d: got position %d, want %d (model position %d)", i, g.Position, wantPos, w.Position)
		}
	}
	return nil
}

// sameErrorKind compares errors by kind: nil, ErrInvalid, ErrClosed, or a
// WrongVersionError with the same fields.
func (c *modelCheck) sameErrorKind(got, want error) error {
	if want == nil {
		if got != nil {
			return fmt.Errorf("got error %v, want nil", got)
		}
		return nil
	}
	var wantWV, gotWV *eventlog.WrongVersionError
	if errors.As(want, &wantWV) {
		if !errors.As(got, &gotWV) || gotWV.Stream != c.prefix+wantWV.Stream || gotWV.Expected != wantWV.Expected || gotWV.Actual != wantWV.Actual {
			return fmt.Errorf("got error %v, want %v", got, want)
		}
		return nil
	}
	for _, kind := range []error{eventlog.ErrInvalid, eventlog.ErrClosed} {
		if errors.Is(want, kind) && !errors.Is(got, kind) {
			return fmt.Errorf("got error %v, want %v", got, want)
		}
	}
	return nil
}
