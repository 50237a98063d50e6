package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"
	"time"
)

const (
	segmentMagic   = "RLSP"
	formatVersion  = 1
	segmentHeader  = 8  // magic + version
	recordHeader   = 8  // length + CRC
	payloadFixed   = 10 // creation time + id length
	maxIDBytes     = math.MaxUint16
	maxRecordBytes = 64 << 20 // a record longer than this is corruption, not data
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by Append for a record beyond the format's limits.
var ErrTooLarge = errors.New("spool: document too large")

// Record is one document read back from the spool. ID and Source are valid
// only until the next call to Reader.Next.
type Record struct {
	ID      []byte
	Source  []byte
	Created time.Time
	// End is the position just after this record: Ack(End) acknowledges it
	// and every record before it.
	End Position
}

// encodedBuf is a reusable buffer for encoding one record outside the
// queue's lock.
type encodedBuf struct{ b []byte }

var encodedPool = sync.Pool{New: func() any { return &encodedBuf{b: make([]byte, 0, 4096)} }}

// encodeRecord appends the record to dst.
func encodeRecord(dst, id, source []byte, created time.Time) ([]byte, error) {
	if len(id) > maxIDBytes {
		return dst, fmt.Errorf("%w: id of %d bytes (at most %d)", ErrTooLarge, len(id), maxIDBytes)
	}
	n := payloadFixed + len(id) + len(source)
	if recordHeader+n > maxRecordBytes {
		return dst, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, recordHeader+n, maxRecordBytes)
	}
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // CRC, filled in below
	dst = binary.LittleEndian.AppendUint64(dst, uint64(created.UnixNano()))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	dst = append(dst, source...)
	crc := crc32.Checksum(dst[start+recordHeader:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst, nil
}

// parseHeader reads a record header; ok is false when the length cannot be
// a record's.
func parseHeader(h []byte) (payloadLen int, crc uint32, ok bool) {
	n := binary.LittleEndian.Uint32(h)
	crc = binary.LittleEndian.Uint32(h[4:])
	if n < payloadFixed || recordHeader+int64(n) > maxRecordBytes {
		return 0, 0, false
	}
	return int(n), crc, true
}

// decodePayload checks the payload against crc and splits it; ok is false on
// a mismatch or an id length that runs past the payload.
func decodePayload(p []byte, crc uint32) (id, source []byte, created time.Time, ok bool) {
	if crc32.Checksum(p, castagnoli) != crc {
		return nil, nil, time.Time{}, false
	}
	k := int(binary.LittleEndian.Uint16(p[8:]))
	if payloadFixed+k > len(p) {
		return nil, nil, time.Time{}, false
	}
	created = time.Unix(0, int64(binary.LittleEndian.Uint64(p)))
	return p[payloadFixed : payloadFixed+k], p[payloadFixed+k:], created, true
}

func appendSegmentHeader(dst []byte) []byte {
	dst = append(dst, segmentMagic...)
	return binary.LittleEndian.AppendUint32(dst, formatVersion)
}

func validSegmentHeader(h []byte) bool {
	return len(h) == segmentHeader && string(h[:4]) == segmentMagic &&
		binary.LittleEndian.Uint32(h[4:]) == formatVersion
}
