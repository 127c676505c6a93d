package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/eventwire"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

const (
	sourceID = "src1"
	writeKey = "wk-src1-0123456789"
)

type harness struct {
	t     testing.TB
	ns    *platform.EmbeddedNATS
	js    jetstream.JetStream
	nc    *nats.Conn
	store *configstore.Store
	in    *Ingest
	url   string
	parts bus.Partitions
}

func start(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	ns, _, _ := testenv.NATS(t)
	return startOn(t, ns, mutate)
}

// startOn runs an ingest on ns with a NATS connection of its own, as each replica of a deployment has.
func startOn(t testing.TB, ns *platform.EmbeddedNATS, mutate func(*Config)) *harness {
	t.Helper()
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutSource(ctx, &configv1.Source{Id: sourceID, Slug: "web", Enabled: true, WriteKeys: []string{writeKey}}); err != nil {
		t.Fatal(err)
	}
	tel, err := platform.NewTelemetry(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Common: platform.Common{Replicas: 1, AckWait: 30 * time.Second}, HTTPAddr: "127.0.0.1:0", PublishTimeout: time.Second, Workers: 2,
		MaxMessageBytes: 1 << 20, MaxInflightBytes: 64 << 20, EventsEncoding: "s2"}
	if mutate != nil {
		mutate(&cfg)
	}
	in, err := New(cfg, &platform.Process{Log: slog.New(slog.DiscardHandler), Telemetry: tel, NATS: nc, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Serve(t, in)
	t.Cleanup(cancel)
	return &harness{t: t, ns: ns, js: js, nc: nc, store: store, in: in, url: "http://" + in.Addr(), parts: cfg.EventsPartitions()}
}

func (h *harness) post(path, body string, mutate func(*http.Request)) (*http.Response, string) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// messages returns the first n messages stored for src1, as stored.
func (h *harness) messages(n int) [][]byte {
	h.t.Helper()
	cons, err := h.js.OrderedConsumer(context.Background(), h.parts.StreamOf(sourceID), jetstream.OrderedConsumerConfig{FilterSubjects: []string{h.parts.Subject(sourceID)}})
	if err != nil {
		h.t.Fatal(err)
	}
	msgs, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		h.t.Fatal(err)
	}
	var out [][]byte
	for m := range msgs.Messages() {
		out = append(out, m.Data())
	}
	return out
}

// batches returns the first n EventBatches stored for src1, whatever their encoding.
func (h *harness) batches(n int) []*eventsv1.EventBatch {
	h.t.Helper()
	var out []*eventsv1.EventBatch
	var r eventwire.Reader
	for _, msg := range h.messages(n) {
		var b eventsv1.EventBatch
		data, err := r.Unframe(msg)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := proto.Unmarshal(data, &b); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, &b)
	}
	return out
}

// The events encoding decides the bytes stored (docs/wire.md): S2 in a frame by default, and with proto
// the EventBatch unframed, which batchers from before encodings read.
func TestEventsAreStoredInTheEncodingTheSettingNames(t *testing.T) {
	var body strings.Builder
	body.WriteString(`{"batch":[`)
	for i := range 50 {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"type":"track","userId":"u%d","event":"Order Completed","properties":{"total":%d,"currency":"USD"}}`, i, i)
	}
	body.WriteString("]}")
	stored := map[string][]byte{}
	for _, enc := range []string{"s2", "proto"} {
		h := start(t, func(c *Config) { c.EventsEncoding = enc })
		if resp, got := h.post("/v1/batch", body.String(), nil); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", enc, resp.StatusCode, got)
		}
		stored[enc] = h.messages(1)[0]
		if b := h.batches(1)[0]; len(b.GetEvents()) != 50 {
			t.Errorf("%s: read back %d events, want 50", enc, len(b.GetEvents()))
		}
	}
	if s2 := stored["s2"]; len(s2) < 2 || s2[0] != 0x00 || eventwire.Encoding(s2[1]) != eventwire.S2 {
		t.Errorf("s2: message starts %x, want the frame of S2 (00 01)", stored["s2"][:2])
	}
	if err := proto.Unmarshal(stored["proto"], &eventsv1.EventBatch{}); err != nil {
		t.Errorf("proto: the message is not an unframed EventBatch: %v", err)
	}
	if len(stored["s2"])*2 > len(stored["proto"]) {
		t.Errorf("S2 message %d bytes, unframed %d: want less than half", len(stored["s2"]), len(stored["proto"]))
	}
}

func TestAnAcceptedRequestIsStoredAsOneBatchBeforeThe200(t *testing.T) {
	h := start(t, nil)
	resp, body := h.post("/v1/batch", `{"batch":[{"type":"track","userId":"u","event":"A"},{"type":"identify","anonymousId":"x"}]}`, nil)
	if resp.StatusCode != 200 || body != `{"success":true}` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got := h.batches(1)
	if len(got) != 1 || len(got[0].GetEvents()) != 2 || got[0].GetSourceId() != sourceID {
		t.Fatalf("stored %v", got)
	}
}

func TestARetriedRequestIsStoredOnce(t *testing.T) {
	h := start(t, nil)
	body := `{"userId":"u","event":"A","messageId":"retry-1"}`
	for range 3 {
		if resp, b := h.post("/v1/track", body, nil); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	if n := h.storedMessages(); n != 1 {
		t.Fatalf("EVENTS holds %d messages after 3 identical requests, want 1", n)
	}
}

func TestClientsOfEveryKindAreServed(t *testing.T) {
	h := start(t, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"userId":"u","name":"Home"}`))
	zw.Close()
	cases := []struct {
		name   string
		path   string
		body   string
		mutate func(*http.Request)
	}{
		{"gzip body", "/v1/page", gz.String(), func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }},
		{"analytics.js short path with text/plain and writeKey in the body", "/v1/t", `{"writeKey":"` + writeKey + `","userId":"u","event":"E"}`,
			func(r *http.Request) {
				r.Header.Del("Authorization")
				r.Header.Set("Content-Type", "text/plain")
				r.Header.Set("Origin", "https://shop.example")
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.post(c.path, c.body, c.mutate)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodOptions, h.url+"/v1/track", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestRefusalsCarryTheirStatusAndNameTheRule(t *testing.T) {
	h := start(t, nil)
	big := `{"userId":"u","event":"E","properties":{"x":"` + strings.Repeat("a", MaxEventBytes) + `"}}`
	bigBatch := `{"batch":[` + strings.Repeat(`{"type":"track","userId":"u","event":"E","properties":{"x":"`+strings.Repeat("b", 20000)+`"}},`, 26) + `{"type":"identify","userId":"u"}]}`
	cases := []struct {
		name, path, body string
		mutate           func(*http.Request)
		status           int
		field            string
	}{
		{"unknown write key", "/v1/track", `{"userId":"u","event":"E"}`, func(r *http.Request) { r.SetBasicAuth("nope", "") }, 401, "writeKey"},
		{"no write key", "/v1/track", `{"userId":"u","event":"E"}`, func(r *http.Request) { r.Header.Del("Authorization") }, 401, "writeKey"},
		{"event over 32 KB", "/v1/track", big, nil, 400, "body"},
		{"batch over 500 KB", "/v1/batch", bigBatch, nil, 400, "body"},
		{"malformed JSON", "/v1/identify", `{"userId":`, nil, 400, ""},
		{"missing identity", "/v1/identify", `{"traits":{}}`, nil, 400, "userId"},
		{"bad gzip", "/v1/track", "not gzip", func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }, 400, "Content-Encoding"},
		{"unknown path", "/v1/click", `{}`, nil, 404, "path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.post(c.path, c.body, c.mutate)
			if resp.StatusCode != c.status || !strings.Contains(body, `"field":"`+c.field+`"`) || !strings.Contains(body, `"success":false`) {
				t.Fatalf("got %d %s, want %d naming %q", resp.StatusCode, body, c.status, c.field)
			}
		})
	}
}

