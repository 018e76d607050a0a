package embedded

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/herald-webhooks/herald/eventlog"
)

const (
	// tailPadding is how many zero bytes the last acknowledged record
	// leaves at the end of its WAL block: more than a recyclable chunk
	// header, less than a sync chunk header, so Pebble pads instead of
	// starting a chunk.
	tailPadding = 15
	// tailFillBytes is the data size of the records that fill a WAL
	// block before the padded one.
	tailFillBytes = 4000
	// tailProbeBytes is the data size of the record whose WAL growth
	// calibrates the padded record's size.
	tailProbeBytes = 1000
	// tailPaddedRoom is the most room the padded record may have to fill:
	// its value length stays a two-byte varint.
	tailPaddedRoom = 12000
	// tailUnackedEvents and tailUnackedBytes shape the append a kill
	// interrupts: one WAL record spanning three 32 KiB blocks.
	tailUnackedEvents = 3
	tailUnackedBytes  = 25000
	// tailRecycledUnackedBytes is the event size of that append in a
	// recycled WAL: a record over two pages but in short chunks, because
	// Pebble's reader searches a chunk that fails its checksum for a bit
	// flip, in time quadratic in the chunk's length.
	tailRecycledUnackedBytes = 3000
	// tailRecycledRecords fills the WAL that is later recycled.
	tailRecycledRecords = 60
	// tailFirstWALRecords is how many records precede the unacknowledged
	// append in a new store's first WAL.
	tailFirstWALRecords = 3
)

// walState is a log closed after its WAL was captured twice while open:
// once after the acknowledged appends (before) and once after one more
// append (after) whose write a kill may cut anywhere.
type walState struct {
	dir, wal      string // the closed log and its newest WAL
	before, after []byte // the WAL's bytes while open
	acked         []eventlog.Record
	from, to      int64 // where the last append's bytes start and end in after
}

func tailEvent(size int) eventlog.Event {
	return eventlog.Event{Type: "t", Data: bytes.Repeat([]byte{'x'}, size)}
}

func mustAppend(t *testing.T, l *Log, events ...eventlog.Event) {
	t.Helper()
	if _, err := l.Append(context.Background(), "s", eventlog.Any, events...); err != nil {
		t.Fatal(err)
	}
}

// captureWAL closes l, having read its newest WAL before and after the
// unacknowledged append (which it makes), and returns the state.
func captureWAL(t *testing.T, dir string, l *Log, eventBytes int) walState {
	t.Helper()
	wal := newest(t, dir, ".log")
	acked, err := l.ReadAll(context.Background(), eventlog.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	var events []eventlog.Event
	for range tailUnackedEvents {
		events = append(events, tailEvent(eventBytes))
	}
	mustAppend(t, l, events...)
	after, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if newest(t, dir, ".log") != wal {
		t.Fatalf("newest WAL changed from %s while appending", wal)
	}
	// The append's bytes are where the two captures differ.
	from := 0
	for from < min(len(before), len(after)) && before[from] == after[from] {
		from++
	}
	to := len(after)
	for to > from && to <= len(before) && before[to-1] == after[to-1] {
		to--
	}
	if to-from < tailUnackedEvents*eventBytes {
		t.Fatalf("the unacknowledged append changed %d WAL bytes, want at least %d", to-from, tailUnackedEvents*eventBytes)
	}
	return walState{dir: dir, wal: wal, before: before, after: after, acked: acked, from: int64(from), to: int64(to)}
}

// killedAt is the WAL a kill leaves when it cuts the last append's write
// at offset cut: what was written up to there, and the file's earlier
// bytes after it.
func (s walState) killedAt(cut int64) []byte {
	b := slices.Clone(s.after[:cut])
	if int(cut) < len(s.before) {
		b = append(b, s.before[cut:]...)
	}
	return b
}

// checkTail runs Open's WAL check on wal as the newest WAL of a scratch
// directory and returns what it logged.
func checkTail(t *testing.T, name string, wal []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), wal, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs capture
	if err := checkWALTail(vfs.Default, dir, logs.logger()); err != nil {
		t.Fatalf("WAL check: got error %v, want nil", err)
	}
	return logs.String()
}

