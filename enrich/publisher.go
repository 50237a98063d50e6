package enrich

// Publisher takes finished documents on their way to the shipper.
// id is the document's deterministic _id and source its JSON body; both are
// valid only during the call. An error means the document could not be kept
// (e.g. spool full) and has been counted by the publisher.
type Publisher interface {
	Publish(id, source []byte) error
}
