package eventlog_test

import (
	"context"
	"errors"
	"testing"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/memlog"
)

func TestForEachInStreamPagesInOrderAndStopsOnError(t *testing.T) {
	ctx := context.Background()
	l := memlog.New()
	for range 7 {
		if _, err := l.Append(ctx, "s", eventlog.Any, eventlog.Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	if err := eventlog.ForEachInStream(ctx, l, "s", 2, 2, func(r eventlog.Record) error {
		got = append(got, r.Version)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{2, 3, 4, 5, 6}; len(got) != len(want) || got[0] != 2 || got[4] != 6 {
		t.Fatalf("visited versions %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err := eventlog.ForEachInStream(ctx, l, "s", 0, 3, func(eventlog.Record) error {
		n++
		if n == 4 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 4 {
		t.Fatalf("got %v after %d records, want the callback's error after 4", err, n)
	}
}
