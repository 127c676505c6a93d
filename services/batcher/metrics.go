package batcher

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"

	"github.com/s3dest/s3dest/pkg/platform"
)

// metrics are the batcher's own instruments. The values are copied from the Run goroutine's state at
// each tick, so a scrape never touches it.
type metrics struct {
	*platform.Metrics
	ids, shortened, fenced atomic.Int64
}

// Dead-letter reasons of EVENTS messages, the bounded values of s3dest_dead_letters_total{stage="batcher",reason}.
const (
	reasonPayload        = "payload"         // not an EventBatch
	reasonSourceMismatch = "source_mismatch" // its sourceId is not its subject's
)

func newMetrics(m metric.MeterProvider) (*metrics, error) {
	pm, err := platform.NewMetrics(m)
	if err != nil {
		return nil, err
	}
	meter := m.Meter("s3dest/batcher")
	out := &metrics{Metrics: pm}
	ids, err := meter.Int64ObservableGauge("s3dest_batcher_dedupe_ids", metric.WithDescription("messageIds remembered for the dedupe window"))
	if err != nil {
		return nil, err
	}
	bytes, err := meter.Int64ObservableGauge("s3dest_batcher_dedupe_bytes", metric.WithUnit("By"),
		metric.WithDescription("memory of the dedupe window, at its measured cost per messageId (at most 36 bytes)"))
	if err != nil {
		return nil, err
	}
	shortened, err := meter.Int64ObservableCounter("s3dest_batcher_dedupe_window_shortened",
		metric.WithDescription("times the dedupe window was cut short because it held dedupe-max-ids messageIds"))
	if err != nil {
		return nil, err
	}
	fenced, err := meter.Int64ObservableCounter("s3dest_batcher_seals_fenced",
		metric.WithDescription("seals refused because another batcher sealed the source since (a stalled owner, or its successor)"))
	if err != nil {
		return nil, err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(ids, out.ids.Load())
		o.ObserveInt64(bytes, out.ids.Load()*idBytes)
		o.ObserveInt64(shortened, out.shortened.Load())
		o.ObserveInt64(fenced, out.fenced.Load())
		return nil
	}, ids, bytes, shortened, fenced)
	return out, err
}

// observe copies the batcher's counts for the next scrape; called from the Run goroutine.
func (m *metrics) observe(r *recentIDs, fenced int64) {
	m.ids.Store(int64(r.len()))
	m.shortened.Store(r.shortened)
	m.fenced.Store(fenced)
}
