package ingest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/s3dest/s3dest/pkg/platform"
)

// BenchmarkMetricsPerRequest is what the metrics cost one Tracking API request: the §9 counter ingest
// adds once per request (whatever its events), and otelhttp's request metrics, each against the
// Prometheus-backed MeterProvider a process has and against a no-op one. Divide by a request's events
// (100 in BenchmarkIngestBatch) for the cost per event.
func BenchmarkMetricsPerRequest(b *testing.B) {
	tel, err := platform.NewTelemetry(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	m, err := newMetrics(tel.Meter)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("events accepted counter", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			m.accepted(ctx, "source-1", 100)
		}
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"success":true}`)) })
	for _, c := range []struct {
		name string
		mp   metric.MeterProvider
	}{{"otelhttp with no-op meters", noop.NewMeterProvider()}, {"otelhttp with Prometheus meters", tel.Meter}} {
		b.Run(c.name, func(b *testing.B) {
			h := otelhttp.NewHandler(ok, "tracking", otelhttp.WithTracerProvider(tel.Tracer), otelhttp.WithMeterProvider(c.mp))
			req := httptest.NewRequest(http.MethodPost, "/v1/batch", nil)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
