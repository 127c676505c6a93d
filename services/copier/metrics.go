package copier

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/retention"
)

// Dead-letter reasons, the bounded values of s3dest_dead_letters_total{stage="copier",reason}.
const (
	reasonRetention   = "retention"    // the file's retention ended before its destination accepted it
	reasonStagingGone = "staging_gone" // the staged object was gone when the file was read
	reasonRefused     = "refused"      // S3 refused the file for good (KeyTooLongError, InvalidBucketName, …)
	reasonPayload     = "payload"      // the lane message could not be decoded
)

// Delivery failure reasons, the bounded values of s3dest_delivery_failures_total{destination,reason}.
const (
	failSettings     = "settings"           // the destination names one of our buckets, or a kind that is off
	failIntermediate = "intermediate_role"  // assuming our own intermediate role failed
	failAssumeDenied = "assume_role_denied" // the customer's role refused us (trust policy, External ID)
	failAssume       = "assume_role"        // AssumeRole failed otherwise
	failWrongRegion  = "wrong_region"       // the bucket is in another region than the settings say
	failNoBucket     = "no_such_bucket"
	failPutDenied    = "put_denied" // the role may not PutObject into the bucket
	failPut          = "put_object" // the write failed otherwise (throttled, 5xx, network)
)

type metrics struct {
	*platform.Metrics
	carried  metric.Int64Counter
	deadline metric.Float64ObservableGauge // {destination}
	meter    metric.Meter
}

func newMetrics(m metric.MeterProvider) (*metrics, error) {
	pm, err := platform.NewMetrics(m)
	if err != nil {
		return nil, err
	}
	out := metrics{Metrics: pm, meter: m.Meter("s3dest/copier")}
	if out.carried, err = out.meter.Int64Counter("s3dest_copier_files_carried",
		metric.WithDescription("files whose retention ended while their destination's retention was extended: refreshed in staging and carried forward")); err != nil {
		return nil, err
	}
	if out.deadline, err = out.meter.Float64ObservableGauge("s3dest_retention_deadline_timestamp_seconds",
		metric.WithDescription("Unix time at which the oldest file still waiting for a destination can be dead-lettered undelivered (its retention deadline, or the end of the destination's retention extension if later), read from its copier lane at each scrape; absent while nothing waits. Every copier replica reports the same lanes: aggregate replicas with min")); err != nil {
		return nil, err
	}
	out.carried.Add(context.Background(), 0) // exported from the start, not from the first carry
	return &out, nil
}

func (m *metrics) deadLettered(ctx context.Context, reason string) {
	m.DeadLetters.Add(ctx, 1, m.With("stage", platform.StageCopier, "reason", reason))
}

func (m *metrics) carriedForward(ctx context.Context) { m.carried.Add(ctx, 1) }

// delivered counts a file the destination received for the first time, and its lag.
func (m *metrics) delivered(ctx context.Context, destinationID string, b *batchv1.Batch, lagSeconds float64) {
	m.FilesDelivered.Add(ctx, 1, m.With("destination", destinationID))
	m.EventsDelivered.Add(ctx, b.GetEventCount(), m.With("destination", destinationID))
	if b.GetOldestReceivedAt() != nil {
		m.DeliveryLag.Record(ctx, lagSeconds)
	}
}

func (m *metrics) failed(ctx context.Context, destinationID, reason string) {
	m.DeliveryFailures.Add(ctx, 1, m.With("destination", destinationID, "reason", reason))
}

// assumed counts one AssumeRole call into a customer's role.
func (m *metrics) assumed(ctx context.Context, err error) {
	m.AssumeRole.Add(ctx, 1, m.With("caller", platform.StageCopier, "outcome", awsclient.AssumeOutcome(err)))
}

// failureReason is the reason label of a delivery failure at step (classified by classify).
func failureReason(err error, at step, region string) string {
	forbidden := awsclient.HTTPStatus(err) == http.StatusForbidden || awsclient.ErrorCode(err) == "AccessDenied"
	switch {
	case errors.Is(err, errIntermediate):
		return failIntermediate
	case awsclient.BucketRegion(err) != "" && awsclient.BucketRegion(err) != region:
		return failWrongRegion
	case at == stepAssume && forbidden:
		return failAssumeDenied
	case at == stepAssume:
		return failAssume
	case awsclient.ErrorCode(err) == "NoSuchBucket":
		return failNoBucket
	case forbidden:
		return failPutDenied
	}
	return failPut
}

// pending is what the copier lanes' consumers (every destination's) have not had acknowledged.
func (c *Copier) pending(ctx context.Context) (int64, bool) {
	n, err := bus.Pending(ctx, c.js, bus.StreamBatches, func(i *jetstream.ConsumerInfo) bool {
		return strings.HasPrefix(i.Name, bus.CopierConsumer(""))
	})
	return n, err == nil
}

// deadlineTimeout bounds the lane reads of one collection: a scrape answers without the gauge rather
// than late.
const deadlineTimeout = 2 * time.Second

// observeDeadlines reports, at each collection, the retention deadline of each destination's oldest
// waiting file (retentionDeadlines).
func (m *metrics) observeDeadlines(f func(ctx context.Context, report func(destinationID string, deadline time.Time))) error {
	_, err := m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, deadlineTimeout)
		defer cancel()
		f(ctx, func(id string, deadline time.Time) {
			o.ObserveFloat64(m.deadline, float64(deadline.UnixMilli())/1000, metric.WithAttributes(attribute.String("destination", id)))
		})
		return nil
	}, m.deadline)
	return err
}

// retentionDeadlines reports each lane's oldest waiting file's deadline, or the end of its destination's
// retention extension when later (until then the file is carried forward, not dropped); nothing for a
// lane with nothing waiting, or whose lane could not be read.
func (c *Copier) retentionDeadlines(ctx context.Context, report func(destinationID string, deadline time.Time)) {
	c.mu.Lock()
	lanes := c.laneView
	c.mu.Unlock()
	for id, l := range lanes {
		lane, err := retention.LaneOf(ctx, c.js, id, l.sourceID, c.retention())
		if err != nil || lane.OldestDeadline.IsZero() {
			continue
		}
		deadline := lane.OldestDeadline
		if d, ok := c.view.Destination(id); ok && d.GetRetentionExtendedUntil() != nil && d.GetRetentionExtendedUntil().AsTime().After(deadline) {
			deadline = d.GetRetentionExtendedUntil().AsTime()
		}
		report(id, deadline)
	}
}

// reportFailing reports each destination of a lane: failing while its lane is on the slow schedule.
func (c *Copier) reportFailing(report func(destinationID string, failing bool)) {
	c.mu.Lock()
	lanes := c.laneView
	c.mu.Unlock()
	for id, l := range lanes {
		l.mu.Lock()
		failing := !l.retryAt.IsZero()
		l.mu.Unlock()
		report(id, failing)
	}
}
