package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

const segmentExt = ".seg"

// droppedBit marks Segment.state once the segment was dropped for the cap;
// the low bits count the records handed to the reader.
const droppedBit = int64(1) << 62

// Segment is one file of the spool. Its bytes are the header and whole
// records only: appends write a whole record or, on failure, cut the file
// back, so a reader never needs to wait for the rest of a record.
type Segment struct {
	Seq  uint64
	path string

	// size counts committed bytes. It grows under Queue.mu; the reader loads
	// it without a lock and reads no further.
	size atomic.Int64
	// sealed is set, after size reached its final value, when appends moved on.
	sealed atomic.Bool
	// state is the number of records handed to the reader in this process,
	// plus droppedBit once the segment was dropped; the reader claims each
	// record with a compare-and-swap, so a drop counts exactly what it loses.
	state atomic.Int64

	// readFrom is where this process starts reading the segment: after the
	// saved position for the segment holding it, after the header otherwise.
	readFrom int64
	// records counts the records from readFrom on, or is -1 when unknown
	// (segments of an earlier process, counted only if dropped). Guarded by
	// Queue.mu while the segment is active; final once it is sealed.
	records int64
	// w is the append handle of the active segment; after sealing, the
	// housekeeper fsyncs and closes it.
	w writableFile
}

// end is the position just after the segment's last record so far.
func (s *Segment) end() Position { return Position{Segment: s.Seq, Offset: s.size.Load()} }

func segmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", seq, segmentExt))
}

// listSegments returns the sequence numbers of the segments in dir, oldest first.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segmentExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
		if err != nil {
			continue // not one of ours
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// createSegment makes a new, empty active segment.
func createSegment(fs fileSystem, dir string, seq uint64) (*Segment, error) {
	s := &Segment{Seq: seq, path: segmentPath(dir, seq), readFrom: segmentHeader}
	f, err := fs.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err) // an *os.PathError names the file
	}
	if _, err := f.Write(appendSegmentHeader(nil, formatVersion)); err != nil {
		f.Close()
		os.Remove(s.path)
		return nil, fmt.Errorf("create %s: %w", s.path, err)
	}
	s.w = f
	s.size.Store(segmentHeader)
	return s, nil
}

// openSealedSegment describes a segment left by an earlier process.
func openSealedSegment(dir string, seq uint64) (*Segment, error) {
	s := &Segment{Seq: seq, path: segmentPath(dir, seq), readFrom: segmentHeader, records: -1}
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, err
	}
	s.size.Store(fi.Size())
	s.sealed.Store(true)
	return s, nil
}

// scanValid walks a segment's records from its header and returns the end of
// the last intact one (0 when the header itself is bad) and how many
// records lie between from and that end.
func scanValid(path string, from int64) (end, records int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	hdr := make([]byte, segmentHeader)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return 0, 0, nil
	}
	version := segmentVersion(hdr)
	if version == 0 {
		return 0, 0, nil
	}
	end = segmentHeader
	var payload []byte
	for {
		if _, err := io.ReadFull(br, hdr[:recordHeader]); err != nil {
			return end, records, nil
		}
		n, crc, ok := parseHeader(hdr)
		if !ok {
			return end, records, nil
		}
		if cap(payload) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return end, records, nil
		}
		if _, ok := decodePayload(payload, crc, version); !ok {
			return end, records, nil
		}
		if end >= from {
			records++
		}
		end += recordHeader + int64(n)
	}
}

// countRecords counts the records of a sealed segment from offset from,
// reading only their headers, up to the first one that cannot be a record.
func countRecords(path string, from, size int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hdr [recordHeader]byte
	var n int64
	for off := from; off+recordHeader <= size; n++ {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return n, err
		}
		l, _, ok := parseHeader(hdr[:])
		if !ok || off+recordHeader+int64(l) > size {
			break
		}
		off += recordHeader + int64(l)
	}
	return n, nil
}
