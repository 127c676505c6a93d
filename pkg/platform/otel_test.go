package platform_test

import (
	"context"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// Telemetry exports traces and metrics over OTLP with either protocol the standard variables name, under
// OTEL_SERVICE_NAME when it is set and the service's own name otherwise, and keeps the Prometheus registry.
func TestTelemetryExportsTracesAndMetricsOverTheOTLPProtocolTheVariablesName(t *testing.T) {
	for _, tc := range []struct {
		protocol, serviceNameEnv, wantService string
	}{
		{protocol: "grpc", wantService: "ingest"},
		{protocol: "http/protobuf", wantService: "ingest"},
		{protocol: "grpc", serviceNameEnv: "ingest-eu", wantService: "ingest-eu"},
		{protocol: "http/protobuf", serviceNameEnv: "ingest-eu", wantService: "ingest-eu"},
	} {
		t.Run(tc.protocol+"/"+tc.wantService, func(t *testing.T) {
			rcv := testenv.OTLPReceiver(t)
			endpoint := rcv.HTTPEndpoint
			if tc.protocol == "grpc" {
				endpoint = rcv.GRPCEndpoint
			}
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			t.Setenv("OTEL_SERVICE_NAME", tc.serviceNameEnv)
			ctx := context.Background()
			tel, err := platform.NewTelemetry(ctx, "ingest")
			if err != nil {
				t.Fatal(err)
			}
			_, span := tel.Tracer.Tracer("test").Start(ctx, "a span")
			span.End()
			counter, err := tel.Meter.Meter("test").Int64Counter("s3dest_test_things")
			if err != nil {
				t.Fatal(err)
			}
			counter.Add(ctx, 1)
			mfs, err := tel.Registry.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "s3dest_test_things_total" }) {
				t.Errorf("the Prometheus registry lacks s3dest_test_things_total")
			}
			// Shutdown flushes both exporters.
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := tel.Shutdown(sctx); err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(rcv.Spans(), func(s testenv.Span) bool { return s.Name == "a span" && s.Service == tc.wantService }) {
				t.Errorf("received spans %+v, want %q from service %q", rcv.Spans(), "a span", tc.wantService)
			}
			if !slices.Contains(rcv.Metrics(), testenv.Metric{Service: tc.wantService, Name: "s3dest_test_things"}) {
				t.Errorf("received metrics %+v, want s3dest_test_things from service %q", rcv.Metrics(), tc.wantService)
			}
		})
	}
}
