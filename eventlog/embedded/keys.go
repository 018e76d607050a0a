package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/herald-webhooks/herald/eventlog"
)

// Key prefixes. Every key starts with one of these bytes; see doc.go.
const (
	prefixMeta   byte = 'm'
	prefixRecord byte = 'r'
	prefixIndex  byte = 's'
)

// Record value format.
const (
	// recordFormatV1 is the first byte of every record value written by this
	// version. A reader refuses values with a format it does not know.
	recordFormatV1 byte = 1
	// recordHeaderLen is the format byte plus the CRC.
	recordHeaderLen = 1 + 4
	// formatVersion is the value of the meta key metaFormatKey.
	formatVersion byte = 1
)

// metaFormatKey holds the on-disk format version of the whole store.
var metaFormatKey = []byte{prefixMeta, 'f', 'o', 'r', 'm', 'a', 't'}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorruptValue marks a record value that fails its checks.
var errCorruptValue = errors.New("corrupt record value")

// recordKey is prefixRecord + position (big-endian), so records sort in
// global order.
func recordKey(pos eventlog.Position) []byte {
	k := make([]byte, 9)
	k[0] = prefixRecord
	binary.BigEndian.PutUint64(k[1:], uint64(pos))
	return k
}

func appendRecordKey(dst []byte, pos eventlog.Position) []byte {
	dst = append(dst, prefixRecord)
	return binary.BigEndian.AppendUint64(dst, uint64(pos))
}

// recordKeyPos decodes a record key.
func recordKeyPos(k []byte) (eventlog.Position, bool) {
	if len(k) != 9 || k[0] != prefixRecord {
		return 0, false
	}
	return eventlog.Position(binary.BigEndian.Uint64(k[1:])), true
}

// streamPrefix is prefixIndex + uvarint(len(stream)) + stream. The length
// prefix keeps a stream's keys apart from those of any stream whose name
// it is a prefix of.
func streamPrefix(stream string) []byte {
	p := make([]byte, 0, 1+binary.MaxVarintLen64+len(stream)+8)
	p = append(p, prefixIndex)
	p = binary.AppendUvarint(p, uint64(len(stream)))
	return append(p, stream...)
}

// indexKey is streamPrefix(stream) + version (big-endian).
func indexKey(prefix []byte, version uint64) []byte {
	k := make([]byte, len(prefix), len(prefix)+8)
	copy(k, prefix)
	return binary.BigEndian.AppendUint64(k, version)
}

// prefixEnd is the smallest key greater than every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// decodeIndexKey splits an index key into stream and version.
func decodeIndexKey(k []byte) (stream string, version uint64, err error) {
	if len(k) < 1+1+8 || k[0] != prefixIndex {
		return "", 0, fmt.Errorf("malformed index key %x", k)
	}
	n, w := binary.Uvarint(k[1:])
	if w <= 0 || uint64(len(k)) != 1+uint64(w)+n+8 {
		return "", 0, fmt.Errorf("malformed index key %x", k)
	}
	stream = string(k[1+w : 1+w+int(n)])
	return stream, binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

// encodedRecordLen is the size of a record value.
func encodedRecordLen(stream string, e eventlog.Event) int {
	return recordHeaderLen + 3*binary.MaxVarintLen64 + len(stream) + len(e.Type) + len(e.Data)
}

// appendRecordValue encodes a record value:
//
//	format (1) | crc32c (4, big-endian) | uvarint len(stream) | stream |
//	uvarint version | uvarint len(type) | type | data
//
// The CRC covers the position (8 bytes, big-endian, not stored in the
// value) followed by everything after the CRC, so a value found under the
// wrong key fails its check too.
func appendRecordValue(dst []byte, pos eventlog.Position, stream string, version uint64, e eventlog.Event) []byte {
	start := len(dst)
	dst = append(dst, recordFormatV1, 0, 0, 0, 0)
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	dst = append(dst, stream...)
	dst = binary.AppendUvarint(dst, version)
	dst = binary.AppendUvarint(dst, uint64(len(e.Type)))
	dst = append(dst, e.Type...)
	dst = append(dst, e.Data...)
	binary.BigEndian.PutUint32(dst[start+1:], valueCRC(pos, dst[start+recordHeaderLen:]))
	return dst
}

func valueCRC(pos eventlog.Position, body []byte) uint32 {
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], uint64(pos))
	return crc32.Update(crc32.Update(0, crcTable, p[:]), crcTable, body)
}

// decodeRecordValue checks and decodes a record value. Data is copied
// unless share is set (share: the caller owns v and keeps it unchanged).
func decodeRecordValue(pos eventlog.Position, v []byte, share bool) (eventlog.Record, error) {
	if len(v) < recordHeaderLen {
		return eventlog.Record{}, fmt.Errorf("%w at position %d: %d bytes", errCorruptValue, pos, len(v))
	}
	if v[0] != recordFormatV1 {
		return eventlog.Record{}, fmt.Errorf("%w at position %d: unknown format %d", errCorruptValue, pos, v[0])
	}
	body := v[recordHeaderLen:]
	if got, want := valueCRC(pos, body), binary.BigEndian.Uint32(v[1:]); got != want {
		return eventlog.Record{}, fmt.Errorf("%w at position %d: crc %08x, stored %08x", errCorruptValue, pos, got, want)
	}
	rest := body
	next := func() (uint64, bool) {
		x, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, false
		}
		rest = rest[n:]
		return x, true
	}
	bad := func(what string) (eventlog.Record, error) {
		return eventlog.Record{}, fmt.Errorf("%w at position %d: bad %s", errCorruptValue, pos, what)
	}
	sl, ok := next()
	if !ok || sl > uint64(len(rest)) {
		return bad("stream length")
	}
	stream := string(rest[:sl])
	rest = rest[sl:]
	version, ok := next()
	if !ok {
		return bad("version")
	}
	tl, ok := next()
	if !ok || tl > uint64(len(rest)) {
		return bad("type length")
	}
	typ := string(rest[:tl])
	data := rest[tl:]
	if !share {
		data = append([]byte(nil), data...)
	}
	return eventlog.Record{Stream: stream, Version: version, Position: pos, Type: typ, Data: data}, nil
}

func decodePosition(v []byte) (eventlog.Position, bool) {
	if len(v) != 8 {
		return 0, false
	}
	return eventlog.Position(binary.BigEndian.Uint64(v)), true
}
