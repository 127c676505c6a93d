package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// browserClientDir holds the page and the pinned @segment/analytics-next (package-lock.json); `make deps`
// runs npm ci there.
const browserClientDir = "testdata/browser-client"

// browserCall is one call the page makes with analytics.js; the page sends it with this messageId.
type browserCall struct {
	Type      string `json:"type"`
	MessageID string `json:"messageId"`
	Event     string `json:"event,omitempty"`
	UserID    string `json:"userId,omitempty"`
	Name      string `json:"name,omitempty"`
}

// Segment's own analytics.js, unmodified, in headless Chromium, on a page of another origin than the
// Tracking API (so every request is cross-origin and preflighted): first one request per call, then
// its batching delivery strategy. A proxy in front of ingest drops the first attempt of chosen
// requests, so the library retries them with its X-Retry-Count header. Every event must land in the
// bucket exactly once, the page must log no error, and nothing may leave 127.0.0.1.
func TestSegmentsBrowserClientDeliversEveryEventOnceFromAnotherOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack and Chromium: skipped under -short")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("needs Debian's chromium to run analytics.js in a browser: `make deps` installs it (apt-get install chromium)")
	}
	bundle := filepath.Join(browserClientDir, "node_modules", "@segment", "analytics-next", "dist", "umd")
	if _, err := os.Stat(filepath.Join(bundle, "index.js")); err != nil {
		t.Fatalf("needs @segment/analytics-next as pinned in %s/package-lock.json: `make deps` installs it (npm ci): %v", browserClientDir, err)
	}

	sum, _ := runDev(t, devConfig(t, t.TempDir()))
	perCall := []browserCall{
		{Type: "track", MessageID: "browser-track", Event: "Browser Event"},
		{Type: "identify", MessageID: "browser-identify", UserID: "browser-user"},
		{Type: "page", MessageID: "browser-page", Name: "Browser Page"},
	}
	var batched []browserCall
	for i := range 10 {
		batched = append(batched, browserCall{Type: "track", MessageID: fmt.Sprintf("browser-batch-%d", i), Event: "Browser Batched Event"})
	}
	all := append(slices.Clone(perCall), batched...)
	dropFirst := []string{"browser-batch-5", "browser-page", "browser-track"} // one batch, two single calls
	api := newDropFirstProxy(t, sum.TrackingURL, dropFirst...)
	apiHost := strings.TrimPrefix(api.URL, "http://") + "/v1"
	pageSrv := httptest.NewServer(browserPageHandler(bundle)) // another port: another origin than api
	t.Cleanup(pageSrv.Close)
	b := startBrowser(t, chromium)

	// deliveredOnce waits until every call is in the bucket, failing at once if the page logs an error.
	deliveredOnce := func(calls []browserCall) map[string]int {
		t.Helper()
		return deliveredUntil(t, sum, fmt.Sprintf("%d browser events in the bucket", len(calls)), func(counts map[string]int, _ int) bool {
			if errs := b.unexpectedErrors(api.droppedCount()); len(errs) > 0 {
				t.Fatalf("the page logged errors:\n%s\nproxy saw:\n%s", strings.Join(errs, "\n"), api.log())
			}
			return !slices.ContainsFunc(calls, func(c browserCall) bool { return counts[c.MessageID] == 0 })
		})
	}
	b.send(t, pageSrv.URL, sum.WriteKey, apiHost, nil, perCall)
	deliveredOnce(perCall)
	b.send(t, pageSrv.URL, sum.WriteKey, apiHost, map[string]any{"strategy": "batching", "config": map[string]any{"size": 4, "timeout": 300}}, batched)
	counts := deliveredOnce(all)
	api.waitFor(t, "the library's metrics beacon answered 200", func(r proxiedRequest) bool { return r.path == "/v1/m" && r.status == http.StatusOK })

	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "page.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}

	if len(counts) != len(all) {
		t.Errorf("bucket holds %d distinct messageIds, want %d: %v", len(counts), len(all), counts)
	}
	for _, c := range all {
		if n := counts[c.MessageID]; n != 1 {
			t.Errorf("event %s delivered %d times, want once", c.MessageID, n)
		}
	}
	for _, c := range perCall {
		if !api.saw(func(r proxiedRequest) bool {
			return r.path == "/v1/"+c.Type[:1] && slices.Equal(r.messageIDs, []string{c.MessageID})
		}) {
			t.Errorf("%s %s was not sent as a request of its own to /v1/%s:\n%s", c.Type, c.MessageID, c.Type[:1], api.log())
		}
	}
	if !api.saw(func(r proxiedRequest) bool { return r.path == "/v1/b" && len(r.messageIDs) > 1 }) {
		t.Errorf("no request to /v1/b carried more than one event:\n%s", api.log())
	}
	if dropped := slices.Sorted(slices.Values(api.droppedIDs())); !slices.Equal(dropped, dropFirst) {
		t.Errorf("proxy dropped the first attempt of %v, want %v", dropped, dropFirst)
	}
	for _, id := range dropFirst {
		if !api.saw(func(r proxiedRequest) bool {
			return r.retryCount != "" && r.status == http.StatusOK && slices.Contains(r.messageIDs, id)
		}) {
			t.Errorf("the dropped %s was not retried with X-Retry-Count:\n%s", id, api.log())
		}
	}
	if errs := b.unexpectedErrors(api.droppedCount()); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
	if remote := b.remoteRequests(); len(remote) > 0 {
		t.Errorf("the page requested hosts other than 127.0.0.1: %v", remote)
	}
}

