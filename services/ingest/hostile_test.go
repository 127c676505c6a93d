package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// Write keys ship inside every web page that loads analytics.js, so these tests play a caller who has
// one and means harm: every request must cost what its size says, and every refusal must be final.

// amplifiedBatch is a batch whose batch-level context of contextBytes is merged into each of its tiny
// track events, as many as fit in bodyBytes.
func amplifiedBatch(contextBytes, bodyBytes int) string {
	var b strings.Builder
	b.WriteString(`{"context":{"pad":"` + strings.Repeat("c", contextBytes) + `"},"batch":[`)
	for i := 0; b.Len() < bodyBytes-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","userId":"u","event":"E%d"}`, i)
	}
	b.WriteString("]}")
	return b.String()
}

// refusal decodes a refusal's body.
func refusal(t *testing.T, body string) (field, rule string) {
	t.Helper()
	var e struct {
		Success     bool
		Field, Rule string
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Success || e.Rule == "" {
		t.Fatalf("refusal body %q does not name a rule (%v)", body, err)
	}
	return e.Field, e.Rule
}

func (h *harness) storedMessages() uint64 {
	h.t.Helper()
	st, err := h.js.Stream(context.Background(), h.parts.StreamOf(sourceID))
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

func TestABatchWhoseContextWouldMultiplyItIsRefusedFinallyNotWith503(t *testing.T) {
	h := start(t, nil)
	for _, c := range []struct {
		name               string
		contextBytes, size int
	}{
		{"467 KB: 30 KB context and 6,000 tiny events", 30_000, 467_000},
		{"500 KB variant", 30_000, MaxBatchBytes - 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.post("/v1/batch", amplifiedBatch(c.contextBytes, c.size), nil)
			if resp.StatusCode != 400 {
				t.Fatalf("got %d %s, want a final 400", resp.StatusCode, body)
			}
			if field, rule := refusal(t, body); field != "batch" || !strings.Contains(rule, "merged") {
				t.Fatalf("refusal names %q: %q", field, rule)
			}
		})
	}
	if n := h.storedMessages(); n != 0 {
		t.Fatalf("EVENTS holds %d messages after refusals", n)
	}
}

func TestAnEventOver32KBOnceTheBatchContextIsMergedIsRefusedOnEveryPath(t *testing.T) {
	h := start(t, nil)
	ctxPad := strings.Repeat("c", 20_000)
	propPad := strings.Repeat("p", 15_000)
	merged := `{"context":{"pad":"` + ctxPad + `"},"batch":[{"type":"track","userId":"u","event":"E","properties":{"p":"` + propPad + `"}}]}`
	resp, body := h.post("/v1/batch", merged, nil)
	if field, rule := refusal(t, body); resp.StatusCode != 400 || field != "batch[0]" || !strings.Contains(rule, "at most 32768 bytes once the batch's context") {
		t.Fatalf("merged event: %d %s", resp.StatusCode, body)
	}

	single := `{"type":"track","userId":"u","event":"E","properties":{"p":"` + strings.Repeat("x", 400_000) + `"}}`
	for _, path := range []string{"/v1/batch", "/v1/import", "/v1/b"} {
		resp, body := h.post(path, single, nil)
		if field, rule := refusal(t, body); resp.StatusCode != 400 || field != "body" || !strings.Contains(rule, "an event must be at most 32768 bytes") {
			t.Fatalf("%s with one 400 KB event and no batch key: %d %s", path, resp.StatusCode, body)
		}
	}
	if n := h.storedMessages(); n != 0 {
		t.Fatalf("EVENTS holds %d messages after refusals", n)
	}
}

func TestTheJetStreamEntryRefusesWhatHTTPRefuses(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	if err := h.store.PutSource(ctx, &configv1.Source{Id: "off", Slug: "off", Enabled: false, WriteKeys: []string{"wk-off-0123456789"}}); err != nil {
		t.Fatal(err)
	}
	// Until ingest's view has the source, a message on ingest.off is refused as an unknown source.
	testenv.Eventually(t, 10*time.Second, "the disabled source to be seen", func() bool {
		_, ok := h.in.view.SourceByWriteKey("wk-off-0123456789")
		return ok
	})
	huge := `{"type":"track","userId":"u","event":"E","properties":{"p":"` + strings.Repeat("x", 40_000) + `"}}`
	amplified := amplifiedBatch(30_000, 467_000)
	sends := []struct{ source, body, reason string }{
		{"off", `{"type":"track","userId":"u","event":"E"}`, `subject: source "off" is disabled`},
		{sourceID, huge, "body: an event must be at most 32768 bytes"},
		{sourceID, amplified, "batch: the events must be at most"},
	}
	for _, s := range sends {
		if _, err := h.js.Publish(ctx, bus.IngestSubject(s.source), []byte(s.body)); err != nil {
			t.Fatal(err)
		}
	}
	dl, err := h.js.OrderedConsumer(ctx, bus.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string // workers handle messages at once, so dead letters come in any order
	for range sends {
		m, err := dl.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("dead letters so far %q, then: %v", got, err)
		}
		got = append(got, m.Subject()+" "+m.Headers().Get(bus.HeaderReason))
	}
	for _, s := range sends {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, "deadletter.ingest."+s.source+" "+s.reason) }) {
			t.Fatalf("no dead letter on ingest.%s with reason %q among %q", s.source, s.reason, got)
		}
	}
	if n := h.storedMessages(); n != 0 {
		t.Fatalf("EVENTS holds %d messages, want none", n)
	}
}

