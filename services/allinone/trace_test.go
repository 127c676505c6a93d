package allinone

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// One trace follows an event through the local cluster's separate processes, from the HTTP request at
// ingest to the PutObject into the customer's bucket at the copier, exported over OTLP/gRPC by each
// process to an in-process collector (docs/tracing.md). Two requests fan in to one file: the file's
// spans are children of the first request's and link to the other's. No span carries a secret.
func TestOneTraceFollowsAnEventFromItsHTTPRequestToTheCustomersPutObject(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole local cluster as processes: skipped under -short")
	}
	rcv := testenv.OTLPReceiver(t)
	c := startLocalCluster(t, map[string]string{
		"FLUSH_INTERVAL": "2s", "LOG_LEVEL": "warn",
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.GRPCEndpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500",
	})
	sum := c.bootstrap(t)

	// Two requests to one replica, the second once the first is answered: both events are in EVENTS
	// in that order, and well within one flush interval, so in one file.
	for i := range 2 {
		body := fmt.Sprintf(`{"userId":"trace-user","event":"Traced","messageId":"traced-%d"}`, i)
		req, err := http.NewRequest(http.MethodPost, sum.TrackingURLs[0]+"/v1/track", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(sum.WriteKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("track %d: %s", i, resp.Status)
		}
	}
	deliveredIDs(t, sum.Summary, 2)

	// The requests' server spans, in the order they were sent (one trace each).
	var requests []testenv.Span
	var put testenv.Span
	var byID map[string]testenv.Span
	testenv.Eventually(t, 30*time.Second, "the ingest request spans and the copier's PutObject into the customer's bucket", func() bool {
		spans := rcv.Spans()
		byID = map[string]testenv.Span{}
		requests = requests[:0]
		put = testenv.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
			if s.Service == "ingest" && s.Name == "tracking /v1/track" {
				requests = append(requests, s)
			}
			if s.Service == "copier" && s.Name == "S3.PutObject" && s.Attributes["aws.s3.bucket"] == sum.Bucket {
				put = s
			}
		}
		if len(requests) < 2 || put.SpanID == "" {
			return false
		}
		// Every ancestor of the PutObject has arrived too (processes export on their own schedules).
		for s := put; s.ParentSpanID != ""; {
			p, ok := byID[s.ParentSpanID]
			if !ok {
				return false
			}
			s = p
		}
		return true
	})
	if len(requests) != 2 {
		t.Fatalf("%d ingest request spans, want 2", len(requests))
	}
	if requests[0].TraceID == requests[1].TraceID {
		t.Fatalf("both requests are in trace %s, want one trace each", requests[0].TraceID)
	}

	// Walk up from the PutObject: its chain of parents crosses the processes in pipeline order and ends
	// at the first request's server span.
	var chain []string
	var seal testenv.Span
	s := put
	for {
		chain = append(chain, s.Service+":"+s.Name)
		if s.Service == "batcher" && s.Name == "batcher.seal" {
			seal = s
		}
		if s.ParentSpanID == "" {
			break
		}
		s = byID[s.ParentSpanID]
	}
	t.Logf("the PutObject's chain, child to root: %s", strings.Join(chain, " ← "))
	if s.SpanID != requests[0].SpanID {
		t.Errorf("the PutObject's root span is %s:%s (trace %s), want the first request's server span (trace %s)",
			s.Service, s.Name, s.TraceID, requests[0].TraceID)
	}
	if put.TraceID != requests[0].TraceID {
		t.Errorf("the PutObject is in trace %s, want the first request's %s", put.TraceID, requests[0].TraceID)
	}
	var services []string
	for _, step := range slices.Backward(chain) {
		svc, _, _ := strings.Cut(step, ":")
		if len(services) == 0 || services[len(services)-1] != svc {
			services = append(services, svc)
		}
	}
	if want := []string{"ingest", "batcher", "stager", "copier"}; !slices.Equal(services, want) {
		t.Errorf("the chain crosses the services %v, want %v", services, want)
	}
	for _, name := range []string{"batcher:batcher.seal", "stager:stager.stage", "copier:copier.copy"} {
		if !slices.Contains(chain, name) {
			t.Errorf("the chain %v has no %s", chain, name)
		}
	}
	// The fan-in: the file's seal span links to the second request's span.
	if !slices.Contains(seal.Links, testenv.SpanRef{TraceID: requests[1].TraceID, SpanID: requests[1].SpanID}) {
		t.Errorf("batcher.seal links %v, want the second request's span %s/%s", seal.Links, requests[1].TraceID, requests[1].SpanID)
	}

	// Metrics reach the collector too, under each service's name.
	testenv.Eventually(t, 30*time.Second, "metrics from ingest over OTLP", func() bool {
		return slices.ContainsFunc(rcv.Metrics(), func(m testenv.Metric) bool { return m.Service == "ingest" })
	})

	// No secret in any span: the write key, the admin and validator tokens, MinIO's root password, the
	// credentials key, nor an AWS signature or session token.
	secrets := []string{sum.WriteKey, sum.AdminToken, sum.S3SecretKey, c.env["VALIDATOR_TOKEN"], c.env["CREDENTIALS_KEY"]}
	for _, sp := range rcv.Spans() {
		for k, v := range sp.Attributes {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(v, secret) {
					t.Errorf("span %s:%s attribute %s carries a secret", sp.Service, sp.Name, k)
				}
			}
			if l := strings.ToLower(k + "=" + v); strings.Contains(l, "authorization") || strings.Contains(l, "x-amz-security-token") || strings.Contains(l, "signature=") {
				t.Errorf("span %s:%s attribute %s looks like a credential: %s", sp.Service, sp.Name, k, v)
			}
		}
	}
}
