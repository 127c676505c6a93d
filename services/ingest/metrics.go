package ingest

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/metric"

	"github.com/s3dest/s3dest/pkg/platform"
)

// metrics are ingest's: the pipeline's (events accepted and rejected, dead letters, the INGEST
// consumer's pending messages) and its own count of analytics.js metrics beacons.
type metrics struct {
	*platform.Metrics
	beacons metric.Int64Counter
}

func newMetrics(m metric.MeterProvider) (*metrics, error) {
	pm, err := platform.NewMetrics(m)
	if err != nil {
		return nil, err
	}
	out := metrics{Metrics: pm}
	if out.beacons, err = m.Meter("s3dest/ingest").Int64Counter("s3dest_ingest_client_metrics_beacons", metric.WithDescription("analytics.js metrics beacons received on /v1/m and discarded")); err != nil {
		return nil, err
	}
	out.beacons.Add(context.Background(), 0) // exported from the start, not from the first beacon
	return &out, nil
}

func (m *metrics) accepted(ctx context.Context, sourceID string, n int) {
	m.EventsAccepted.Add(ctx, int64(n), m.With("source", sourceID))
}

// Rejection reasons, the bounded values of s3dest_events_rejected_total{reason}.
const (
	rejectInvalid      = "invalid"      // 400: the body or an event breaks a rule
	rejectUnauthorized = "unauthorized" // 401: no, an unknown or a revoked write key, or a disabled source
	rejectEndpoint     = "endpoint"     // 404, 405: not a Tracking API path or method
	rejectRateLimited  = "rate_limited" // 429: the source's rate limit
	rejectOverloaded   = "overloaded"   // 429: the process holds its limit of request bytes
	rejectUnavailable  = "unavailable"  // 503: JetStream or the write keys cannot be reached right now
)

// rejectReason is the reason label of a refusal.
func rejectReason(e *InputError) string {
	switch e.Status {
	case http.StatusUnauthorized:
		return rejectUnauthorized
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return rejectEndpoint
	case http.StatusTooManyRequests:
		if e.Field == "source" {
			return rejectRateLimited
		}
		return rejectOverloaded
	case http.StatusServiceUnavailable:
		return rejectUnavailable
	}
	return rejectInvalid
}

// rejected counts the events of a refused request: n once its events are known, else one.
func (m *metrics) rejected(ctx context.Context, e *InputError, n int) {
	m.EventsRejected.Add(ctx, int64(max(n, 1)), m.With("reason", rejectReason(e)))
}

// Dead-letter reasons of ingest.<sourceId> messages, the bounded values of
// s3dest_dead_letters_total{stage="ingest",reason}.
const (
	deadUnknownSource  = "unknown_source"
	deadDisabledSource = "disabled_source"
	deadInvalid        = "invalid" // too large, not Segment JSON, or an event breaks a rule
)

func (m *metrics) deadLettered(ctx context.Context, reason string) {
	m.DeadLetters.Add(ctx, 1, m.With("stage", platform.StageIngest, "reason", reason))
}

func (m *metrics) clientMetricsBeacon(ctx context.Context) { m.beacons.Add(ctx, 1) }
