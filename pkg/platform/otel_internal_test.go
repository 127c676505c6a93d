package platform

import "testing"

// A signal is exported only when the variables ask for it: an exporter named, or an OTLP endpoint set
// with the exporter left unset. Nothing set exports nothing, unlike the specification's default.
func TestASignalIsExportedOnlyWhenTheVariablesAskForIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		sig  otelSignal
		want bool
	}{
		{"nothing set", nil, tracesSignal, false},
		{"nothing set, metrics", nil, metricsSignal, false},
		{"an endpoint for every signal", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, metricsSignal, true},
		{"an endpoint for traces only: traces", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, tracesSignal, true},
		{"an endpoint for traces only: metrics", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, metricsSignal, false},
		{"otlp named, no endpoint (the default one)", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, tracesSignal, true},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, tracesSignal, false},
		{"console", map[string]string{"OTEL_METRICS_EXPORTER": "console"}, metricsSignal, true},
		{"prometheus is the ops /metrics", map[string]string{"OTEL_METRICS_EXPORTER": "prometheus"}, metricsSignal, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exportSignal(func(k string) string { return tc.env[k] }, tc.sig); got != tc.want {
				t.Errorf("exportSignal(%v, %s) = %v, want %v", tc.env, tc.sig.exporter, got, tc.want)
			}
		})
	}
}