// browserPageHandler serves the test page and, under /analytics-next/, the library's prebuilt browser
// bundle (dist/umd of the npm package, which also holds the chunks it may load).
func browserPageHandler(bundle string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/analytics-next/", http.StripPrefix("/analytics-next/", http.FileServer(http.Dir(bundle))))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(browserClientDir, "index.html"))
	})
	return mux
}

// browser is one headless Chromium tab and what it reported: errors on its console and every URL it requested.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	errors   []pageError
	requests []string
}

// pageError is an error the page's console shows: a console.error, an uncaught exception or rejection,
// or an error of the browser log (a failed request, a CORS refusal).
type pageError struct {
	source, text, url string
}

func startBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox refuses to start
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 640),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() }) // closes the tab, then stops Chromium and waits for it
	b := &browser{ctx: ctx}
	// The first action starts Chromium and ties it to the context it gets, so that one has no timeout:
	// a timer bounds the start instead.
	bound := time.AfterFunc(30*time.Second, cancel)
	err := chromedp.Do(ctx)
	if !bound.Stop() || err != nil {
		t.Fatalf("start chromium within 30s: %v", err)
	}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatal(err)
	}
	return b
}

// record runs in the tab's event loop: it only appends.
func (b *browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				if a.Description != "" {
					args = append(args, a.Description)
				} else {
					args = append(args, string(a.Value))
				}
			}
			b.errors = append(b.errors, pageError{source: "console." + string(ev.Type), text: strings.Join(args, " ")})
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		b.errors = append(b.errors, pageError{source: "exception", text: text, url: d.URL})
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.errors = append(b.errors, pageError{source: string(ev.Entry.Source), text: ev.Entry.Text, url: ev.Entry.URL})
		}
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	}
}

// send loads the page and has it load analytics.js and make the calls, with deliveryStrategy nil for one
// request per call. It returns once the library has the calls, not when they are delivered.
func (b *browser) send(t *testing.T, pageURL, writeKey, apiHost string, deliveryStrategy any, calls []browserCall) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	script := fmt.Sprintf("send(%s, %s, %s, %s)", mustJSON(writeKey), mustJSON(apiHost), mustJSON(deliveryStrategy), mustJSON(calls))
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL), chromedp.Evaluate[chromedp.Void](script, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("page %s: %v", pageURL, err)
	}
}

