package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"

	"github.com/herald-webhooks/herald/eventlog"
)

// Pebble's WAL chunk format (record package): 32 KiB blocks of chunks,
// each chunk header crc(4) len(2) type(1) [logNum(4) [syncOffset(8)]].
const (
	walBlockSize         = 32 << 10
	walRecyclableHeader  = 11
	walSyncHeader        = 19
	walFirstRecyclable   = 5 // chunk types 5-8: recyclable format
	walFirstSync         = 9 // chunk types 9-12: WAL sync format
	walLastChunkEncoding = 12
	// walTrailerType is the chunk type of the EOF trailer a clean close
	// writes: a recyclable full chunk with no checksum or payload whose
	// log number is the log's plus one.
	walTrailerType = walFirstRecyclable
	// walPage is the granularity at which a killed process's last write
	// can stop short. Linux copies a buffered write into the page cache
	// one page (folio) at a time and checks for a fatal signal between
	// them, and every page size is a multiple of 4 KiB.
	walPage = 4 << 10
)

var walCRCTable = crc32.MakeTable(crc32.Castagnoli)

// checkWALTail reads the newest WAL in dir with Pebble's own reader before
// Pebble replays it, to say what replay will do in words an operator can
// act on. Pebble's reader decides corruption: a chunk that fails, followed
// in a later block by a chunk of this WAL that promises the log was synced
// past it. Open refuses, naming the file and the offset (Pebble refuses
// too, less legibly). When the reader reports an unclean end instead,
// classifyWALTail tells a process kill's end from damage.
func checkWALTail(fs vfs.FS, dir string, logger *slog.Logger) error {
	logs, err := wal.Scan(wal.Dir{FS: fs, Dirname: dir})
	if err != nil || len(logs) == 0 {
		return nil // no WAL yet, or unreadable: Pebble's Open reports it
	}
	ll := logs[len(logs)-1]
	r := ll.OpenForRead()
	defer r.Close()
	for {
		_, off, err := r.NextRecord()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		file, at := off.PhysicalFile, off.Physical
		if errors.Is(err, record.ErrInvalidChunk) || errors.Is(err, record.ErrZeroedChunk) {
			return fmt.Errorf("open event log %s: WAL %s is corrupt at offset %d (later records were synced after it): %v", dir, file, at, err)
		}
		if !errors.Is(err, record.ErrUnexpectedEOF) {
			return fmt.Errorf("open event log %s: read WAL %s at offset %d: %w", dir, file, at, err)
		}
		return classifyWALTail(fs, dir, file, uint32(ll.Num), at, logger)
	}
}

// classifyWALTail looks at the bytes of file after offset at, where the
// last complete record ended and Pebble will stop replaying.
//
// Pebble writes the WAL sequentially, in whole chunks, and syncs before
// it acknowledges. A kill keeps every byte written (the page cache
// survives the process), so what a kill leaves after the last complete
// record is: whole chunks of an unfinished record; then possibly the
// start of a chunk whose write the kill cut short at a page boundary;
// then the end of the file, or the leftovers of the older WAL the file
// was recycled from, which end in that WAL's EOF trailer. None of it was
// synced, so none of it was acknowledged. Anything else is damage.
func classifyWALTail(fs vfs.FS, dir, file string, logNum uint32, at int64, logger *slog.Logger) error {
	tail, err := readFrom(fs, file, at)
	if err != nil {
		return fmt.Errorf("open event log %s: read WAL %s: %w", dir, file, err)
	}
	crashEnd := func(what string) error {
		logger.Info("WAL ended without a clean close (a crash): "+what+"; every complete record is kept", "wal", file, "offset", at, "tail_bytes", len(tail))
		return nil
	}
	if len(tail) == 0 {
		return crashEnd("at a record boundary")
	}
	n := validChunks(tail, logNum, at)
	if n == len(tail) {
		return crashEnd("in an unfinished, unacknowledged record")
	}
	rest, q := tail[n:], at+int64(n)
	later, syncedPast := findChunk(rest, logNum, q)
	if syncedPast >= 0 {
		return fmt.Errorf("open event log %s: WAL %s is corrupt at offset %d: a complete chunk at offset %d says the log was synced past it; refusing to drop acknowledged records", dir, file, q, syncedPast)
	}
	// A later whole chunk of this log means the bytes before it were
	// written whole: damage, whatever their shape.
	if later < 0 {
		if what := killCut(rest, q, logNum); what != "" {
			return crashEnd(what)
		}
	}
	logger.Warn("WAL has a damaged tail: records after the offset are dropped, and they may include acknowledged appends (a torn write loses only unacknowledged ones)",
		"wal", file, "offset", at, "damage_offset", q, "dropped_bytes", len(tail))
	return nil
}

