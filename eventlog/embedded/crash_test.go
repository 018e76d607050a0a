package embedded

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/eventlog"
)

const (
	// crashKills is how many times the crash test kills its child.
	crashKills = 24
	// crashWriters is the number of appending goroutines in the child.
	crashWriters = 8
	// crashMaxAcks bounds how many acknowledgements the parent waits for
	// before a kill.
	crashMaxAcks = 400
	// crashChildTimeout bounds one child's life if the parent never kills it.
	crashChildTimeout = 30 * time.Second
	// crashEnvDir names the child's data directory; its presence makes
	// TestHelperProcess act as the child.
	crashEnvDir = "HERALD_EVENTLOG_CRASH_DIR"
	// crashEnvMemTable gives the child's Options.MemTableBytes.
	crashEnvMemTable = "HERALD_EVENTLOG_CRASH_MEMTABLE"
	// crashSmallMemTable is small enough that a child fills several
	// memtables, so Pebble rotates its WAL and, from the second rotation
	// on, reuses an older WAL's file.
	crashSmallMemTable = 256 << 10
)

// crashPayload is the exact data of event i of the append that starts at
// version first of stream: anything else found after a crash is damage.
// Sizes vary so that records straddle WAL blocks.
func crashPayload(stream string, first uint64, i, n int) []byte {
	head := fmt.Sprintf("%s|first=%d|%d/%d|", stream, first, i, n)
	size := int(first*37+uint64(i)*101) % 3000
	return append([]byte(head), bytes.Repeat([]byte{byte('a' + (first+uint64(i))%26)}, size)...)
}

// TestHelperProcess is the crash test's child: it appends in a loop from
// several goroutines and prints each acknowledged append after Append
// returned. It does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("only runs as the crash test's child process")
	}
	memTable, _ := strconv.Atoi(os.Getenv(crashEnvMemTable))
	l, err := Open(dir, Options{Logger: quietLogger(), MinFreeBytes: -1, SkipVerify: true, MemTableBytes: memTable})
	if err != nil {
		fmt.Fprintf(os.Stderr, "child open: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashChildTimeout)
	defer cancel()
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("writer-%d", w)
			recs, err := l.ReadStream(ctx, stream, 0, 0)
			if err != nil {
				fmt.Fprintf(os.Stderr, "child read: %v\n", err)
				os.Exit(2)
			}
			next := uint64(len(recs))
			for ctx.Err() == nil {
				n := 1 + int(next%3)
				events := make([]eventlog.Event, n)
				for i := range events {
					events[i] = eventlog.Event{Type: "crash", Data: crashPayload(stream, next, i, n)}
				}
				expected := eventlog.NoStream
				if next > 0 {
					expected = eventlog.Exact(next - 1)
				}
				res, err := l.Append(ctx, stream, expected, events...)
				if err != nil {
					fmt.Fprintf(os.Stderr, "child append: %v\n", err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d %d %d\n", stream, next, n, res.Position)
				out.Unlock()
				next += uint64(n)
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

type ack struct {
	stream string
	first  uint64
	n      int
	last   eventlog.Position
}

// TestCrashKeepsAcknowledgedAppends kills a child process that appends
// from several goroutines with SIGKILL at random moments, reopens its
// directory each time, and checks that every acknowledged append is there
// in order with its exact contents, that every record present belongs
// to a complete append with the contents the child would have written,
// and that the reopen logged no warning.
func TestCrashKeepsAcknowledgedAppends(t *testing.T) {
	crashTest(t, 0)
}

// TestCrashKeepsAcknowledgedAppendsRecycledWALs is the crash test with a
// memtable small enough that the child rotates its WAL and Pebble reuses
// older WAL files, so kills leave recycled WALs' leftovers after the
// newest WAL's records. It checks that this happened.
func TestCrashKeepsAcknowledgedAppendsRecycledWALs(t *testing.T) {
	if recycled := crashTest(t, crashSmallMemTable); recycled == 0 {
		t.Fatalf("got no kill that left a recycled WAL, want some (memtable %d bytes)", crashSmallMemTable)
	}
}

// crashTest runs the crash test with the child's memtable size (0: the
// default) and returns after how many kills the newest WAL was a
// recycled file.
func crashTest(t *testing.T, memTable int) (recycled int) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	acked := map[string][]ack{}
	total := 0
	for kill := range crashKills {
		want := 1 + rng.IntN(crashMaxAcks)
		acks := runAndKill(t, dir, want, memTable)
		for _, a := range acks {
			acked[a.stream] = append(acked[a.stream], a)
		}
		total += len(acks)
		if newestWALRecycled(t, dir) {
			recycled++
		}
		checkAfterCrash(t, dir, acked, kill)
	}
	t.Logf("%d kills (%d left a recycled WAL), %d acknowledged appends checked", crashKills, recycled, total)
	return recycled
}

// newestWALRecycled reports whether dir's newest WAL ends in an older
// WAL's EOF trailer: its file was recycled and this WAL did not outgrow it.
func newestWALRecycled(t *testing.T, dir string) bool {
	t.Helper()
	wal := newest(t, dir, ".log")
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	return recycledLeftovers(b, uint32(walNum(t, wal)))
}

// runAndKill starts a child on dir, reads acknowledgements until it has
// want of them, kills the child with SIGKILL and returns what was read.
func runAndKill(t *testing.T, dir string, want, memTable int) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, fmt.Sprintf("%s=%d", crashEnvMemTable, memTable))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	var acks []ack
	sc := bufio.NewScanner(stdout)
	for len(acks) < want && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || f[0] != "ack" {
			continue // test framework output
		}
		first, _ := strconv.ParseUint(f[2], 10, 64)
		n, _ := strconv.Atoi(f[3])
		last, _ := strconv.ParseUint(f[4], 10, 64)
		acks = append(acks, ack{f[1], first, n, eventlog.Position(last)})
	}
	cmd.Process.Signal(syscall.SIGKILL)
	// Lines printed before the kill landed are acknowledged too.
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 5 && f[0] == "ack" {
			first, _ := strconv.ParseUint(f[2], 10, 64)
			n, _ := strconv.Atoi(f[3])
			last, _ := strconv.ParseUint(f[4], 10, 64)
			acks = append(acks, ack{f[1], first, n, eventlog.Position(last)})
		}
	}
	err = cmd.Wait()
	if len(acks) < want {
		t.Fatalf("child exited after %d of %d acknowledgements: %v\n%s", len(acks), want, err, stderr.String())
	}
	return acks
}

