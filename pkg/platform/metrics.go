package platform

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are the pipeline's metrics of DESIGN.md §9, the ones dashboards and alerts name. Every
// service makes them with NewMetrics from its process's MeterProvider; the instruments live in one
// meter ("s3dest"), and the SDK hands back the same instrument for the same name there, so services
// sharing a process (`s3dest dev`) add to one series instead of registering a metric twice.
//
// Prometheus names: the exporter adds `_total` to counters and the unit (`_seconds`) to the
// histogram. Labels are bounded: source and destination IDs (bounded by the workspace), stages and
// reasons from fixed lists; never a messageId or a key. Counters are added once per request, file or
// message, never per event.
type Metrics struct {
	EventsAccepted   metric.Int64Counter     // {source}: events stored in JetStream by ingest
	EventsRejected   metric.Int64Counter     // {reason}: events refused by the Tracking API
	FilesSealed      metric.Int64Counter     // {source}: files the batcher sealed
	FilesStaged      metric.Int64Counter     // {source}: files the stager put into staging
	FilesDelivered   metric.Int64Counter     // {destination}: files a destination's bucket received
	EventsDelivered  metric.Int64Counter     // {destination}: their events
	DeliveryLag      metric.Float64Histogram // seconds from a file's oldest receivedAt to its object being in the customer's bucket
	DeliveryFailures metric.Int64Counter     // {destination,reason}: delivery attempts that failed
	DeadLetters      metric.Int64Counter     // {stage,reason}: messages sent to the dead letters
	AssumeRole       metric.Int64Counter     // {caller,outcome}: STS AssumeRole calls into customer roles (awsclient.AssumeOutcome)

	failing metric.Int64ObservableGauge // {destination}
	pending metric.Int64ObservableGauge // {stage}
	meter   metric.Meter

	attrs sync.Map // attrKey -> metric.MeasurementOption (see With)
}

// Stages, the values of the stage label.
const (
	StageIngest  = "ingest"
	StageBatcher = "batcher"
	StageStager  = "stager"
	StageCopier  = "copier"
)

// LagBuckets are the delivery lag histogram's buckets, in seconds: from a short flush interval to the
// retention's scale (a failing destination's files wait for days).
var LagBuckets = []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600}

// NewMetrics returns the §9 instruments of mp.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	meter := mp.Meter("s3dest")
	m := &Metrics{meter: meter}
	var err error
	counter := func(dst *metric.Int64Counter, name, help string) {
		if err == nil {
			*dst, err = meter.Int64Counter(name, metric.WithDescription(help))
		}
	}
	counter(&m.EventsAccepted, "s3dest_events_accepted", "events stored in JetStream by ingest (HTTP and ingest.<sourceId>), by source")
	counter(&m.EventsRejected, "s3dest_events_rejected", "events refused by the Tracking API, by reason (a request refused before its events are counted counts as one)")
	counter(&m.FilesSealed, "s3dest_files_sealed", "files sealed by the batcher, by source")
	counter(&m.FilesStaged, "s3dest_files_staged", "files put into the staging bucket by the stager, by source")
	counter(&m.FilesDelivered, "s3dest_files_delivered", "files written into a destination's bucket, by destination")
	counter(&m.EventsDelivered, "s3dest_events_delivered", "events of the files written into a destination's bucket, by destination")
	counter(&m.DeliveryFailures, "s3dest_delivery_failures", "delivery attempts that failed, by destination and reason")
	counter(&m.DeadLetters, "s3dest_dead_letters", "messages sent to the dead letters, by stage and reason")
	counter(&m.AssumeRole, "s3dest_sts_assume_role", "STS AssumeRole calls into customer roles, by caller (copier: delivery credentials; validator: its two calls per validation, without and with the External ID, where denied without it is the healthy answer) and outcome (success, denied, error)")
	if err != nil {
		return nil, err
	}
	if m.DeliveryLag, err = meter.Float64Histogram("s3dest_delivery_lag", metric.WithUnit("s"),
		metric.WithDescription("seconds from the receivedAt of a delivered file's oldest event to its object being in the customer's bucket"),
		metric.WithExplicitBucketBoundaries(LagBuckets...)); err != nil {
		return nil, err
	}
	if m.failing, err = meter.Int64ObservableGauge("s3dest_destination_failing",
		metric.WithDescription("1 while a destination fails with an error only its owner can fix (its files wait in staging), else 0")); err != nil {
		return nil, err
	}
	if m.pending, err = meter.Int64ObservableGauge("s3dest_consumer_pending_messages",
		metric.WithDescription("messages a stage's JetStream consumers have not had acknowledged (pending plus in flight), read from consumer info at each scrape; every replica of a stage reports the same consumers, so aggregate replicas with max")); err != nil {
		return nil, err
	}
	return m, nil
}

// With returns the measurement option for at most two label pairs (name, value, name, value), made
// once per distinct set of values: a hot path then adds without building an attribute set.
func (m *Metrics) With(kv ...string) metric.MeasurementOption {
	var key attrKey
	copy(key[:], kv)
	if o, ok := m.attrs.Load(key); ok {
		return o.(metric.MeasurementOption)
	}
	attrs := make([]attribute.KeyValue, 0, len(kv)/2)
	for i := 0; i+1 < len(kv) && i+1 < len(key); i += 2 {
		attrs = append(attrs, attribute.String(kv[i], kv[i+1]))
	}
	o, _ := m.attrs.LoadOrStore(key, metric.WithAttributeSet(attribute.NewSet(attrs...)))
	return o.(metric.MeasurementOption)
}

// attrKey is the label pairs of With, as a map key that costs no allocation.
type attrKey [4]string

// ObserveFailing registers f, called at each collection, to report whether each destination fails.
func (m *Metrics) ObserveFailing(f func(report func(destinationID string, failing bool))) error {
	_, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		f(func(id string, failing bool) {
			v := int64(0)
			if failing {
				v = 1
			}
			o.ObserveInt64(m.failing, v, metric.WithAttributes(attribute.String("destination", id)))
		})
		return nil
	}, m.failing)
	return err
}

// pendingTimeout bounds the consumer info reads of one collection: a scrape answers without the
// pending gauge rather than late.
const pendingTimeout = 2 * time.Second

// ObservePending registers f, called at each collection, to report the stage's pending messages; f
// reports ok false when it could not read them (nothing is reported then).
func (m *Metrics) ObservePending(stage string, f func(ctx context.Context) (pending int64, ok bool)) error {
	attrs := metric.WithAttributes(attribute.String("stage", stage))
	_, err := m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, pendingTimeout)
		defer cancel()
		if n, ok := f(ctx); ok {
			o.ObserveInt64(m.pending, n, attrs)
		}
		return nil
	}, m.pending)
	return err
}