func TestABrowserRetryIsAllowedByThePreflightAndTheMetricsBeaconIsAnswered(t *testing.T) {
	h := start(t, nil)
	req, _ := http.NewRequest(http.MethodOptions, h.url+"/v1/t", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type,x-retry-count")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); resp.StatusCode != 204 || !strings.Contains(allowed, "x-retry-count") {
		t.Fatalf("preflight of a retry: %d, allowed headers %q", resp.StatusCode, allowed)
	}
	beacon := `{"series":[{"type":"Counter","metric":"analytics_js.invoke","value":1,"tags":{"method":"track"}}]}`
	resp, body := h.post("/v1/m", beacon, func(r *http.Request) {
		r.Header.Del("Authorization")
		r.Header.Set("Content-Type", "text/plain")
		r.Header.Set("Origin", "https://shop.example")
	})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("metrics beacon: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	if n := h.storedMessages(); n != 0 {
		t.Fatalf("the beacon was stored as %d messages", n)
	}
}

func TestARequestLargerThanOneMessageIsSplitAndItsRetryStoredOnce(t *testing.T) {
	h := start(t, func(c *Config) { c.MaxMessageBytes = minMessageBytes })
	var b strings.Builder
	b.WriteString(`{"context":{"library":{"name":"analytics-node"}},"batch":[`)
	const events = 300
	for i := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","userId":"u","event":"E","messageId":"split-%d","properties":{"p":"%s"}}`, i, strings.Repeat("x", 1000))
	}
	b.WriteString("]}")
	for range 2 {
		if resp, body := h.post("/v1/batch", b.String(), nil); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	parts := h.storedMessages()
	if parts < 4 {
		t.Fatalf("%d messages for ~330 KB of events at %d bytes a message", parts, minMessageBytes)
	}
	seen := map[string]int{}
	for _, batch := range h.batches(int(parts)) {
		for _, e := range batch.GetEvents() {
			seen[e.GetMessageId()]++
			if !strings.Contains(string(e.GetJson()), `"library":{"name":"analytics-node"}`) {
				t.Fatalf("event %s lacks the batch's context", e.GetMessageId())
			}
		}
	}
	for i := range events {
		if n := seen[fmt.Sprintf("split-%d", i)]; n != 1 {
			t.Fatalf("split-%d stored %d times over %d messages", i, n, parts)
		}
	}
}

// rawRequest sends a POST's headers, and only part of its body, on a connection of its own.
func rawRequest(t *testing.T, h *harness, key string, contentLength int, partial string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", h.in.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/batch", nil)
	req.SetBasicAuth(key, "")
	fmt.Fprintf(conn, "POST /v1/batch HTTP/1.1\r\nHost: ingest\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		req.Header.Get("Authorization"), contentLength, partial)
	return conn
}

