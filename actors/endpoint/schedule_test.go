package endpoint

import (
	"testing"
	"time"
)

var (
	t0       = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	defaults = RetryPolicy{}.withDefaults()
)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestSlotAfter(t *testing.T) {
	h := time.Hour
	odd := RetryPolicy{Interval: time.Hour, Window: 150 * time.Minute}  // slots 0, 1h, 2h
	short := RetryPolicy{Interval: time.Hour, Window: 30 * time.Minute} // slot 0 only
	tests := []struct {
		name   string
		p      RetryPolicy
		after  time.Time
		want   time.Time
		wantOK bool
	}{
		{"after the first attempt", defaults, t0, at(h), true},
		{"after an on-time attempt", defaults, at(5 * h), at(6 * h), true},
		{"after a late attempt", defaults, at(5*h + 59*time.Minute), at(6 * h), true},
		{"before t0", defaults, at(-time.Minute), t0, true},
		{"the last slot is the window end", defaults, at(23 * h), at(24 * h), true},
		{"nothing after the window end", defaults, at(24 * h), time.Time{}, false},
		{"nothing after a late last attempt", defaults, at(24*h + time.Second), time.Time{}, false},
		{"non-multiple window: last slot", odd, at(h), at(2 * h), true},
		{"non-multiple window: exhausted", odd, at(2 * h), time.Time{}, false},
		{"window shorter than interval", short, t0, time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := slotAfter(t0, tc.after, tc.p)
			if ok != tc.wantOK || !got.Equal(tc.want) {
				t.Fatalf("slotAfter(t0, t0+%v) = %v, %v; want %v, %v", tc.after.Sub(t0), got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestNextDue(t *testing.T) {
	h := time.Hour
	odd := RetryPolicy{Interval: time.Hour, Window: 150 * time.Minute}
	tests := []struct {
		name      string
		p         RetryPolicy
		lastStart time.Duration // after t0
		now       time.Duration // after t0
		want      time.Duration // after t0
		wantOK    bool
	}{
		{"on the grid", defaults, 2 * h, 2*h + time.Second, 3 * h, true},
		{"due exactly now", defaults, 2 * h, 3 * h, 3 * h, true},
		{"late attempt stays on the grid", defaults, 2*h + 10*time.Minute, 2*h + 10*time.Minute, 3 * h, true},
		{"downtime across slots collapses to now", defaults, 2 * h, 5*h + 30*time.Minute, 5*h + 30*time.Minute, true},
		{"after the collapsed attempt, back on the grid", defaults, 5*h + 30*time.Minute, 5*h + 30*time.Minute, 6 * h, true},
		{"collapse at the window end", defaults, 20 * h, 24 * h, 24 * h, true},
		{"window closed during downtime", defaults, 20 * h, 25 * h, 0, false},
		{"window closed by a minute", defaults, 20 * h, 24*h + time.Minute, 0, false},
		{"last slot a little late", defaults, 23 * h, 24*h + 500*time.Millisecond, 24*h + 500*time.Millisecond, true},
		{"last slot too late", defaults, 23 * h, 24*h + MaxDispatchLateness + time.Millisecond, 0, false},
		{"last slot attempted", defaults, 24 * h, 24 * h, 0, false},
		{"non-multiple window: collapse inside", odd, h, 2*h + 20*time.Minute, 2*h + 20*time.Minute, true},
		{"non-multiple window: closed", odd, h, 2*h + 40*time.Minute, 0, false},
		{"non-multiple window: exhausted", odd, 2 * h, 2 * h, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := nextDue(t0, at(tc.lastStart), at(tc.now), tc.p)
			want := time.Time{}
			if tc.wantOK {
				want = at(tc.want)
			}
			if ok != tc.wantOK || !got.Equal(want) {
				t.Fatalf("nextDue(last t0+%v, now t0+%v) = %v, %v; want %v, %v", tc.lastStart, tc.now, got, ok, want, tc.wantOK)
			}
		})
	}
}

// TestScheduleGrid walks the whole schedule: the default policy gives 25
// attempts at t0 + k·1h, the last at t0+24h.
func TestScheduleGrid(t *testing.T) {
	tests := []struct {
		name     string
		p        RetryPolicy
		attempts int
		last     time.Duration
	}{
		{"defaults", defaults, 25, 24 * time.Hour},
		{"fast", RetryPolicy{Interval: time.Second, Window: 10 * time.Second}, 11, 10 * time.Second},
		{"non-multiple", RetryPolicy{Interval: 7 * time.Minute, Window: time.Hour}, 9, 56 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, last := 1, t0
			for {
				next, ok := nextDue(t0, last, last, tc.p)
				if !ok {
					break
				}
				if want := t0.Add(time.Duration(n) * tc.p.Interval); !next.Equal(want) {
					t.Fatalf("attempt %d at t0+%v, want t0+%v", n+1, next.Sub(t0), want.Sub(t0))
				}
				n, last = n+1, next
			}
			if n != tc.attempts || last.Sub(t0) != tc.last {
				t.Fatalf("got %d attempts, the last at t0+%v; want %d, the last at t0+%v", n, last.Sub(t0), tc.attempts, tc.last)
			}
		})
	}
}

func TestStorageRetryDelay(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second},
		{7, time.Minute}, {100, time.Minute},
	}
	for _, tc := range tests {
		if got := storageRetryDelay(tc.failures); got != tc.want {
			t.Errorf("storageRetryDelay(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func TestPolicyDefaults(t *testing.T) {
	r := RetryPolicy{}.withDefaults()
	if r.Interval != DefaultRetryInterval || r.Window != DefaultRetryWindow {
		t.Errorf("retry defaults: got %+v, want %v/%v", r, DefaultRetryInterval, DefaultRetryWindow)
	}
	b := BatchPolicy{}.withDefaults()
	if b.MaxEvents != DefaultBatchMaxEvents || b.MaxBytes != DefaultBatchMaxBytes || b.Linger != DefaultBatchLinger {
		t.Errorf("batch defaults: got %+v", b)
	}
	if got := (BatchPolicy{Linger: -1}).withDefaults().Linger; got != 0 {
		t.Errorf("negative linger: got %v, want 0 (no wait)", got)
	}
}
