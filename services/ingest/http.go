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
	"strconv"
	"strings"
	"time"
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
		writeError(w, &InputError{Field: "path", Rule: "unknown endpoint " + r.URL.Path + "; use /v1/{track,identify,page,screen,group,alias,batch}", Status: http.StatusNotFound})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeError(w, &InputError{Field: "method", Rule: "must be POST", Status: http.StatusMethodNotAllowed})
		return
	}
	limit := int64(MaxBatchBytes)
	if callType != "" {
		limit = MaxEventBytes
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	defer bodyPool.Put(buf)
	body, ierr := readBody(r, limit, buf)
	if ierr != nil {
		s.metrics.rejected(r.Context(), ierr.Status)
		writeError(w, ierr)
		return
	}
	p, ierr := parsePayload(body, callType)
	if ierr != nil {
		s.metrics.rejected(r.Context(), ierr.Status)
		writeError(w, ierr)
		return
	}
	defer p.release()
	key, _, basic := r.BasicAuth()
	if !basic || key == "" {
		key = p.writeKey
	}
	src, ok := s.view.SourceByWriteKey(key)
	if !ok || !src.GetEnabled() {
		s.metrics.rejected(r.Context(), http.StatusUnauthorized)
		rule := "unknown or revoked write key"
		if key == "" {
			rule = "a write key is required: HTTP Basic auth with the write key as the user, or writeKey in the body"
		} else if ok {
			rule = "the source of this write key is disabled"
		}
		writeError(w, &InputError{Field: "writeKey", Rule: rule, Status: http.StatusUnauthorized})
		return
	}
	if ok, wait := s.limits.allow(src.GetId(), len(p.events), s.now()); !ok {
		s.metrics.rejected(r.Context(), http.StatusTooManyRequests)
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		writeError(w, &InputError{Field: "source", Rule: fmt.Sprintf("the source's rate limit of %d events per second is exceeded; retry later", s.cfg.RateLimit), Status: http.StatusTooManyRequests})
		return
	}
	if err := s.accept(r.Context(), src.GetId(), clientIP(r), p.events, ""); err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			writeError(w, ie)
			return
		}
		s.log.WarnContext(r.Context(), "publish failed; asked the client to retry", "source", src.GetId(), "error", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, &InputError{Rule: "events could not be stored durably; retry later", Status: http.StatusServiceUnavailable})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"success":true}`)
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

func clientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
			return ip.String()
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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
		writeError(w, &InputError{Field: "method", Rule: "must be POST", Status: http.StatusMethodNotAllowed})
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, MaxEventBytes))
	s.metrics.clientMetricsBeacon(r.Context())
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"success":true}`)
}