func TestAWriteKeyRevokedInTheConfigStopsWorkingWithoutARestart(t *testing.T) {
	h := start(t, nil)
	if resp, _ := h.post("/v1/track", `{"userId":"u","event":"E"}`, nil); resp.StatusCode != 200 {
		t.Fatalf("before revocation: %d", resp.StatusCode)
	}
	if err := h.store.PutSource(context.Background(), &configv1.Source{Id: sourceID, Enabled: true, WriteKeys: []string{"wk-new-key-000000"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the revocation to apply", func() bool {
		resp, _ := h.post("/v1/track", `{"userId":"u","event":"E"}`, nil)
		return resp.StatusCode == 401
	})
	resp, _ := h.post("/v1/track", `{"userId":"u","event":"E"}`, func(r *http.Request) { r.SetBasicAuth("wk-new-key-000000", "") })
	if resp.StatusCode != 200 {
		t.Fatalf("the new key: %d", resp.StatusCode)
	}
}

func TestAnOverLimitSourceGets429WithRetryAfter(t *testing.T) {
	h := start(t, func(c *Config) { c.RateLimit = 10 })
	batch := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"type":"track","userId":"u","event":"E"},`, 10_000), ",") + `]}`
	if resp, body := h.post("/v1/batch", batch, nil); resp.StatusCode != 200 {
		t.Fatalf("first burst: %d %s", resp.StatusCode, body)
	}
	resp, body := h.post("/v1/batch", batch, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "rate limit") {
		t.Fatalf("got %d %q %s, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestWhenJetStreamIsDownTheAnswerIs503NeverA200(t *testing.T) {
	h := start(t, func(c *Config) { c.PublishTimeout = 300 * time.Millisecond })
	h.ns.Shutdown()
	h.ns.WaitForShutdown()
	resp, body := h.post("/v1/track", `{"userId":"u","event":"E"}`, nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %s, want 503 with Retry-After", resp.StatusCode, body)
	}
}

func TestTheJetStreamEntryAcceptsLikeHTTPAndDeadLettersTheRest(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	if _, err := h.js.Publish(ctx, bus.IngestSubject(sourceID), []byte(`{"type":"track","userId":"u","event":"From JetStream","messageId":"js-1"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.Publish(ctx, bus.IngestSubject(sourceID), []byte(`{"type":"track","userId":"u"}`)); err != nil {
		t.Fatal(err)
	}
	got := h.batches(1)
	if len(got) != 1 || got[0].GetEvents()[0].GetMessageId() != "js-1" {
		t.Fatalf("events.src1 holds %v", got)
	}
	dl, err := h.js.OrderedConsumer(ctx, bus.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if m.Subject() != "deadletter.ingest."+sourceID || m.Headers().Get(bus.HeaderReason) != "event: is required for track calls" {
		t.Fatalf("dead letter %s with reason %q", m.Subject(), m.Headers().Get(bus.HeaderReason))
	}
}
