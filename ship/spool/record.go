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
	segmentMagic  = "RLSP"
	formatVersion = 2 // what new segments are written in; version 1 is still read
	segmentHeader = 8 // magic + version
	recordHeader  = 8 // length + CRC
	// payloadFixed is the payload before the id: creation time, operation
	// and id length (version 2). Version 1 had no operation byte.
	payloadFixed   = 11
	payloadFixedV1 = 10
	maxIDBytes     = math.MaxUint16
	maxRecordBytes = 64 << 20 // a record longer than this is corruption, not data
)

// Op is what a record asks of the store it is shipped to.
type Op uint8

const (
	// OpCreate adds the document unless one with its id is there: a resend
	// changes nothing (the bulk create action).
	OpCreate Op = 0
	// OpReplace writes the document over whatever its id holds, or adds it
	// (the bulk index action).
	OpReplace Op = 1
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
	Op      Op // OpCreate for every record of a version-1 segment
	// End is the position just after this record: Ack(End) acknowledges it
	// and every record before it.
	End Position
}

// encodedBuf is a reusable buffer for encoding one record outside the
// queue's lock.
type encodedBuf struct{ b []byte }

var encodedPool = sync.Pool{New: func() any { return &encodedBuf{b: make([]byte, 0, 4096)} }}

// encodeRecord appends the record to dst, in the current format version.
func encodeRecord(dst []byte, op Op, id, source []byte, created time.Time) ([]byte, error) {
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
	dst = append(dst, byte(op))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	dst = append(dst, source...)
	crc := crc32.Checksum(dst[start+recordHeader:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst, nil
}

// parseHeader reads a record header; ok is false when the length cannot be
// a record's (of any version: decodePayload checks the version's minimum).
func parseHeader(h []byte) (payloadLen int, crc uint32, ok bool) {
	n := binary.LittleEndian.Uint32(h)
	crc = binary.LittleEndian.Uint32(h[4:])
	if n < payloadFixedV1 || recordHeader+int64(n) > maxRecordBytes {
		return 0, 0, false
	}
	return int(n), crc, true
}

// decodePayload checks the payload of a record of the given format version
// against crc and splits it; ok is false on a mismatch, an unknown
// operation, or an id length that runs past the payload.
func decodePayload(p []byte, crc uint32, version uint32) (rec Record, ok bool) {
	fixed := payloadFixed
	if version == 1 {
		fixed = payloadFixedV1
	}
	if len(p) < fixed || crc32.Checksum(p, castagnoli) != crc {
		return Record{}, false
	}
	if version != 1 {
		rec.Op = Op(p[8])
		if rec.Op > OpReplace {
			return Record{}, false
		}
	}
	k := int(binary.LittleEndian.Uint16(p[fixed-2:]))
	if fixed+k > len(p) {
		return Record{}, false
	}
	rec.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(p)))
	rec.ID, rec.Source = p[fixed:fixed+k], p[fixed+k:]
	return rec, true
}

func appendSegmentHeader(dst []byte, version uint32) []byte {
	dst = append(dst, segmentMagic...)
	return binary.LittleEndian.AppendUint32(dst, version)
}

// segmentVersion returns the format version of a segment header, or 0 when
// it is not a header this code reads.
func segmentVersion(h []byte) uint32 {
	if len(h) != segmentHeader || string(h[:4]) != segmentMagic {
		return 0
	}
	if v := binary.LittleEndian.Uint32(h[4:]); v == 1 || v == formatVersion {
		return v
	}
	return 0
}