// unexpectedErrors is every error the page logged, except the one failed request Chromium logs for each
// attempt the proxy dropped on purpose (net::ERR_EMPTY_RESPONSE).
func (b *browser) unexpectedErrors(dropped int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, e := range b.errors {
		if e.source == string(log.EntrySourceNetwork) && strings.Contains(e.text, "net::ERR_EMPTY_RESPONSE") && dropped > 0 {
			dropped--
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s %s", e.source, e.text, e.url))
	}
	return out
}

// remoteRequests is every URL the page requested on a host other than 127.0.0.1.
func (b *browser) remoteRequests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, raw := range b.requests {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "data" && u.Scheme != "blob" && u.Hostname() != "127.0.0.1") {
			out = append(out, raw)
		}
	}
	return out
}

// dropFirstProxy stands in front of ingest on 127.0.0.1 and forwards every request (preflights
// included) untouched, except the first POST that carries one of the chosen messageIds: that one it
// drops, closing the connection without an answer, as a network failure would.
type dropFirstProxy struct {
	*httptest.Server

	mu       sync.Mutex
	toDrop   map[string]bool // messageId → its first POST is still to be dropped
	dropped  []string
	requests []proxiedRequest
}

// proxiedRequest is what the proxy saw of one request and its answer (status 0: dropped).
type proxiedRequest struct {
	method, path   string
	retryCount     string // X-Retry-Count
	requestHeaders string // Access-Control-Request-Headers of a preflight
	messageIDs     []string
	status         int
}

func newDropFirstProxy(t *testing.T, target string, dropFirst ...string) *dropFirstProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &dropFirstProxy{toDrop: map[string]bool{}}
	for _, id := range dropFirst {
		p.toDrop[id] = true
	}
	forward := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		seen := proxiedRequest{method: r.Method, path: r.URL.Path, retryCount: r.Header.Get("X-Retry-Count"),
			requestHeaders: r.Header.Get("Access-Control-Request-Headers"), messageIDs: messageIDs(body)}
		if r.Method == http.MethodPost && p.drop(seen) {
			panic(http.ErrAbortHandler) // closes the connection with no response
		}
		rec := &statusRecorder{ResponseWriter: w}
		forward.ServeHTTP(rec, r)
		seen.status = rec.status
		p.mu.Lock()
		p.requests = append(p.requests, seen)
		p.mu.Unlock()
	}))
	// One request per connection: Chromium silently resends a request whose reused keep-alive connection
	// closes without an answer, which would hide the drop from analytics.js.
	p.Config.SetKeepAlivesEnabled(false)
	p.Start()
	t.Cleanup(p.Close)
	return p
}

// drop records r, and reports whether it is the first POST of a chosen messageId.
func (p *dropFirstProxy) drop(r proxiedRequest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range r.messageIDs {
		if p.toDrop[id] {
			p.toDrop[id] = false
			p.dropped = append(p.dropped, id)
			p.requests = append(p.requests, r)
			return true
		}
	}
	return false
}

func (p *dropFirstProxy) droppedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.dropped)
}

func (p *dropFirstProxy) droppedCount() int { return len(p.droppedIDs()) }

func (p *dropFirstProxy) saw(match func(proxiedRequest) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.requests, match)
}

func (p *dropFirstProxy) waitFor(t *testing.T, what string, match func(proxiedRequest) bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, func() bool { return p.saw(match) })
}

// log is every request the proxy saw, one a line, for failure messages.
func (p *dropFirstProxy) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sb strings.Builder
	for _, r := range p.requests {
		fmt.Fprintf(&sb, "  %s %s retry=%q preflight=%q ids=%v → %d\n", r.method, r.path, r.retryCount, r.requestHeaders, r.messageIDs, r.status)
	}
	return sb.String()
}

// messageIDs reads the messageIds of a Tracking API body: one event, or a batch.
func messageIDs(body []byte) []string {
	var req struct {
		MessageID string `json:"messageId"`
		Batch     []struct {
			MessageID string `json:"messageId"`
		} `json:"batch"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil
	}
	var ids []string
	if req.MessageID != "" {
		ids = append(ids, req.MessageID)
	}
	for _, e := range req.Batch {
		ids = append(ids, e.MessageID)
	}
	return ids
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
