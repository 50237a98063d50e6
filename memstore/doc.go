// Package memstore is the memory store: the recent documents replaylink
// made, shipped or not, kept in memory (--memory-store, bounded in count and
// bytes) so that lookup can show a session before Elasticsearch has it, and
// at all in the embedded default, which has no Elasticsearch.
//
// ship's pipeline fills it (Keep, with the keys enrich knows) as documents
// are spooled; lookup reads it (Session, Request). It is its own package
// because it belongs to neither: it is not shipping, and lookup only reads
// it. It finds a document's keys in its JSON with jsonscan, the JSON
// scanning core below it and ship. How it keeps documents without pointers
// is on Store.
package memstore