func TestAnUnknownWriteKeyIsRefusedBeforeTheBodyIsRead(t *testing.T) {
	h := start(t, nil)
	conn := rawRequest(t, h, "not-a-key", 400_000, `{"batch":[`)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body is still unsent: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if field, _ := refusal(t, string(body)); resp.StatusCode != 401 || field != "writeKey" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestPastTheInflightCapARequestGets429AndTheCapFreesWhenDone(t *testing.T) {
	h := start(t, func(c *Config) { c.MaxInflightBytes = MaxBatchBytes })
	holder := rawRequest(t, h, writeKey, MaxBatchBytes, `{"batch":[`)
	small := `{"userId":"u","event":"E"}`
	// The holder takes its bytes when the server has read its headers.
	testenv.Eventually(t, 60*time.Second, "the holder to take the in-flight bytes", func() bool {
		h.in.inflight.mu.Lock()
		defer h.in.inflight.mu.Unlock()
		return h.in.inflight.used >= MaxBatchBytes
	})
	resp, body := h.post("/v1/track", small, nil)
	if field, _ := refusal(t, body); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || field != "body" {
		t.Fatalf("over the cap: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	holder.Close()
	deadline := time.Now().Add(30 * time.Second)
	for resp, body = h.post("/v1/track", small, nil); resp.StatusCode == 429 && time.Now().Before(deadline); resp, body = h.post("/v1/track", small, nil) {
	}
	if resp.StatusCode != 200 {
		t.Fatalf("after the holder left: %d %s", resp.StatusCode, body)
	}
}

func TestTheGzipReaderStopsAtTheDecompressedLimit(t *testing.T) {
	h := start(t, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"batch":[{"type":"track","userId":"u","event":"E","properties":{"p":"`))
	zero := make([]byte, 1<<20)
	for range 64 { // 64 MB that compresses to ~64 KB
		_, _ = zw.Write(zero)
	}
	_ = zw.Close()
	resp, body := h.post("/v1/batch", gz.String(), func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") })
	if field, rule := refusal(t, body); resp.StatusCode != 400 || field != "body" || !strings.Contains(rule, "at most 512000 bytes") {
		t.Fatalf("gzip bomb: %d %s", resp.StatusCode, body)
	}
}

func TestInvalidUnicodeIsRefusedNamingTheField(t *testing.T) {
	h := start(t, nil)
	cases := []struct{ name, path, body, field string }{
		{"a byte that is not UTF-8", "/v1/batch", `{"batch":[{"type":"track","userId":"u","event":"E"},{"type":"track","userId":"u","event":"E","properties":{"name":"a` + "\xff" + `b"}}]}`, "batch[1].properties.name"},
		{"a lone high surrogate escape", "/v1/identify", `{"userId":"u","traits":{"x":"\ud800z"}}`, "traits.x"},
		{"a lone low surrogate escape", "/v1/identify", `{"userId":"u","traits":{"list":[1,"\udc00"]}}`, "traits.list[1]"},
		{"invalid UTF-8 in a key of the batch's context", "/v1/batch", `{"context":{"k` + "\xc3" + `":1},"batch":[{"type":"track","userId":"u","event":"E"}]}`, "context.k\xc3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.post(c.path, c.body, nil)
			field, rule := refusal(t, body)
			if resp.StatusCode != 400 || field != strings.ToValidUTF8(c.field, "\uFFFD") || !(strings.Contains(rule, "UTF-8") || strings.Contains(rule, "surrogate")) {
				t.Fatalf("%d field %q rule %q, want 400 naming %q", resp.StatusCode, field, rule, c.field)
			}
		})
	}
	if resp, body := h.post("/v1/identify", `{"userId":"u","traits":{"emoji":"\ud83d\ude00 ok"}}`, nil); resp.StatusCode != 200 {
		t.Fatalf("a surrogate pair: %d %s", resp.StatusCode, body)
	}
	if n := h.storedMessages(); n != 1 {
		t.Fatalf("EVENTS holds %d messages, want the one valid event", n)
	}
}

func TestNestingIsLimitedToMaxDepth(t *testing.T) {
	h := start(t, nil)
	nested := func(depth int) string { // the body's object is level 1, properties level 2
		return `{"userId":"u","event":"E","properties":` + strings.Repeat(`{"a":`, depth-1) + `1` + strings.Repeat("}", depth-1) + "}"
	}
	if resp, body := h.post("/v1/track", nested(MaxDepth), nil); resp.StatusCode != 200 {
		t.Fatalf("depth %d: %d %s", MaxDepth, resp.StatusCode, body)
	}
	resp, body := h.post("/v1/track", nested(MaxDepth+1), nil)
	field, rule := refusal(t, body)
	if resp.StatusCode != 400 || !strings.HasPrefix(field, "properties.a.a") || !strings.Contains(rule, "at most 64 levels") {
		t.Fatalf("depth %d: %d field %q rule %q", MaxDepth+1, resp.StatusCode, field, rule)
	}
}

func TestXForwardedForIsBelievedOnlyFromTrustedProxies(t *testing.T) {
	ip := func(h *harness, xff string) string {
		t.Helper()
		before := h.storedMessages()
		msgID := fmt.Sprintf("xff-%d", before)
		resp, body := h.post("/v1/track", `{"userId":"u","event":"E","messageId":"`+msgID+`"}`, func(r *http.Request) { r.Header.Set("X-Forwarded-For", xff) })
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		got := h.batches(int(before) + 1)
		var ev struct{ Context struct{ IP string } }
		if err := json.Unmarshal(got[len(got)-1].GetEvents()[0].GetJson(), &ev); err != nil {
			t.Fatal(err)
		}
		return ev.Context.IP
	}
	open := start(t, nil)
	if got := ip(open, "203.0.113.7"); got != "127.0.0.1" {
		t.Fatalf("an untrusted peer's X-Forwarded-For set context.ip to %s", got)
	}
	proxied := start(t, func(c *Config) { c.TrustedProxies = "127.0.0.1, 10.0.0.0/8" })
	if got := ip(proxied, "198.51.100.1, 203.0.113.7, 10.0.0.5"); got != "203.0.113.7" {
		t.Fatalf("behind trusted proxies context.ip is %s, want the nearest untrusted hop 203.0.113.7", got)
	}
}

func TestABatchLargerThanTheRateLimitIsRefusedOnceNotForever(t *testing.T) {
	h := start(t, func(c *Config) { c.RateLimit = 1000 })
	batch := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"type":"track","userId":"u","event":"E"},`, 12_000), ",") + `]}`
	if resp, body := h.post("/v1/batch", batch, nil); resp.StatusCode != 200 {
		t.Fatalf("12,000 events at 1,000 a second, bucket full: %d %s", resp.StatusCode, body)
	}
	resp, body := h.post("/v1/batch", batch, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the same again at once: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// The wait it names is enough: the limiter admits the batch then.
	l, now := newLimiter(1000), time.Now()
	if ok, _ := l.allow("s", 12_000, now); !ok {
		t.Fatal("a full bucket refused 12,000 events")
	}
	ok, wait := l.allow("s", 12_000, now)
	if ok || wait <= 0 || wait > 13*time.Second {
		t.Fatalf("second batch: ok %v, wait %s", ok, wait)
	}
	if ok, _ := l.allow("s", 12_000, now.Add(wait)); !ok {
		t.Fatalf("refused again after the %s it asked for", wait)
	}
}

func TestTheSmallestValidEventBoundsTheEventsOfARequest(t *testing.T) {
	p, ierr := parsePayload([]byte(`{"batch":[`+minimalEvent+`]}`), "")
	if ierr != nil {
		t.Fatalf("the minimal event is refused: %v", ierr)
	}
	p.release()
	if over := len(`{"batch":[]}`) + maxBatchEvents*(len(minimalEvent)+1) - 1; over <= MaxBatchBytes {
		t.Fatalf("%d minimal events fit in %d bytes; maxBatchEvents is too low", maxBatchEvents, over)
	}
	for _, shorter := range []string{`{"type":"page"}`, `{"userId":1}`, `{"type":"page","userId":""}`} {
		if _, ierr := parsePayload([]byte(`{"batch":[`+shorter+`]}`), ""); ierr == nil {
			t.Fatalf("%s is accepted but shorter than the minimal event", shorter)
		}
	}
}

func TestABatchOfMoreElementsThanAnyValidBatchIsRefusedBeforeItCostsMemory(t *testing.T) {
	h := start(t, nil)
	for _, el := range []string{"[]", "{}", `{"a":1}`, "1"} {
		body := `{"batch":[` + strings.TrimSuffix(strings.Repeat(el+",", maxBatchEvents+1), ",") + `]}`
		resp, msg := h.post("/v1/batch", body, nil)
		if field, rule := refusal(t, msg); resp.StatusCode != 400 || field != fmt.Sprintf("batch[%d]", maxBatchEvents) || !strings.Contains(rule, "at most 18963 events") {
			t.Fatalf("%d × %s: %d field %q rule %q", maxBatchEvents+1, el, resp.StatusCode, field, rule)
		}
	}
}
