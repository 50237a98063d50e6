// Package spool is replaylink's disk queue between enrich and the shipper: an
// append-only, segmented log of documents that survives Elasticsearch
// outages and replaylink restarts with bounded memory.
//
// # Guarantees
//
// At least once. A record is on its way to disk (in the kernel's page cache)
// when Append returns, so a killed process loses nothing; fsync runs every
// Options.SyncInterval (default 200 ms), so a power loss loses at most that
// window. On Linux the housekeeper's fsyncs go through AIO and wait in the
// network poller, so a slow disk does not hold the processor that requests
// need (fsync_linux.go). The reader hands records out in order; the consumer acknowledges
// them with Ack, and only the position of the oldest unacknowledged record is
// saved. After a restart, reading resumes there: records acknowledged after
// the last save are delivered again (the shipper turns them into 409
// "already there" answers, thanks to deterministic document ids).
//
// Bounded. Records stream from disk; nothing of the queue is held in memory
// beyond one read buffer and one record. The files are capped at
// Options.MaxBytes: when an append would go over it, the oldest segment is
// dropped and every record in it that was not yet handed to the reader is
// counted in replaylink_dropped_total{reason="spool_full"}.
//
// Self-healing on a full disk. When the file system has no room (ENOSPC,
// EDQUOT), Append refuses the record with an error (the shipper counts it
// as replaylink_dropped_total{reason="spool_write_error"}) and nothing
// already kept is touched. Space comes back by itself as records are
// acknowledged: fully acknowledged segments are deleted without waiting for
// the position save (which itself needs room), an active segment that is
// all acknowledged is emptied and replaced, and Open works on a full disk,
// creating its segment once there is room. See queue.go and housekeeper.go
// for how and why that is crash safe.
//
// # On-disk format (version 2)
//
// A spool directory holds:
//
//	lock                      flock(2)ed while a Queue has the directory open
//	00000000000000000001.seg  segments, named by a 20-digit sequence number
//	00000000000000000002.seg
//	acked.pos                 the saved read position
//
// A segment starts with an 8-byte header, "RLSP" followed by the format
// version as a little-endian uint32 (2), then holds records back to back.
// Every integer is little-endian. A record is:
//
//	offset  size  field
//	0       4     payload length L (uint32), at least 11
//	4       4     CRC-32C (Castagnoli) of the L payload bytes
//	8       8     payload: creation time, Unix nanoseconds (int64)
//	16      1     payload: operation: 0 create (OpCreate), 1 replace (OpReplace)
//	17      2     payload: document id length K (uint16)
//	19      K     payload: document id (the Elasticsearch _id)
//	19+K    L-11-K payload: document source (one JSON object)
//
// Version 1 segments (written before operations existed) are still read:
// their records lack the operation byte (the id length is at offset 16, the
// id at 18) and are all creates. New segments are always version 2; a
// segment's records are all of its header's version. An operation other
// than 0 or 1 is damage, as a checksum mismatch is.
//
// acked.pos is 24 bytes: "RLAK", the segment sequence number (uint64), the
// byte offset in that segment just after the last acknowledged record
// (int64), and a CRC-32C of the first 20 bytes. It is replaced atomically
// (write, fsync, rename, fsync of the directory). Segments whose records
// are all acknowledged are deleted, whether or not the position passing
// them could be saved yet; segments entirely before the saved position are
// deleted on Open.
//
// A new segment is started when the current one reaches
// Options.SegmentBytes (by default at most a 16th of the file system, and
// at most an eighth of what the spool held when the disk was last full),
// when an append on a full disk emptied an acknowledged active segment, and
// on every Open: the segment that was being written
// when the previous process stopped is scanned, and a torn or corrupt tail
// (a length that runs past the end, or a checksum mismatch) is cut off and
// counted in replaylink_spool_corrupt_total and Stats.CorruptTails. Damage
// found later in an older segment skips the rest of that segment, counted the
// same way. A missing segment number is not damage: segments are deleted
// once acknowledged, whether or not acked.pos was saved after, and a number
// the saved position may name is never given to a new segment. A zero-byte
// segment is one that was being deleted.
package spool
