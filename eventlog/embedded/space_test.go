package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/herald-webhooks/herald/eventlog"
)

// mountTmpfs mounts a tmpfs of the given size on a new directory, or skips
// the test saying why it cannot.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; the injected-probe tests cover the logic")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v); the injected-probe tests cover the logic", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: got %v, want ENOSPC eventually", dir, err)
			}
			break
		}
	}
	// Top up the last partial megabyte.
	for size := 1 << 19; size > 0; size /= 2 {
		for {
			if _, err := f.Write(chunk[:size]); err != nil {
				break
			}
		}
	}
	return path
}

type appended struct {
	stream string
	res    eventlog.AppendResult
	data   string
}

// TestDiskFullOnTmpfs fills a real (tmpfs) file system under an open log:
// appends fail with ErrUnavailable and a message naming the directory and
// the free space, the log stays open, and once space is freed appends
// succeed again; nothing acknowledged is lost across a reopen.
func TestDiskFullOnTmpfs(t *testing.T) {
	mnt := mountTmpfs(t, "48m")
	dir := filepath.Join(mnt, "log")
	var logs capture
	opts := Options{Logger: logs.logger(), MinFreeBytes: 8 << 20, MemTableBytes: 4 << 20}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open on tmpfs: %v", err)
	}
	ctx := context.Background()
	var acked []appended
	appendN := func(n int, prefix string) {
		t.Helper()
		for i := range n {
			data := prefix + strings.Repeat("x", i%500)
			res, err := l.Append(ctx, "s", eventlog.Any, eventlog.Event{Type: "t", Data: []byte(data)})
			if err != nil {
				t.Fatalf("Append %s %d: got %v, want nil", prefix, i, err)
			}
			acked = append(acked, appended{"s", res, data})
		}
	}
	appendN(200, "before")

	filler := fill(t, mnt)
	for i := range 3 {
		_, err := l.Append(ctx, "s", eventlog.Any, eventlog.Event{Type: "t", Data: []byte("refused")})
		if !errors.Is(err, eventlog.ErrUnavailable) {
			t.Fatalf("Append %d on a full disk: got %v, want ErrUnavailable", i, err)
		}
		for _, want := range []string{dir, "free", "reserve"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("Append on a full disk: got message %q, want it to mention %q", err, want)
			}
		}
	}
	if !strings.Contains(logs.String(), "refusing appends") {
		t.Fatalf("got log %q, want a warning that appends are refused", logs.String())
	}
	if recs, err := l.ReadStream(ctx, "s", 0, 0); err != nil || len(recs) != len(acked) {
		t.Fatalf("reads on a full disk: got %d records, %v, want %d", len(recs), err, len(acked))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	appendN(200, "after")
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer l.Close()
	recs, err := l.ReadStream(ctx, "s", 0, 0)
	if err != nil || len(recs) != len(acked) {
		t.Fatalf("after reopen: got %d records, %v, want %d", len(recs), err, len(acked))
	}
	for i, a := range acked {
		if recs[i].Position != a.res.Position || string(recs[i].Data) != a.data {
			t.Fatalf("record %d: got position %d %.20q, want %d %.20q", i, recs[i].Position, recs[i].Data, a.res.Position, a.data)
		}
	}
}

// TestReadOnlyFileSystemOnTmpfs opens a log on a file system remounted
// read-only: Open fails with ErrUnavailable; once it is writable again the
// log opens with its records.
func TestReadOnlyFileSystemOnTmpfs(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	dir := filepath.Join(mnt, "log")
	ctx := context.Background()
	l := openTest(t, dir, Options{})
	res, err := l.Append(ctx, "s", eventlog.NoStream, eventlog.Event{Type: "t", Data: []byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot remount read-only: %v", err)
	}
	_, err = Open(dir, Options{Logger: quietLogger()})
	if !errors.Is(err, eventlog.ErrUnavailable) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open on a read-only file system: got %v, want ErrUnavailable naming %s", err, dir)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT, ""); err != nil {
		t.Fatalf("remount read-write: %v", err)
	}
	l = openTest(t, dir, Options{})
	defer l.Close()
	recs, err := l.ReadAll(ctx, eventlog.Start, 0)
	if err != nil || len(recs) != 1 || recs[0].Position != res.Position || string(recs[0].Data) != "kept" {
		t.Fatalf("after remounting read-write: got %v, %v, want the one record", recs, err)
	}
}

// TestSpaceProbe drives the free-space check with an injected probe: low
// space and a read-only file system refuse appends without touching
// Pebble, and appends resume when the condition clears.
func TestSpaceProbe(t *testing.T) {
	var avail atomic.Uint64
	var readOnly atomic.Bool
	avail.Store(1 << 30)
	probe := func(string) (diskState, error) {
		return diskState{avail: avail.Load(), readOnly: readOnly.Load()}, nil
	}
	dir := t.TempDir()
	l := openTest(t, dir, Options{MinFreeBytes: 64 << 20, diskProbe: probe})
	defer l.Close()
	ctx := context.Background()
	ev := eventlog.Event{Type: "t", Data: []byte("x")}
	if _, err := l.Append(ctx, "s", eventlog.NoStream, ev); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		avail    uint64
		readOnly bool
		want     string // "" means the append succeeds
	}{
		{"BelowReserve", 10 << 20, false, "10.0 MiB free"},
		{"ZeroFree", 0, false, "0 B free"},
		{"ReadOnly", 1 << 30, true, "read-only"},
		{"Recovered", 1 << 30, false, ""},
		{"JustAboveReserve", 65 << 20, false, ""},
	}
	version := uint64(0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			avail.Store(c.avail)
			readOnly.Store(c.readOnly)
			res, err := l.Append(ctx, "s", eventlog.Exact(version), ev)
			if c.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				version = res.Version
				return
			}
			if !errors.Is(err, eventlog.ErrUnavailable) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("got %v, want ErrUnavailable mentioning %q and %s", err, c.want, dir)
			}
		})
	}
	recs, _ := l.ReadStream(ctx, "s", 0, 0)
	if uint64(len(recs)) != version+1 {
		t.Fatalf("got %d records, want %d (refused appends wrote nothing)", len(recs), version+1)
	}
}
