package testenv

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// OTLP is an in-process OpenTelemetry collector: it takes traces and metrics over OTLP/gRPC and
// OTLP/HTTP (protobuf) and keeps what it received, flattened, for a test to look at. It stands for the
// collector an operator runs, the boundary s3dest does not own.
type OTLP struct {
	// GRPCEndpoint and HTTPEndpoint are OTEL_EXPORTER_OTLP_ENDPOINT values for the protocols grpc and
	// http/protobuf.
	GRPCEndpoint, HTTPEndpoint string

	mu      sync.Mutex
	spans   []Span
	metrics []Metric
}

// Span is one received span: its resource's service.name, and IDs in hex.
type Span struct {
	Service                       string
	Name                          string
	TraceID, SpanID, ParentSpanID string
	// Links are the span contexts the span links to.
	Links []SpanRef
	// Attributes are the span's attributes, each value as its string form.
	Attributes map[string]string
}

// SpanRef is a span context: trace and span ID in hex.
type SpanRef struct{ TraceID, SpanID string }

// Metric is one received metric's name and its resource's service.name.
type Metric struct{ Service, Name string }

// OTLPReceiver starts an OTLP receiver on two free 127.0.0.1 ports; t.Cleanup stops it.
func OTLPReceiver(t testing.TB) *OTLP {
	t.Helper()
	o := &OTLP{}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, otlpTraces{o: o})
	colmetricpb.RegisterMetricsServiceServer(gs, otlpMetrics{o: o})
	go func() { _ = gs.Serve(gl) }()
	t.Cleanup(gs.Stop)

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		req := &coltracepb.ExportTraceServiceRequest{}
		if readOTLP(w, r, req) {
			o.addTraces(req)
			writeOTLP(w, &coltracepb.ExportTraceServiceResponse{})
		}
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, r *http.Request) {
		req := &colmetricpb.ExportMetricsServiceRequest{}
		if readOTLP(w, r, req) {
			o.addMetrics(req)
			writeOTLP(w, &colmetricpb.ExportMetricsServiceResponse{})
		}
	})
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(hl) }()
	t.Cleanup(func() { _ = hs.Close() })

	o.GRPCEndpoint = "http://" + gl.Addr().String()
	o.HTTPEndpoint = "http://" + hl.Addr().String()
	return o
}

// Spans returns every span received so far.
func (o *OTLP) Spans() []Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Span(nil), o.spans...)
}

// Metrics returns every metric received so far, once per export.
func (o *OTLP) Metrics() []Metric {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Metric(nil), o.metrics...)
}

type otlpTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	o *OTLP
}

func (s otlpTraces) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.o.addTraces(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type otlpMetrics struct {
	colmetricpb.UnimplementedMetricsServiceServer
	o *OTLP
}

func (s otlpMetrics) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	s.o.addMetrics(req)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func (o *OTLP) addTraces(req *coltracepb.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := serviceName(rs.GetResource())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{Service: service, Name: sp.GetName(), TraceID: hex.EncodeToString(sp.GetTraceId()),
					SpanID: hex.EncodeToString(sp.GetSpanId()), ParentSpanID: hex.EncodeToString(sp.GetParentSpanId()),
					Attributes: attributes(sp.GetAttributes())}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, SpanRef{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				o.spans = append(o.spans, s)
			}
		}
	}
}

func (o *OTLP) addMetrics(req *colmetricpb.ExportMetricsServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		service := serviceName(rm.GetResource())
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				o.metrics = append(o.metrics, Metric{Service: service, Name: m.GetName()})
			}
		}
	}
}

func serviceName(r *resourcepb.Resource) string {
	return attributes(r.GetAttributes())["service.name"]
}

func attributes(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		if s, ok := v.GetValue().(*commonpb.AnyValue_StringValue); ok {
			m[kv.GetKey()] = s.StringValue
		} else {
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// readOTLP decodes an OTLP/HTTP protobuf body (gzip or not) into req, answering 400 if it cannot.
func readOTLP(w http.ResponseWriter, r *http.Request, req proto.Message) bool {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err == nil {
		err = proto.Unmarshal(data, req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeOTLP(w http.ResponseWriter, resp proto.Message) {
	data, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(data)
}
