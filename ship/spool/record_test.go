package spool

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
	"time"
)

// encodeRecordV1 is a record as format version 1 wrote it: no operation.
func encodeRecordV1(dst, id, source []byte, created time.Time) []byte {
	p := binary.LittleEndian.AppendUint64(nil, uint64(created.UnixNano()))
	p = binary.LittleEndian.AppendUint16(p, uint16(len(id)))
	p = append(append(p, id...), source...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(p, castagnoli))
	return append(dst, p...)
}

// TestOperationsRoundTrip: each record keeps its operation.
func TestOperationsRoundTrip(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir()})
	defer q.Close()
	ops := []Op{OpCreate, OpReplace, OpReplace, OpCreate}
	for i, op := range ops {
		id, src := doc(i)
		if err := q.Append(op, id, src, time.Unix(0, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range ops {
		rec, ok, err := q.Reader().Next()
		if err != nil || !ok {
			t.Fatalf("record %d: ok %v err %v", i, ok, err)
		}
		if id, _ := doc(i); string(rec.ID) != string(id) || rec.Op != want {
			t.Fatalf("record %d: id %s op %d, want %s op %d", i, rec.ID, rec.Op, id, want)
		}
	}
}

// TestReadsVersion1Segments: a spool written by format version 1 (before
// operations) is read after an upgrade, every record a create, both as the
// last segment (scanned for a torn tail) and as an older one.
func TestReadsVersion1Segments(t *testing.T) {
	dir := t.TempDir()
	for _, seq := range []uint64{1, 2} {
		b := appendSegmentHeader(nil, 1)
		for i := range 3 {
			n := int(seq-1)*3 + i
			id, src := doc(n)
			b = encodeRecordV1(b, id, src, time.Unix(0, int64(n)))
		}
		if seq == 2 {
			b = append(b, 0x40, 0, 0) // a torn tail, as a crash leaves
		}
		if err := os.WriteFile(segmentPath(dir, seq), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	q := openQueue(t, Options{Dir: dir})
	defer q.Close()
	id, src := doc(6)
	if err := q.Append(OpReplace, id, src, time.Unix(0, 6)); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		rec, ok, err := q.Reader().Next()
		if err != nil || !ok {
			t.Fatalf("record %d: ok %v err %v", i, ok, err)
		}
		wantID, wantSrc := doc(i)
		wantOp := OpCreate
		if i == 6 {
			wantOp = OpReplace
		}
		if string(rec.ID) != string(wantID) || string(rec.Source) != string(wantSrc) || rec.Created.UnixNano() != int64(i) || rec.Op != wantOp {
			t.Fatalf("record %d: %s %s %d op %d", i, rec.ID, rec.Source, rec.Created.UnixNano(), rec.Op)
		}
	}
	if _, ok, _ := q.Reader().Next(); ok {
		t.Fatal("a record past the end")
	}
	if st := q.Stats(); st.CorruptTails != 1 || st.CorruptBytes != 3 {
		t.Fatalf("torn tail of the version-1 segment: %+v", st)
	}
}

// TestUnknownOperationIsCorruption: an operation byte this code does not
// know (a newer format, or damage with a matching checksum) is not guessed at.
func TestUnknownOperationIsCorruption(t *testing.T) {
	b, err := encodeRecord(nil, Op(7), []byte("id"), []byte("{}"), time.Unix(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	n, crc, ok := parseHeader(b)
	if !ok {
		t.Fatal("header refused")
	}
	if _, ok := decodePayload(b[recordHeader:recordHeader+n], crc, formatVersion); ok {
		t.Fatal("operation 7 accepted")
	}
}
