package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
)

// paths maps each Tracking API path to its call type ("" for batch), with the short forms analytics.js uses.
var paths = map[string]string{
	"/v1/track": "track", "/v1/t": "track",
	"/v1/identify": "identify", "/v1/i": "identify",
	"/v1/page": "page", "/v1/p": "page",
	"/v1/screen": "screen", "/v1/s": "screen",
	"/v1/group": "group", "/v1/g": "group",
	"/v1/alias": "alias", "/v1/a": "alias",
	"/v1/batch": "", "/v1/b": "", "/v1/import": "",
}

// ServeHTTP is the Tracking API. A 200 means every event of the request is stored in JetStream.
//
// Refusals come cheapest first: a path, method or Basic-auth write key that is wrong is refused before
// the body is read, and a request that would take the process past MaxInflightBytes is answered 429
// before its body is read. Every refusal that a retry cannot fix is a 4xx naming the field and the rule;
// 429 and 503 (JetStream down or slow right now) carry Retry-After.
func (s *Ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path == metricsPath {
		s.clientMetrics(w, r)
		return
	}
	callType, ok := paths[path]
	if !ok {
		s.refuse(w, r, &InputError{Field: "path", Rule: "unknown endpoint " + r.URL.Path + "; use /v1/{track,identify,page,screen,group,alias,batch}", Status: http.StatusNotFound}, 0)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		s.refuse(w, r, &InputError{Field: "method", Rule: "must be POST", Status: http.StatusMethodNotAllowed}, 0)
		return
	}
	key, _, basic := r.BasicAuth()
	if basic && key != "" {
		if _, ierr := s.sourceFor(key); ierr != nil {
			s.refuse(w, r, ierr, 0)
			return
		}
	}
	limit := int64(MaxBatchBytes)
	if callType != "" {
		limit = MaxEventBytes
	}
	cost := limit
	if r.ContentLength >= 0 && r.Header.Get("Content-Encoding") == "" {
		cost = min(r.ContentLength, limit+1)
	}
	if !s.inflight.acquire(cost) {
		w.Header().Set("Retry-After", "1")
		s.refuse(w, r, &InputError{Field: "body", Rule: fmt.Sprintf("the server holds its limit of %d request bytes at once; retry later", s.cfg.MaxInflightBytes), Status: http.StatusTooManyRequests}, 0)
		return
	}
	defer s.inflight.release(cost)
	buf := bodyPool.Get().(*bytes.Buffer)
	defer bodyPool.Put(buf)
	body, ierr := readBody(r, limit, buf)
	if ierr != nil {
		s.refuse(w, r, ierr, 0)
		return
	}
	p, ierr := parsePayload(body, callType)
	if ierr != nil {
		s.refuse(w, r, ierr, 0)
		return
	}
	defer p.release()
	if !basic || key == "" {
		key = p.writeKey
	}
	src, ierr := s.sourceFor(key)
	if ierr != nil {
		s.refuse(w, r, ierr, len(p.events))
		return
	}
	if ok, wait := s.limits.allow(src.GetId(), len(p.events), s.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		s.refuse(w, r, &InputError{Field: "source", Rule: fmt.Sprintf("the source's rate limit of %d events per second is exceeded; retry later", s.cfg.RateLimit), Status: http.StatusTooManyRequests}, len(p.events))
		return
	}
	if err := s.accept(r.Context(), src.GetId(), s.clientIP(r), &p, ""); err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			s.refuse(w, r, ie, len(p.events))
			return
		}
		s.log.WarnContext(r.Context(), "publish failed; asked the client to retry", "source", src.GetId(), "error", err)
		w.Header().Set("Retry-After", "5")
		s.refuse(w, r, &InputError{Rule: "events could not be stored durably; retry later", Status: http.StatusServiceUnavailable}, len(p.events))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"success":true}`)
}

// sourceFor finds the enabled source of a write key, or says why there is none (401). When the config
// view could not confirm it is current (its watch is broken and NATS unreachable), a revoked key might
// still be in it, so nothing is accepted: 503, as for JetStream down.
func (s *Ingest) sourceFor(key string) (*configv1.Source, *InputError) {
	if err := s.view.Fresh(); err != nil {
		return nil, &InputError{Field: "writeKey", Rule: "write keys cannot be checked right now (" + err.Error() + "); retry later", Status: http.StatusServiceUnavailable}
	}
	src, ok := s.view.SourceByWriteKey(key)
	if ok && src.GetEnabled() {
		return src, nil
	}
	rule := "unknown or revoked write key"
	switch {
	case key == "":
		rule = "a write key is required: HTTP Basic auth with the write key as the user, or writeKey in the body"
	case ok:
		rule = "the source of this write key is disabled"
	}
	return nil, &InputError{Field: "writeKey", Rule: rule, Status: http.StatusUnauthorized}
}

// refuse answers a refusal and counts it. A 503 always says when to retry.
// n is the request's events once they are known (0 before its body is parsed).
func (s *Ingest) refuse(w http.ResponseWriter, r *http.Request, e *InputError, n int) {
	if e.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	s.metrics.rejected(r.Context(), e, n)
	writeError(w, e)
}

// inflight counts the request bytes held at once, against a limit.
type inflight struct {
	mu          sync.Mutex
	used, limit int64
}

func newInflight(limit int64) *inflight { return &inflight{limit: limit} }

// acquire takes n bytes if they fit under the limit.
func (f *inflight) acquire(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used+n > f.limit {
		return false
	}
	f.used += n
	return true
}

func (f *inflight) release(n int64) {
	f.mu.Lock()
	f.used -= n
	f.mu.Unlock()
}

// bodyPool recycles request bodies; nothing of a body outlives its request.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads at most limit bytes of the (possibly gzipped) body into buf.
func readBody(r *http.Request, limit int64, buf *bytes.Buffer) ([]byte, *InputError) {
	var rd io.Reader = r.Body
	switch strings.ToLower(r.Header.Get("Content-Encoding")) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, badInput("Content-Encoding", "the body is not valid gzip: %v", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, badInput("Content-Encoding", "must be gzip or absent, got %q", r.Header.Get("Content-Encoding"))
	}
	buf.Reset()
	if r.ContentLength > 0 && rd == r.Body {
		buf.Grow(int(min(r.ContentLength, limit+1)) + bytes.MinRead) // ReadFrom wants MinRead spare bytes to see EOF
	}
	if _, err := buf.ReadFrom(io.LimitReader(rd, limit+1)); err != nil {
		return nil, badInput("body", "could not be read: %v", err)
	}
	body := buf.Bytes()
	if int64(len(body)) > limit {
		what := "a batch request"
		if limit == MaxEventBytes {
			what = "an event"
		}
		return nil, badInput("body", "%s must be at most %d bytes", what, limit)
	}
	return body, nil
}

// cors lets browsers call the API: analytics.js posts text/plain bodies to avoid preflights, and others
// preflight with Authorization and Content-Type. A preflight's requested headers are echoed, so every
// header Segment's libraries send (X-Retry-Count on each retry, and whatever a later version adds) is
// allowed: refusing one would make the browser drop the retry, and the event with it.
func cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	allow := "Authorization, Content-Type, Content-Encoding, X-Retry-Count"
	if requested := r.Header.Get("Access-Control-Request-Headers"); requested != "" {
		allow = requested
	}
	h.Set("Access-Control-Allow-Headers", allow)
	h.Set("Access-Control-Max-Age", "86400")
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Headers")
}

// clientIP is the address context.ip records: the peer's, or, when the peer is a trusted proxy, the
// nearest address in X-Forwarded-For that is not itself a trusted proxy (read from the right, since
// everything left of the last trusted hop was written by the client and proves nothing).
func (s *Ingest) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	client := peer.Unmap()
	if !s.isTrusted(client) {
		return client.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop ends what can be believed
		}
		client = hop.Unmap()
		if !s.isTrusted(client) {
			break
		}
	}
	return client.String()
}

func (s *Ingest) isTrusted(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func writeError(w http.ResponseWriter, e *InputError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": false,
		"message": e.Error(),
		"field":   e.Field,
		"rule":    e.Rule,
	})
}

// metricsPath is where analytics.js posts its own client metrics every 30 seconds (a beacon about the
// library, not an event).
const metricsPath = "/v1/m"

// clientMetrics answers the library's metrics beacon with 200 and counts it; its body is read up to
// the event limit and discarded, never stored as an event.
func (s *Ingest) clientMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		s.refuse(w, r, &InputError{Field: "method", Rule: "must be POST", Status: http.StatusMethodNotAllowed}, 0)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, MaxEventBytes))
	s.metrics.clientMetricsBeacon(r.Context())
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"success":true}`)
}
