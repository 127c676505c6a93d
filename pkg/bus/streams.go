package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig sets what every stream shares.
type StreamConfig struct {
	// Replicas is 1 on a single node and 3 in a cluster (the production recommendation: with R3 an
	// acknowledged write survives the loss of a node before the periodic fsync).
	Replicas int
	// Retention is the installation's one retention (configstore Settings, owned by admin): how long a
	// staged file waits for a failing destination before the copier dead-letters it. INGEST, EVENTS,
	// BATCHES and the object store keep messages for Retention + RetentionMargin, so the copier always
	// decides before anything expires; they are also kept so lost Redis state can be rebuilt.
	Retention time.Duration
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id.
	DuplicateWindow time.Duration
	// Partitions is how many streams EVENTS is split over (see Partitions); every service the same.
	Partitions Partitions
}

// MinRetention is the shortest retention an operator may set: undelivered work is never dropped sooner.
const MinRetention = time.Hour

// RetentionMargin is how much longer than the retention the streams, the object store and the staging
// bucket keep data. The copier dead-letters (or carries forward) a file when its retention ends; the
// margin covers the latest the copier can be to that decision: a redelivery after a nak (Backoff,
// at most 5 minutes), a lane draining a backlog of files that all reached their deadline together, a
// copier restarting. It is twelve times the longest nak backoff.
const RetentionMargin = time.Hour

// MaxAge is how long the streams keep a message: the retention plus the margin.
func (c StreamConfig) MaxAge() time.Duration { return c.Retention + RetentionMargin }

// Validate checks the rules of each field.
func (c StreamConfig) Validate() error {
	var errs []error
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("replicas: must be 1, 3 or 5, got %d", c.Replicas))
	}
	if c.Retention < MinRetention {
		errs = append(errs, fmt.Errorf("retention: must be at least %s so undelivered work is never dropped, got %s", MinRetention, c.Retention))
	}
	if c.DuplicateWindow < time.Second || c.DuplicateWindow > c.Retention {
		errs = append(errs, fmt.Errorf("duplicate window: must be between 1s and the retention, got %s", c.DuplicateWindow))
	}
	if err := c.Partitions.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DefaultRetention is the retention until the admin service sets one: 7 days, as Segment keeps data.
const DefaultRetention = 7 * 24 * time.Hour

// DefaultStreamConfig is what a single node uses.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{Replicas: 1, Retention: DefaultRetention, DuplicateWindow: 10 * time.Minute, Partitions: 1}
}

// streamConfigs are the streams every service uses, with c's settings: EVENTS is c.Partitions streams.
func streamConfigs(c StreamConfig) []jetstream.StreamConfig {
	streams := []jetstream.StreamConfig{{Name: StreamIngest, Subjects: []string{AllIngest}}}
	for p, name := range c.Partitions.Streams() {
		streams = append(streams, jetstream.StreamConfig{Name: name, Subjects: []string{c.Partitions.Wildcard(p)}, Metadata: c.Partitions.metadata()})
	}
	streams = append(streams,
		jetstream.StreamConfig{Name: StreamBatches, Subjects: []string{"batch.>"}},
		jetstream.StreamConfig{Name: StreamDeadLetter, Subjects: []string{deadLetterPrefix + ">"}})
	for i := range streams {
		sc := &streams[i]
		sc.Storage = jetstream.FileStorage
		sc.Replicas = c.Replicas
		sc.MaxAge = c.MaxAge()
		sc.Duplicates = c.DuplicateWindow
		sc.Retention = jetstream.LimitsPolicy
	}
	return streams
}

func objectStoreConfig(c StreamConfig) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      ObjectBatches,
		Description: "sealed batch files waiting to be staged",
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		TTL:         c.MaxAge(),
	}
}

// ApplyStreams creates or updates every stream and the object store to c, idempotently. Like
// EnsureStreams it refuses partitions other than those of the EVENTS streams that exist. Only their
// owner calls it: the admin service (and s3dest dev in its place), with the retention it owns.
func ApplyStreams(ctx context.Context, js jetstream.JetStream, c StreamConfig) error {
	if err := CheckPartitions(ctx, js, c.Partitions); err != nil {
		return err
	}
	for _, sc := range streamConfigs(c) {
		if err := AgainOnTimeout(ctx, func() error { _, err := js.CreateOrUpdateStream(ctx, sc); return err }); err != nil {
			return fmt.Errorf("apply stream %s: %w", sc.Name, err)
		}
	}
	if err := AgainOnTimeout(ctx, func() error { _, err := js.CreateOrUpdateObjectStore(ctx, objectStoreConfig(c)); return err }); err != nil {
		return fmt.Errorf("apply object store %s: %w", ObjectBatches, err)
	}
	return CheckPartitions(ctx, js, c.Partitions)
}

