package ship

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/replaylink/replaylink/esclient"
	"github.com/replaylink/replaylink/internal/choice"
)

// Options configures a Shipper. The settings a user gives (the spool's,
// the bulk requests', Index, Compression, MemoryStore) mean what they say
// at zero or New refuses them, naming the flag; their defaults are
// config's. The tuning below them, which no user sets, takes ship's own
// values when zero.
type Options struct {
	SpoolDir      string        // required
	SpoolMaxBytes int64         // spool size cap; more than 0
	SyncInterval  time.Duration // spool fsync interval; more than 0
	FlushBytes    int           // bulk request size; more than 0
	FlushInterval time.Duration // longest wait before a partial bulk goes; more than 0
	Workers       int           // bulk requests in flight; at least 1 (always 1 for Output)

	// Client says how to reach Elasticsearch. Without URLs, documents go to
	// Output instead (the embedded default).
	Client     esclient.Options
	Index      string   // write target; OpenReplay searches "logs"
	DataStream bool     // write to a data stream with Index as its alias; see Target
	Namespace  string   // the data stream's namespace; default "default"
	Replicas   Replicas // of the indices the template makes; zero: suit the cluster
	// InstallTemplate installs the index template (and, with DataStream,
	// the data stream and alias) before the first bulk request.
	InstallTemplate bool
	Compression     Compression // of bulk bodies

	Output io.Writer // embedded default: documents as JSON lines; required without URLs
	// MemoryStore is how many recent documents the memory store keeps for
	// lookups (Shipper.MemoryStore); 0 keeps none, and there is no store.
	MemoryStore int
	MemoryBytes int64 // and at most this much JSON; default 64 MiB

	BackoffMin         time.Duration // first retry wait; default 100 ms
	BackoffMax         time.Duration // longest retry wait; default 30 s
	ItemRetryTime      time.Duration // a document failing with an item-level 5xx this long is dead-lettered; default 10 min
	DeadLetterMaxBytes int64         // dead-letter file cap; default 100 MiB

	Logger zerolog.Logger
}

// withInternalDefaults gives the tuning no user sets ship's own values
// where zero.
func (o *Options) withInternalDefaults() {
	setDefault(&o.MemoryBytes, 64<<20)
	setDefault(&o.BackoffMin, 100*time.Millisecond)
	setDefault(&o.BackoffMax, 30*time.Second)
	setDefault(&o.ItemRetryTime, 10*time.Minute)
	setDefault(&o.DeadLetterMaxBytes, 100<<20)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// validate refuses the user's settings that cannot work, each by its flag
// and the allowed range.
func (o *Options) validate() error {
	var errs []error
	positive := func(flagName string, v int64, shown any) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("ship: --%s %v: must be greater than zero", flagName, shown))
		}
	}
	positive("spool-max-bytes", o.SpoolMaxBytes, o.SpoolMaxBytes)
	positive("spool-sync-interval", int64(o.SyncInterval), o.SyncInterval)
	positive("flush-bytes", int64(o.FlushBytes), o.FlushBytes)
	positive("flush-interval", int64(o.FlushInterval), o.FlushInterval)
	positive("workers", int64(o.Workers), o.Workers)
	if o.MemoryStore < 0 {
		errs = append(errs, fmt.Errorf("ship: --memory-store %d: must not be negative (0 keeps no recent documents)", o.MemoryStore))
	}
	if err := choice.Check("--es-compression", o.Compression, compressionNames); err != nil {
		errs = append(errs, fmt.Errorf("ship: %w", err))
	}
	return errors.Join(errs...)
}
