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

	"github.com/herald-webhooks/herald/eventlog"
)

const (
	// corruptRecords is how many records the corruption tests write: enough
	// for a WAL of many 32 KiB blocks.
	corruptRecords   = 3000
	corruptPerAppend = 5
	sectorSize       = 4096
)

// corruptPayload is record i's exact data.
func corruptPayload(i int) []byte {
	return fmt.Appendf(nil, "record %d %s", i, bytes.Repeat([]byte{byte('a' + i%26)}, 100+i%200))
}

// writeCorruptFixture writes corruptRecords records to a new log in dir;
// with flush, the first half goes to an sstable and the rest to the WAL.
func writeCorruptFixture(t *testing.T, dir string, flush bool) {
	t.Helper()
	l := openTest(t, dir, Options{})
	ctx := context.Background()
	for i := 0; i < corruptRecords; i += corruptPerAppend {
		if i == corruptRecords/2 && flush {
			if err := l.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		var events []eventlog.Event
		for j := i; j < i+corruptPerAppend; j++ {
			events = append(events, eventlog.Event{Type: "t", Data: corruptPayload(j)})
		}
		if _, err := l.Append(ctx, fmt.Sprintf("s%d", i%7), eventlog.Any, events...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// newest returns the path of the newest file in dir with the extension.
func newest(t *testing.T, dir, ext string) string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
	slices.Sort(names)
	if len(names) == 0 {
		t.Fatalf("no %s file in %s", ext, dir)
	}
	return names[len(names)-1]
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func truncateTo(size func(n int64) int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		if err := os.Truncate(path, size(fileSize(t, path))); err != nil {
			t.Fatal(err)
		}
	}
}

func patch(at func(n int64) int64, change func(b []byte)) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		off := at(fileSize(t, path))
		buf := make([]byte, sectorSize)
		n, _ := f.ReadAt(buf, off)
		change(buf[:n])
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
	}
}

func flipByte(b []byte) { b[0] ^= 0x40 }

func zeroSector(b []byte) { clear(b) }

// TestCorruption damages a closed log's newest file and checks that Open
// either recovers every record before the damage (warning, naming the
// file, whenever records after it are dropped) or refuses with an error
// naming the file and the offset. Acknowledged records never vanish
// silently.
func TestCorruption(t *testing.T) {
	const (
		refuse = "refuse"
		warn   = "warn"
	)
	cases := []struct {
		name    string
		ext     string // which file: ".log" (WAL) or ".sst"
		flush   bool
		corrupt func(t *testing.T, path string)
		want    string
	}{
		{"TruncateWALTail", ".log", false, truncateTo(func(n int64) int64 { return n - 100 }), warn},
		{"TruncateWALHalf", ".log", false, truncateTo(func(n int64) int64 { return n/2 + 17 }), warn},
		{"ZeroLastWALSector", ".log", false, patch(func(n int64) int64 { return (n - 1) / sectorSize * sectorSize }, zeroSector), warn},
		{"ZeroMiddleWALSector", ".log", false, patch(func(n int64) int64 { return n / 2 / sectorSize * sectorSize }, zeroSector), refuse},
		{"FlipByteInLastWALRecord", ".log", false, patch(func(n int64) int64 { return n - 60 }, flipByte), warn},
		{"FlipByteMidWAL", ".log", false, patch(func(n int64) int64 { return n / 2 }, flipByte), refuse},
		{"FlipByteMidSSTable", ".sst", true, patch(func(n int64) int64 { return n / 3 }, flipByte), refuse},
		{"ZeroSSTableSector", ".sst", true, patch(func(n int64) int64 { return n / 3 / sectorSize * sectorSize }, zeroSector), refuse},
	}
	fixtures := map[bool]string{false: t.TempDir(), true: t.TempDir()}
	for flush, dir := range fixtures {
		writeCorruptFixture(t, dir, flush)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(fixtures[c.flush])); err != nil {
				t.Fatal(err)
			}
			path := newest(t, dir, c.ext)
			c.corrupt(t, path)
			var logs capture
			l, err := Open(dir, Options{Logger: logs.logger(), MinFreeBytes: -1})
			name := filepath.Base(path)
			if err != nil {
				if c.want != refuse {
					t.Fatalf("Open: got error %v, want it to open with a warning", err)
				}
				if !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), strings.TrimSuffix(name, c.ext)) {
					t.Fatalf("Open error %q: want it to name the damaged file %s", err, name)
				}
				if c.ext == ".log" && !strings.Contains(err.Error(), "offset") {
					t.Fatalf("Open error %q: want it to name the offset", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			defer l.Close()
			if c.want == refuse {
				t.Fatalf("Open: got a log (logs: %s), want an error naming %s", logs.String(), name)
			}
			recs, err := l.ReadAll(context.Background(), eventlog.Start, 0)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			for i, r := range recs {
				if r.Position != eventlog.Position(i+1) || !bytes.Equal(r.Data, corruptPayload(i)) {
					t.Fatalf("record %d: got position %d data %.30q, want position %d and its payload", i, r.Position, r.Data, i+1)
				}
			}
			if len(recs) < corruptRecords {
				out := logs.String()
				if !strings.Contains(out, "level=WARN") || !strings.Contains(out, name) || !strings.Contains(out, "offset") {
					t.Fatalf("%d of %d records survived but the log shows no warning naming %s and the offset:\n%s", len(recs), corruptRecords, name, out)
				}
			}
			t.Logf("recovered %d of %d records", len(recs), corruptRecords)
			// The log takes appends after recovery.
			if _, err := l.Append(context.Background(), "after", eventlog.NoStream, eventlog.Event{Type: "t"}); err != nil {
				t.Fatalf("Append after recovery: %v", err)
			}
		})
	}
}