// killCut says what a kill left in rest, the bytes from file offset q
// (the end of the whole chunks of log logNum) to the end of the file, or
// "" if a kill cannot leave them: either the leftovers of a recycled WAL
// from q on, or a chunk of this log cut off at a page boundary p > q,
// followed by the end of the file or by recycled leftovers.
func killCut(rest []byte, q int64, logNum uint32) string {
	const (
		cutShort = "in a write cut short at a page boundary, unacknowledged"
		recycled = "at the leftovers of the older WAL this file was recycled from"
	)
	eof := q + int64(len(rest))
	chunkEnd := int64(math.MaxInt64) // unknown while the header is cut off
	if len(rest) >= walRecyclableHeader {
		if headerLogNum(rest) != logNum {
			if recycledLeftovers(rest, logNum) {
				return recycled
			}
			return ""
		}
		hdr := walRecyclableHeader
		if rest[6] >= walFirstSync {
			hdr = walSyncHeader
		}
		if len(rest) >= hdr {
			chunkEnd = q + int64(hdr) + int64(binary.LittleEndian.Uint16(rest[4:]))
		}
	}
	if eof%walPage == 0 && eof < chunkEnd {
		return cutShort // p is the end of the file
	}
	if p := (q/walPage + 1) * walPage; p < chunkEnd && p <= eof-walRecyclableHeader && recycledLeftovers(rest, logNum) {
		return cutShort + ", then " + recycled
	}
	return ""
}

// recycledLeftovers reports whether b ends the file with the EOF trailer
// of an older log: the file was recycled (Pebble reuses only WALs it
// closed), so bytes not written by log logNum may follow its last write.
func recycledLeftovers(b []byte, logNum uint32) bool {
	if len(b) < walRecyclableHeader {
		return false
	}
	t := b[len(b)-walRecyclableHeader:]
	trailerOf := binary.LittleEndian.Uint32(t[7:11]) // log number + 1
	return binary.LittleEndian.Uint32(t) == 0 && binary.LittleEndian.Uint16(t[4:]) == 0 &&
		t[6] == walTrailerType && trailerOf > 0 && trailerOf <= logNum
}

