package enrich

// Publisher takes finished documents on their way to the shipper.
// id is the document's deterministic _id and source its JSON body; both are
// valid only during the call. An error means the document could not be kept
// (e.g. spool full) and has been counted by the publisher.
type Publisher interface {
	// Publish hands on a new document. It is created once: a resend of the
	// same id (a retry, a replay after a crash) changes nothing.
	Publish(id, source []byte) error
	// Replace hands on a newer version of a document already published
	// under id, which it overwrites wherever it arrives, whichever of the
	// two arrives first. enrich uses it to fold a backend's traceback into
	// an error access document that was published (so kept durably) as
	// soon as the request ended.
	Replace(id, source []byte) error
}