func checkAfterCrash(t *testing.T, dir string, acked map[string][]ack, kill int) {
	t.Helper()
	var logs capture
	l, err := Open(dir, Options{Logger: logs.logger(), MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("kill %d: reopen (with full verification): got %v, want nil", kill, err)
	}
	defer l.Close()
	// A kill loses no written bytes: a damaged-tail warning would be a
	// false alarm (for instance on the stale bytes of a recycled WAL).
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("kill %d: got warnings on reopen, want none:\n%s", kill, logs.String())
	}
	ctx := context.Background()
	all, err := l.ReadAll(ctx, eventlog.Start, 0)
	if err != nil {
		t.Fatalf("kill %d: ReadAll: %v", kill, err)
	}
	byPos := make(map[eventlog.Position]eventlog.Record, len(all))
	for _, r := range all {
		byPos[r.Position] = r
	}
	// Every acknowledged append is there, at its position, exactly.
	for stream, acks := range acked {
		for _, a := range acks {
			for i := range a.n {
				pos := a.last - eventlog.Position(a.n-1-i)
				r, ok := byPos[pos]
				want := crashPayload(stream, a.first, i, a.n)
				if !ok || r.Stream != stream || r.Version != a.first+uint64(i) || !bytes.Equal(r.Data, want) {
					t.Fatalf("kill %d: acknowledged %s v%d at position %d: got %+v (present %v), want its payload", kill, stream, a.first+uint64(i), pos, r.Stream, ok)
				}
			}
		}
	}
	// Every record present is part of a complete append with the exact
	// payload: nothing half-visible.
	for _, stream := range crashStreams() {
		recs, err := l.ReadStream(ctx, stream, 0, 0)
		if err != nil {
			t.Fatalf("kill %d: ReadStream(%s): %v", kill, stream, err)
		}
		for v := 0; v < len(recs); {
			n := 1 + v%3
			if v+n > len(recs) {
				t.Fatalf("kill %d: %s: append at version %d has %d of its %d records", kill, stream, v, len(recs)-v, n)
			}
			for i := range n {
				r := recs[v+i]
				if want := crashPayload(stream, uint64(v), i, n); !bytes.Equal(r.Data, want) || r.Version != uint64(v+i) {
					t.Fatalf("kill %d: %s v%d: got payload %.40q, want %.40q", kill, stream, r.Version, r.Data, want)
				}
				if i > 0 && r.Position != recs[v+i-1].Position+1 {
					t.Fatalf("kill %d: %s v%d: append's records not contiguous (%d after %d)", kill, stream, r.Version, r.Position, recs[v+i-1].Position)
				}
			}
			v += n
		}
	}
}

func crashStreams() []string {
	s := make([]string, crashWriters)
	for w := range s {
		s[w] = fmt.Sprintf("writer-%d", w)
	}
	return s
}