func readFrom(fs vfs.FS, file string, at int64) ([]byte, error) {
	f, err := fs.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() <= at {
		return nil, nil
	}
	buf := make([]byte, st.Size()-at)
	if _, err := f.ReadAt(buf, at); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// validChunks is how many bytes at the start of tail (file offset base)
// are whole chunks of log logNum with good checksums, with the zero
// padding Pebble leaves at a block's end when no chunk header fits (its
// reader accepts up to a sync header's worth).
func validChunks(tail []byte, logNum uint32, base int64) int {
	i := 0
	for i < len(tail) {
		if rest := walBlockSize - int((base+int64(i))%walBlockSize); rest < walSyncHeader {
			if i+rest > len(tail) || !allZero(tail[i:i+rest]) {
				return i
			}
			i += rest
			continue
		}
		n, ok := chunkAt(tail[i:], logNum)
		if !ok {
			return i
		}
		i += n
	}
	return i
}

// chunkAt reports the length of a whole chunk of log logNum with a good
// checksum at the start of b.
func chunkAt(b []byte, logNum uint32) (int, bool) {
	if headerLogNum(b) != logNum {
		return 0, false
	}
	hdr := walRecyclableHeader
	if b[6] >= walFirstSync {
		hdr = walSyncHeader
	}
	if len(b) < hdr {
		return 0, false
	}
	n := int(binary.LittleEndian.Uint16(b[4:]))
	if hdr+n > len(b) {
		return 0, false
	}
	c := crc32.Checksum(b[6:hdr+n], walCRCTable)
	if binary.LittleEndian.Uint32(b) != (c>>15|c<<17)+0xa282ead8 {
		return 0, false
	}
	return hdr + n, true
}

// headerLogNum is the log number in a recyclable or WAL-sync chunk header
// at the start of b, or 0.
func headerLogNum(b []byte) uint32 {
	if len(b) < walRecyclableHeader || b[6] < walFirstRecyclable || b[6] > walLastChunkEncoding {
		return 0
	}
	return binary.LittleEndian.Uint32(b[7:11])
}

// findChunk searches tail (which starts at file offset base) for a chunk of
// log logNum whose checksum holds. It returns the offset of the first such
// chunk (-1: none) and the offset of the first WAL-sync chunk that promises
// the log was synced past base (-1: none).
func findChunk(tail []byte, logNum uint32, base int64) (found, syncedPast int64) {
	found, syncedPast = -1, -1
	var want [4]byte
	binary.LittleEndian.PutUint32(want[:], logNum)
	for i := 0; i+walRecyclableHeader <= len(tail); i++ {
		j := bytes.Index(tail[i+7:], want[:])
		if j < 0 {
			break
		}
		i += j
		typ := tail[i+6]
		if typ < walFirstRecyclable || typ > walLastChunkEncoding {
			continue
		}
		hdr := walRecyclableHeader
		if typ >= walFirstSync {
			hdr = walSyncHeader
		}
		n := int(binary.LittleEndian.Uint16(tail[i+4:]))
		if i+hdr+n > len(tail) {
			continue
		}
		c := crc32.Checksum(tail[i+6:i+hdr+n], walCRCTable)
		if binary.LittleEndian.Uint32(tail[i:]) != (c>>15|c<<17)+0xa282ead8 {
			continue
		}
		if found < 0 {
			found = base + int64(i)
		}
		if hdr == walSyncHeader && int64(binary.LittleEndian.Uint64(tail[i+11:])) > base {
			return found, base + int64(i)
		}
	}
	return found, syncedPast
}

// streamCheck accumulates one stream's records for verify.
type streamCheck struct {
	count uint64 // versions seen
	sum   uint64 // order-sensitive hash of their positions
}

func (s *streamCheck) add(pos eventlog.Position) {
	s.count++
	s.sum = (s.sum^uint64(pos))*0x100000001b3 + s.count
}

// verify scans every record and index entry (Pebble checks each block's
// checksum as it reads it, the record values carry their own CRC) and
// checks that positions are dense from 1, that each stream's versions are
// dense from 0 in position order, and that the index holds exactly the
// records' (stream, version) -> position. It fills the stream heads and
// the last position.
func (l *Log) verify() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("open event log %s: verify: %s; the log is damaged, refusing to open it", l.dir, fmt.Sprintf(format, args...))
	}
	streams := map[string]*streamCheck{}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRecord}, UpperBound: []byte{prefixRecord + 1}})
	if err != nil {
		return fail("%v", err)
	}
	want := eventlog.Position(1)
	for ok := it.First(); ok; ok = it.Next() {
		pos, okKey := recordKeyPos(it.Key())
		if !okKey {
			it.Close()
			return fail("malformed record key %x", it.Key())
		}
		if pos != want {
			it.Close()
			return fail("records %d to %d are missing", want, pos-1)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fail("position %d: %v", pos, err)
		}
		r, err := decodeRecordValue(pos, v, true)
		if err != nil {
			it.Close()
			return fail("%v", err)
		}
		s := streams[r.Stream]
		if s == nil {
			s = &streamCheck{}
			streams[r.Stream] = s
		}
		if r.Version != s.count {
			it.Close()
			return fail("stream %q: record at position %d has version %d, want %d", r.Stream, pos, r.Version, s.count)
		}
		s.add(pos)
		want++
	}
	if err := firstErr(it.Error(), it.Close()); err != nil {
		return fail("%v", err)
	}
	l.lastPos = want - 1

	idx, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixIndex}, UpperBound: []byte{prefixIndex + 1}})
	if err != nil {
		return fail("%v", err)
	}
	defer idx.Close()
	var (
		cur     string
		check   streamCheck
		entries int
	)
	finish := func() error {
		if entries == 0 {
			return nil
		}
		s := streams[cur]
		if s == nil || *s != check {
			got := streamCheck{}
			if s != nil {
				got = *s
			}
			return fail("stream %q: index has %d entries, records have %d (or they point elsewhere)", cur, check.count, got.count)
		}
		l.heads[cur] = int64(check.count) - 1
		return nil
	}
	for ok := idx.First(); ok; ok = idx.Next() {
		stream, version, err := decodeIndexKey(idx.Key())
		if err != nil {
			return fail("%v", err)
		}
		if entries == 0 || stream != cur {
			if err := finish(); err != nil {
				return err
			}
			cur, check, entries = stream, streamCheck{}, 0
		}
		pos, ok := decodePosition(idx.Value())
		if !ok || version != check.count || pos == 0 || pos > l.lastPos {
			return fail("stream %q: bad index entry for version %d (position %x)", stream, version, idx.Value())
		}
		check.add(pos)
		entries++
	}
	if err := idx.Error(); err != nil {
		return fail("%v", err)
	}
	if err := finish(); err != nil {
		return err
	}
	if len(l.heads) != len(streams) {
		for s, c := range streams {
			if _, ok := l.heads[s]; !ok {
				return fail("stream %q: %d records have no index entries", s, c.count)
			}
		}
	}
	return nil
}
