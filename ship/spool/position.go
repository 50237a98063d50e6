package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// Position is a place in the spool: a segment and a byte offset in it.
type Position struct {
	Segment uint64
	Offset  int64
}

// Less reports whether p comes before o.
func (p Position) Less(o Position) bool {
	return p.Segment < o.Segment || p.Segment == o.Segment && p.Offset < o.Offset
}

const (
	positionFile  = "acked.pos"
	positionMagic = "RLAK"
	positionSize  = 24
)

var errBadPosition = errors.New("checksum or size mismatch")

// readPosition loads the saved position; a missing file is the zero position.
func readPosition(dir string) (Position, error) {
	b, err := os.ReadFile(filepath.Join(dir, positionFile))
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, nil
	}
	if err != nil {
		return Position{}, err
	}
	if len(b) != positionSize || string(b[:4]) != positionMagic ||
		crc32.Checksum(b[:20], castagnoli) != binary.LittleEndian.Uint32(b[20:]) {
		return Position{}, errBadPosition
	}
	return Position{
		Segment: binary.LittleEndian.Uint64(b[4:]),
		Offset:  int64(binary.LittleEndian.Uint64(b[12:])),
	}, nil
}

// writePosition replaces the saved position atomically and durably; sync
// makes a file durable (writableFile.Sync, or the housekeeper's fsyncer).
func writePosition(fs fileSystem, dir string, p Position, sync func(writableFile) error) error {
	b := make([]byte, 0, positionSize)
	b = append(b, positionMagic...)
	b = binary.LittleEndian.AppendUint64(b, p.Segment)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Offset))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))

	tmp := filepath.Join(dir, positionFile+".tmp")
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp) // its blocks, on a full disk
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, positionFile)); err != nil {
		return err
	}
	return syncDir(dir, sync)
}

func syncDir(dir string, sync func(writableFile) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = sync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
