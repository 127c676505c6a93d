package ingest

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

type metrics struct {
	events      metric.Int64Counter
	rejections  metric.Int64Counter
	deadLetters metric.Int64Counter
	beacons     metric.Int64Counter
}

func newMetrics(m metric.MeterProvider) (*metrics, error) {
	meter := m.Meter("s3dest/ingest")
	var out metrics
	var err error
	if out.events, err = meter.Int64Counter("s3dest_ingest_events_accepted", metric.WithDescription("events stored in JetStream")); err != nil {
		return nil, err
	}
	if out.rejections, err = meter.Int64Counter("s3dest_ingest_requests_rejected", metric.WithDescription("requests refused, by HTTP status")); err != nil {
		return nil, err
	}
	if out.deadLetters, err = meter.Int64Counter("s3dest_ingest_dead_letters", metric.WithDescription("messages on ingest.<sourceId> sent to the dead letters")); err != nil {
		return nil, err
	}
	if out.beacons, err = meter.Int64Counter("s3dest_ingest_client_metrics_beacons", metric.WithDescription("analytics.js metrics beacons received on /v1/m and discarded")); err != nil {
		return nil, err
	}
	return &out, nil
}

func (m *metrics) accepted(ctx context.Context, sourceID string, n int) {
	m.events.Add(ctx, int64(n), metric.WithAttributes(attribute.String("source", sourceID)))
}

func (m *metrics) rejected(ctx context.Context, status int) {
	m.rejections.Add(ctx, 1, metric.WithAttributes(attribute.String("status", strconv.Itoa(status))))
}

func (m *metrics) deadLettered(ctx context.Context, sourceID string) {
	m.deadLetters.Add(ctx, 1, metric.WithAttributes(attribute.String("source", sourceID)))
}

func (m *metrics) clientMetricsBeacon(ctx context.Context) { m.beacons.Add(ctx, 1) }
