package clock

import (
	"context"
	"testing"
	"time"
)

func TestFakeFiresInDueOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	c := NewFake(t0)
	var fired []time.Duration
	for _, d := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
		c.AfterFunc(d, func() { fired = append(fired, c.Now().Sub(t0)) })
	}
	c.Advance(150 * time.Minute)
	if got, want := len(fired), 2; got != want {
		t.Fatalf("fired %d timers after 2.5h, want %d", got, want)
	}
	if fired[0] != time.Hour || fired[1] != 2*time.Hour {
		t.Fatalf("fired at %v, want [1h 2h] (each timer sees its own due time)", fired)
	}
	if got, want := c.Now().Sub(t0), 150*time.Minute; got != want {
		t.Fatalf("clock reads t0+%v, want t0+%v", got, want)
	}
	if got := c.Pending(); got != 1 {
		t.Fatalf("pending %d, want 1", got)
	}
}

func TestFakeStop(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	fired := false
	tm := c.AfterFunc(time.Second, func() { fired = true })
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	if tm.Stop() {
		t.Fatal("second Stop returned true")
	}
	c.Advance(time.Minute)
	if fired {
		t.Fatal("stopped timer fired")
	}
}

func TestFakeTimerArmedWhileFiring(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	var count int
	var arm func()
	arm = func() {
		count++
		if count < 5 {
			c.AfterFunc(time.Second, arm)
		}
	}
	c.AfterFunc(time.Second, arm)
	c.Advance(10 * time.Second)
	if count != 5 {
		t.Fatalf("re-armed timer fired %d times within 10s, want 5", count)
	}
}

func TestFakeWaitFor(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go c.AfterFunc(time.Minute, func() {})
	if err := c.WaitFor(ctx, func(c *Fake) bool { return c.Pending() == 1 }); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := c.WaitFor(short, func(c *Fake) bool { return c.Pending() == 2 }); err == nil {
		t.Fatal("WaitFor on a condition that never holds returned nil")
	}
}

func TestRealClockAfterFunc(t *testing.T) {
	done := make(chan struct{})
	Real().AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("real AfterFunc did not fire within 10s")
	}
}
