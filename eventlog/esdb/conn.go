package esdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-webhooks/herald/eventlog"
)

// errAttemptTimeout ends an attempt that ran past Options.AttemptTimeout.
var errAttemptTimeout = errors.New("esdb: attempt timed out")

// conn is one esdb.Client and the operations running on it.
//
// The client is retired when it closes itself for good (after failed
// rediscovery it answers every call with ErrorCodeConnectionClosed), and a
// new one takes its place. A retired client is closed only once no
// operation runs on it: esdb.Client.Close closes a channel that a failing
// operation may still send to, and that send would panic.
type conn struct {
	client   *esdb.Client
	gen      uint64
	inflight int
	retired  bool
	closed   bool
}

// acquire returns the current client, making one if there is none, and
// counts the caller as running on it until release.
func (l *Log) acquire() (*conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, eventlog.ErrClosed
	}
	if l.cur == nil {
		cfg := l.cfg
		client, err := esdb.NewClient(&cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: esdb client: %v", eventlog.ErrInvalid, err)
		}
		l.gen++
		l.cur = &conn{client: client, gen: l.gen}
		if l.gen > 1 {
			l.log.Info("esdb: new client", "generation", l.gen)
		}
	}
	l.cur.inflight++
	return l.cur, nil
}

func (l *Log) release(c *conn) {
	l.mu.Lock()
	c.inflight--
	closeNow := c.retired && c.inflight == 0 && !c.closed
	if closeNow {
		c.closed = true
	}
	l.mu.Unlock()
	if closeNow {
		_ = c.client.Close()
	}
}

// retire stops handing c out and closes it once nothing runs on it.
func (l *Log) retire(c *conn) {
	l.mu.Lock()
	if l.cur == c {
		l.cur = nil
		if !l.closed {
			l.log.Info("esdb: client closed for good; the next call makes a new one", "generation", c.gen)
		}
	}
	c.retired = true
	closeNow := c.inflight == 0 && !c.closed
	if closeNow {
		c.closed = true
	}
	l.mu.Unlock()
	if closeNow {
		_ = c.client.Close()
	}
}

// unary runs fn once as a request that ends when fn returns: fn's context
// ends with the caller's, with Close, and after the attempt timeout.
func unary[T any](l *Log, ctx context.Context, fn func(context.Context, *esdb.Client) (T, error)) (T, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	return call(l, ctx, cancel, fn)
}

// call runs fn on a client in a goroutine of its own, and returns when fn
// does, when ctx ends, or when the attempt times out (then abort is called,
// which must end ctx). A call the client library wedges (it can block
// forever sending to a client whose connection loop has exited) therefore
// cannot block its caller; the goroutine stays behind, with the client it
// holds, and since ctx has ended it can start no new request.
func call[T any](l *Log, ctx context.Context, abort context.CancelFunc, fn func(context.Context, *esdb.Client) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var zero T
	c, err := l.acquire()
	if err != nil {
		return zero, err
	}
	done := make(chan result, 1)
	go func() {
		defer l.release(c)
		v, err := fn(ctx, c.client)
		done <- result{v, err}
	}()
	timer := time.NewTimer(l.opts.AttemptTimeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		r.err = ctx.Err()
	case <-timer.C:
		abort()
		r.err = errAttemptTimeout
	}
	if isCode(r.err, esdb.ErrorCodeConnectionClosed) {
		l.retire(c)
	}
	if r.err != nil {
		return zero, r.err
	}
	return r.v, nil
}

// retry runs attempt until it succeeds or fails for good, ctx ends, the log
// closes, or the backoff budget is spent; each retry is logged. What names
// the operation in errors and logs.
func (l *Log) retry(ctx context.Context, what string, attempt func(context.Context) error) error {
	b := l.newBackOff()
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("esdb: %s: %w", what, cerr)
		}
		if l.isClosed() {
			return eventlog.ErrClosed
		}
		if !transient(err) {
			var wrong *eventlog.WrongVersionError
			switch {
			case errors.As(err, &wrong), errors.Is(err, eventlog.ErrInvalid):
				return err
			case status.Code(err) == codes.InvalidArgument:
				// Such as an append over the server's maximum append size.
				return fmt.Errorf("esdb: %s: %w: %w", what, eventlog.ErrInvalid, err)
			}
			return fmt.Errorf("esdb: %s: %w", what, err)
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return fmt.Errorf("esdb: %s: %w: gave up after %d attempts: %w", what, eventlog.ErrUnavailable, n, err)
		}
		l.log.Warn("esdb: retrying", "op", what, "attempt", n, "wait", wait, "err", err)
		if err := l.sleep(ctx, wait); err != nil {
			if errors.Is(err, eventlog.ErrClosed) {
				return err
			}
			return fmt.Errorf("esdb: %s: %w", what, err)
		}
	}
}

// sleep waits for d, ctx, or Close.
func (l *Log) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.ctx.Done():
		return eventlog.ErrClosed
	}
}

func (l *Log) newBackOff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(l.opts.Backoff.Initial),
		backoff.WithMaxInterval(l.opts.Backoff.Max),
		backoff.WithMaxElapsedTime(l.opts.Backoff.Budget),
	)
}

// isCode reports whether err is an *esdb.Error with the code.
func isCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

// transient reports whether err may pass on its own: a lost or closed
// connection, an unavailable or overloaded server, a timeout.
func transient(err error) bool {
	var wrong *eventlog.WrongVersionError
	switch {
	case errors.As(err, &wrong), errors.Is(err, eventlog.ErrInvalid), errors.Is(err, eventlog.ErrClosed):
		return false
	case errors.Is(err, errAttemptTimeout):
		return true
	}
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorCodeConnectionClosed, esdb.ErrorUnavailable, esdb.ErrorCodeDeadlineExceeded,
			esdb.ErrorAborted, esdb.ErrorCodeNotLeader:
			return true
		case esdb.ErrorCodeUnknown:
			// Look at the gRPC status below.
		default:
			return false
		}
	}
	st, ok := status.FromError(err)
	if !ok {
		// Not a gRPC status: the client's own errors ("failed to initiate
		// subscription", discovery giving up) are worth retrying.
		return true
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted,
		codes.Internal, codes.Unknown, codes.Canceled:
		// Canceled reaches here only when the caller's context is alive:
		// the connection under the call was closed.
		return true
	default:
		return false
	}
}