// openKilled opens a copy of the state's log with its WAL replaced and
// checks that it opens, that the acknowledged records are all there and
// nothing else, and returns what Open logged.
func openKilled(t *testing.T, s walState, wal []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(s.dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(s.wal)), wal, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs capture
	l, err := Open(dir, Options{Logger: logs.logger(), MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	defer l.Close()
	recs, err := l.ReadAll(context.Background(), eventlog.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(s.acked) {
		t.Fatalf("got %d records, want the %d acknowledged ones", len(recs), len(s.acked))
	}
	for i, r := range recs {
		if r.Position != s.acked[i].Position || !bytes.Equal(r.Data, s.acked[i].Data) {
			t.Fatalf("record %d: got position %d, want %d with its data", i, r.Position, s.acked[i].Position)
		}
	}
	return logs.String()
}

// firstWALState builds a fresh log, whose first WAL Pebble writes in the
// recyclable chunk format (the store moves to the WAL sync format only
// after creating it), with a few acknowledged records and an
// unacknowledged append that spans three blocks.
func firstWALState(t *testing.T) walState {
	dir := t.TempDir()
	l := openTest(t, dir, Options{})
	for range tailFirstWALRecords {
		mustAppend(t, l, tailEvent(tailFillBytes))
	}
	return captureWAL(t, dir, l, tailUnackedBytes)
}

// paddedState builds a reopened log (so its WAL has the sync chunk
// format) whose last acknowledged record ends tailPadding bytes before
// the end of the first WAL block, so Pebble pads the block with zeros,
// and whose unacknowledged append fills the next three blocks.
func paddedState(t *testing.T) walState {
	dir := t.TempDir()
	if err := openTest(t, dir, Options{}).Close(); err != nil {
		t.Fatal(err)
	}
	l := openTest(t, dir, Options{})
	wal := newest(t, dir, ".log")
	o := fileSize(t, wal)
	mustAppend(t, l, tailEvent(tailProbeBytes))
	grow := fileSize(t, wal) - o
	for walBlockSize-tailPadding-fileSize(t, wal) > tailPaddedRoom {
		mustAppend(t, l, tailEvent(tailFillBytes))
	}
	need := walBlockSize - tailPadding - fileSize(t, wal)
	mustAppend(t, l, tailEvent(int(need-grow)+tailProbeBytes))
	if got := fileSize(t, wal); got != walBlockSize {
		t.Fatalf("WAL after the padded record: got %d bytes, want %d (a full block)", got, walBlockSize)
	}
	return captureWAL(t, dir, l, tailUnackedBytes)
}

// recycledState builds a log whose newest WAL reuses the file of an
// older, larger WAL (Pebble recycles WAL files after a flush), so the old
// WAL's bytes follow the new one's.
func recycledState(t *testing.T) walState {
	dir := t.TempDir()
	l := openTest(t, dir, Options{})
	for range tailRecycledRecords {
		mustAppend(t, l, tailEvent(tailFillBytes))
	}
	// The first flush retires the big WAL into the recycler, the second
	// takes it for the new WAL.
	for range 2 {
		if err := l.db.Flush(); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, tailEvent(tailProbeBytes))
	}
	s := captureWAL(t, dir, l, tailRecycledUnackedBytes)
	if !recycledLeftovers(s.after, uint32(walNum(t, s.wal))) || s.to >= int64(len(s.after)) {
		t.Fatalf("newest WAL %s (%d bytes, this log's up to %d): want a recycled file ending in an older WAL's EOF trailer", s.wal, len(s.after), s.to)
	}
	return s
}

func walNum(t *testing.T, path string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(filepath.Base(path), "%06d.log", &n); err != nil {
		t.Fatalf("WAL name %s: %v", path, err)
	}
	return n
}

// TestKilledWALTailsOpenQuietly cuts the write of an unacknowledged
// append where a kill can cut it (at page boundaries, which include the
// block and so the chunk boundaries inside one record), after a block end
// padded with zeros and in a recycled WAL file, and checks that Open's WAL
// check logs no warning for any of them, and that the log opens with
// exactly the acknowledged records.
func TestKilledWALTailsOpenQuietly(t *testing.T) {
	cases := []struct {
		name  string
		state func(t *testing.T) walState
	}{
		{"FirstWAL", firstWALState},
		{"AfterPaddedBlock", paddedState},
		{"RecycledFile", recycledState},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.state(t)
			name := filepath.Base(s.wal)
			var cuts []int64
			for cut := s.from; cut < s.to; cut++ {
				if cut%walPage == 0 || cut == s.from {
					cuts = append(cuts, cut)
				}
			}
			for _, cut := range cuts {
				if logs := checkTail(t, name, s.killedAt(cut)); strings.Contains(logs, "level=WARN") {
					t.Fatalf("write cut at %d (append at %d-%d): got a warning, want none:\n%s", cut, s.from, s.to, logs)
				}
			}
			for _, cut := range []int64{cuts[1], cuts[len(cuts)-1]} {
				if logs := openKilled(t, s, s.killedAt(cut)); strings.Contains(logs, "level=WARN") {
					t.Fatalf("Open after a write cut at %d: got a warning, want none:\n%s", cut, logs)
				}
			}
			t.Logf("%d cuts in the append at %d-%d of %s (%d bytes)", len(cuts), s.from, s.to, name, len(s.after))
		})
	}
}

// TestTruncatedWALTailWarns cuts the same unacknowledged append at
// offsets a kill cannot cut it at (inside a chunk, off a page boundary):
// that is a truncated file, and Open warns, naming the file and offset,
// and opens with the records before it.
func TestTruncatedWALTailWarns(t *testing.T) {
	cases := []struct {
		name  string
		state func(t *testing.T) walState
	}{
		{"FirstWAL", firstWALState},
		{"AfterPaddedBlock", paddedState},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.state(t)
			name := filepath.Base(s.wal)
			var cuts []int64
			for page := (s.from/walPage + 1) * walPage; page < s.to; page += walPage {
				for _, d := range []int64{-100, -19, -11, -1, 1, 5, 11, 15, 19, 100} {
					if cut := page + d; cut > s.from && cut < s.to {
						cuts = append(cuts, cut)
					}
				}
			}
			for _, cut := range cuts {
				logs := checkTail(t, name, s.killedAt(cut))
				if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, name) || !strings.Contains(logs, "offset=") {
					t.Fatalf("WAL truncated at %d (append at %d-%d): got no warning naming %s and the offset, want one:\n%s", cut, s.from, s.to, name, logs)
				}
			}
			if logs := openKilled(t, s, s.killedAt(cuts[len(cuts)/2])); !strings.Contains(logs, "level=WARN") {
				t.Fatalf("Open after a truncation: got no warning, want one:\n%s", logs)
			}
			t.Logf("%d truncations in the append at %d-%d of %s", len(cuts), s.from, s.to, name)
		})
	}
}
