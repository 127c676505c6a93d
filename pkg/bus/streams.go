package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig sets what every stream shares.
type StreamConfig struct {
	// Replicas is 1 on a single node and 3 in a cluster (the production recommendation: with R3 an
	// acknowledged write survives the loss of a node before the periodic fsync).
	Replicas int
	// Retention bounds how long messages stay in INGEST, EVENTS and BATCHES after they were handled;
	// they are kept so that lost Redis state can be rebuilt from the stream.
	Retention time.Duration
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id.
	DuplicateWindow time.Duration
	// Partitions is how many streams EVENTS is split over (see Partitions); every service the same.
	Partitions Partitions
}

// Validate checks the rules of each field.
func (c StreamConfig) Validate() error {
	var errs []error
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("replicas: must be 1, 3 or 5, got %d", c.Replicas))
	}
	if c.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("retention: must be at least 1h so undelivered work is never dropped, got %s", c.Retention))
	}
	if c.DuplicateWindow < time.Second || c.DuplicateWindow > c.Retention {
		errs = append(errs, fmt.Errorf("duplicate window: must be between 1s and the retention, got %s", c.DuplicateWindow))
	}
	if err := c.Partitions.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DefaultStreamConfig is what a single node uses.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{Replicas: 1, Retention: 7 * 24 * time.Hour, DuplicateWindow: 10 * time.Minute, Partitions: 1}
}

// EnsureStreams creates or updates every stream and the object store, idempotently. Every service calls
// it at start, so any of them may be the first to run. It refuses to run with partitions other than
// those of the EVENTS streams that exist (CheckPartitions), before and after creating its own: of two
// services that started together with different settings, each finds the other's streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c StreamConfig) error {
	if err := CheckPartitions(ctx, js, c.Partitions); err != nil {
		return err
	}
	streams := []jetstream.StreamConfig{{Name: StreamIngest, Subjects: []string{AllIngest}}}
	for p, name := range c.Partitions.Streams() {
		streams = append(streams, jetstream.StreamConfig{Name: name, Subjects: []string{c.Partitions.Wildcard(p)}, Metadata: c.Partitions.metadata()})
	}
	streams = append(streams,
		jetstream.StreamConfig{Name: StreamBatches, Subjects: []string{"batch.>"}},
		jetstream.StreamConfig{Name: StreamDeadLetter, Subjects: []string{deadLetterPrefix + ">"}})
	for _, sc := range streams {
		sc.Storage = jetstream.FileStorage
		sc.Replicas = c.Replicas
		sc.MaxAge = c.Retention
		sc.Duplicates = c.DuplicateWindow
		sc.Retention = jetstream.LimitsPolicy
		if err := AgainOnTimeout(ctx, func() error { _, err := js.CreateOrUpdateStream(ctx, sc); return err }); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	if err := AgainOnTimeout(ctx, func() error {
		_, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      ObjectBatches,
			Description: "sealed batch files waiting to be staged",
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			TTL:         c.Retention,
		})
		return err
	}); err != nil {
		return fmt.Errorf("ensure object store %s: %w", ObjectBatches, err)
	}
	return CheckPartitions(ctx, js, c.Partitions)
}

// AgainOnTimeout runs an idempotent JetStream API call (creating or updating a stream, KV bucket or
// consumer) again when it times out while ctx is alive, up to 5 times: on a cluster, a create racing
// another replica's create of the same stream can go unanswered (every replica of every service
// ensures the streams, buckets and consumers it uses when it starts).
func AgainOnTimeout(ctx context.Context, call func() error) error {
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || attempt == 5 {
			return err
		}
	}
}
