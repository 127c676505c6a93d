package platform

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is a process's tracer and meter providers. Metrics are always exported to Prometheus
// through Registry (served at the ops address's /metrics). Traces, and metrics a second time, go to an
// OTLP collector only when the standard variables ask for it (see exportSignal), so nothing is exported
// and nothing is paid for export by default. Spans are still created either way, which gives every log
// line a trace ID.
type Telemetry struct {
	Tracer   trace.TracerProvider
	Meter    metric.MeterProvider
	Registry *prometheus.Registry

	shutdown []func(context.Context) error
}

// NewTelemetry sets up telemetry for the named service. Its resource's service.name is service unless
// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise. The exporters are
// those of the standard OTEL_* variables, through autoexport: OTEL_TRACES_EXPORTER and
// OTEL_METRICS_EXPORTER (otlp, console, none), OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL (grpc or
// http/protobuf, the default), OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT, _HEADERS, _TIMEOUT, and the
// batch span processor's and periodic reader's OTEL_BSP_* and OTEL_METRIC_EXPORT_*.
//
// It does not install global providers: pass Telemetry to whoever needs it. It installs the W3C
// propagator globally, which carries trace context in HTTP and NATS headers.
func NewTelemetry(ctx context.Context, service string) (*Telemetry, error) {
	// Later detectors win: the environment's service name over the one given.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(semconv.ServiceName(service)), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	t := &Telemetry{Registry: prometheus.NewRegistry()}
	t.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exportSignal(os.Getenv, tracesSignal) {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*): %w", err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			topts = append(topts, sdktrace.WithBatcher(exp))
		}
	}
	tp := sdktrace.NewTracerProvider(topts...)
	t.Tracer = tp
	t.shutdown = append(t.shutdown, tp.Shutdown)

	prom, err := otelprom.New(otelprom.WithRegisterer(t.Registry))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if exportSignal(os.Getenv, metricsSignal) {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			_ = tp.Shutdown(ctx)
			return nil, fmt.Errorf("metric exporter (OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_*): %w", err)
		}
		if !autoexport.IsNoneMetricReader(r) {
			mopts = append(mopts, sdkmetric.WithReader(r))
		}
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	t.Meter = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)

	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return t, nil
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// otelSignal names the variables of one OTel signal.
type otelSignal struct {
	exporter, endpoint string
}

var (
	tracesSignal  = otelSignal{exporter: "OTEL_TRACES_EXPORTER", endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}
	metricsSignal = otelSignal{exporter: "OTEL_METRICS_EXPORTER", endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"}
)

// exportSignal reports whether a signal gets an exporter of autoexport's. The specification's default
// exporter is otlp to localhost; s3dest's is none, so that a process without a collector neither
// exports nor retries: a signal is exported when its OTEL_*_EXPORTER names an exporter, or, unset, when
// an OTLP endpoint is set for it (OTEL_EXPORTER_OTLP_ENDPOINT or the signal's own). For metrics,
// "prometheus" is the ops address's /metrics, which is always served: no second listener is opened.
func exportSignal(getenv func(string) string, s otelSignal) bool {
	switch getenv(s.exporter) {
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv(s.endpoint) != ""
	case "none":
		return false
	case "prometheus":
		return s.exporter != metricsSignal.exporter
	}
	return true
}
