package copier

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Dead-letter reasons, the bounded values of s3dest_dead_letters_total{stage="copier",reason}.
const (
	reasonRetention   = "retention"    // the file's retention ended before its destination accepted it
	reasonStagingGone = "staging_gone" // the staged object was gone when the file was read
	reasonRefused     = "refused"      // S3 refused the file for good (KeyTooLongError, InvalidBucketName, …)
	reasonPayload     = "payload"      // the lane message could not be decoded
)

type metrics struct {
	deadLetters metric.Int64Counter
	carried     metric.Int64Counter
}

func newMetrics(m metric.MeterProvider) (*metrics, error) {
	meter := m.Meter("s3dest/copier")
	var out metrics
	var err error
	if out.deadLetters, err = meter.Int64Counter("s3dest_dead_letters",
		metric.WithDescription("messages sent to the dead letters, by stage and reason (DESIGN.md §9)")); err != nil {
		return nil, err
	}
	if out.carried, err = meter.Int64Counter("s3dest_copier_files_carried",
		metric.WithDescription("files whose retention ended while their destination's retention was extended: refreshed in staging and carried forward")); err != nil {
		return nil, err
	}
	return &out, nil
}

func (m *metrics) deadLettered(ctx context.Context, reason string) {
	m.deadLetters.Add(ctx, 1, metric.WithAttributes(attribute.String("stage", "copier"), attribute.String("reason", reason)))
}

func (m *metrics) carriedForward(ctx context.Context) { m.carried.Add(ctx, 1) }