// EnsureStreams creates every stream and the object store that is missing, with c. It refuses to run
// with partitions other than those of the EVENTS streams that exist (CheckPartitions), before and after
// creating what is missing. Every service calls
// it at start, so any of them may be the first to run. A stream that exists is not changed: it has one
// owner (ApplyStreams); where its replicas, max age or duplicate window differ from c, EnsureStreams
// logs the field and both values, so the operator sees the disagreement and settles it with the owner.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c StreamConfig, log *slog.Logger) error {
	if err := CheckPartitions(ctx, js, c.Partitions); err != nil {
		return err
	}
	for _, sc := range streamConfigs(c) {
		var info *jetstream.StreamInfo
		err := AgainOnTimeout(ctx, func() error {
			s, err := js.Stream(ctx, sc.Name)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				s, err = js.CreateStream(ctx, sc)
				if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another service was first
					s, err = js.Stream(ctx, sc.Name)
				}
			}
			if err == nil {
				info = s.CachedInfo()
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
		reportDifferences(log, "stream", sc.Name, []difference{
			{"replicas", info.Config.Replicas, sc.Replicas},
			{"maxAge", info.Config.MaxAge, sc.MaxAge},
			{"duplicates", info.Config.Duplicates, sc.Duplicates},
		})
	}
	oc := objectStoreConfig(c)
	var st jetstream.ObjectStoreStatus
	err := AgainOnTimeout(ctx, func() error {
		obs, err := js.ObjectStore(ctx, ObjectBatches)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			obs, err = js.CreateObjectStore(ctx, oc)
			if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				obs, err = js.ObjectStore(ctx, ObjectBatches)
			}
		}
		if err == nil {
			st, err = obs.Status(ctx)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("ensure object store %s: %w", ObjectBatches, err)
	}
	reportDifferences(log, "objectStore", ObjectBatches, []difference{
		{"replicas", st.Replicas(), oc.Replicas},
		{"ttl", st.TTL(), oc.TTL},
	})
	// Of two services that started together with different partitions, each finds the other's streams.
	return CheckPartitions(ctx, js, c.Partitions)
}

// difference is one setting of a stream: what it has, and what this service would have given it.
type difference struct {
	field     string
	has, want any
}

func reportDifferences(log *slog.Logger, kind, name string, ds []difference) {
	for _, d := range ds {
		if d.has != d.want {
			log.Warn("a JetStream setting differs from this service's configuration; not changed here (its owner is the admin service)",
				kind, name, "field", d.field, "has", fmt.Sprint(d.has), "configured", fmt.Sprint(d.want))
		}
	}
}

// AgainOnTimeout runs an idempotent JetStream API call (creating or updating a stream, KV bucket or
// consumer) again while ctx is alive:
//   - when it times out, up to 5 times: on a cluster, a create racing another replica's create of the
//     same stream can go unanswered (every replica of every service ensures the streams, buckets and
//     consumers it uses when it starts);
//   - when the cluster is still forming (Transient), for up to clusterFormingWait: a node that has just
//     joined is "offline" to placement for a moment, and a service started with the cluster must not
//     exit for it (CI saw admin exit with "no suitable peers for placement, peer offline").
func AgainOnTimeout(ctx context.Context, call func() error) error {
	until := time.Now().Add(clusterFormingWait)
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := call()
		switch {
		case err == nil || ctx.Err() != nil:
			return err
		case errors.Is(err, context.DeadlineExceeded) && attempt < 5:
			continue
		case Transient(err) && time.Now().Before(until):
			select {
			case <-ctx.Done():
				return err
			case <-time.After(delay):
			}
			delay = min(2*delay, 2*time.Second)
		default:
			return err
		}
	}
}

// clusterFormingWait bounds how long AgainOnTimeout waits for a forming cluster.
const clusterFormingWait = 2 * time.Minute

// JetStream API error codes of a cluster that cannot serve a request yet (nats-server's
// JSClusterNoPeersErr and JSClusterNotAvailErr).
const (
	errCodeNoSuitablePeers     jetstream.ErrorCode = 10005
	errCodeClusterNotAvailable jetstream.ErrorCode = 10008
)

// Transient says whether err is a JetStream cluster's passing state rather than an answer: no stream
// leader answering yet (no responders), no peers for placement, or the system temporarily unavailable.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == errCodeNoSuitablePeers || apiErr.ErrorCode == errCodeClusterNotAvailable
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// LastSequence is the sequence of the last message on subject in stream; 0 when it has none.
func LastSequence(ctx context.Context, js jetstream.JetStream, stream, subject string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last message on %s: %w", subject, err)
	}
	return msg.Sequence, nil
}
