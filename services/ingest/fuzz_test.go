package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	runtimemetrics "runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// FuzzReadBody holds the body reader to its contract for any body, Content-Encoding and limit: it never
// panics, never returns more than limit bytes, refuses with a 400 naming the field and the rule, stops a
// gzip bomb at the limit, and returns exactly the decompressed bytes of valid gzip within the limit. The
// reference decompresses with compress/gzip as well: what is held here is the reader's limit, encoding
// and buffer handling, not gzip's decoding. One buffer serves every exec, as bodyPool's do requests.
func FuzzReadBody(f *testing.F) {
	event := []byte(`{"userId":"u","event":"E"}`)
	member := gzipped(event)
	exact := bytes.Repeat([]byte("x"), MaxEventBytes)
	for _, s := range []struct {
		body     []byte
		encoding string
		limit    uint32
	}{
		{event, "", MaxEventBytes},
		{event, "identity", 10},
		{member, "gzip", MaxEventBytes},
		{member, "GZip", MaxBatchBytes},
		{slices.Concat(member, gzipped(event), gzipped(nil)), "gzip", MaxEventBytes}, // concatenated members
		{member[:len(member)-4], "gzip", MaxEventBytes},                              // truncated: no length
		{member[:len(member)-9], "gzip", MaxEventBytes},                              // truncated: no CRC
		{member[:6], "gzip", MaxEventBytes},                                          // truncated header
		{slices.Concat(member, []byte("trailing")), "gzip", MaxEventBytes},
		{nil, "gzip", MaxEventBytes},
		{event, "gzip", MaxEventBytes}, // not gzip at all
		{event, "br", MaxEventBytes},
		{gzipped(exact), "gzip", MaxEventBytes},                                   // exactly at the limit
		{gzipped(slices.Concat(exact, []byte("y"))), "gzip", MaxEventBytes},       // one byte over
		{gzipped(make([]byte, 16<<20)), "gzip", MaxBatchBytes},                    // bomb: 16 KiB → 16 MiB
		{gzipped(bytes.Repeat([]byte(`{"a":1},`), 1<<20)), "gzip", MaxEventBytes}, // bomb of JSON
	} {
		f.Add(s.body, s.encoding, s.limit, false)
		f.Add(s.body, s.encoding, s.limit, true)
	}
	buf := new(bytes.Buffer)
	f.Fuzz(func(t *testing.T, body []byte, encoding string, limit uint32, chunked bool) {
		lim := int64(limit % (MaxBatchBytes + 1))
		r := httptest.NewRequest(http.MethodPost, "/v1/track", bytes.NewReader(body))
		if encoding != "" {
			r.Header.Set("Content-Encoding", encoding)
		}
		if chunked {
			r.ContentLength = -1
		}
		got, ierr := readBody(r, lim, buf)
		if ierr == nil && int64(len(got)) > lim {
			t.Fatalf("returned %d bytes over the limit of %d", len(got), lim)
		}
		if ierr != nil && (ierr.Status != http.StatusBadRequest || ierr.Field == "" || ierr.Rule == "") {
			t.Fatalf("refusal %+v is not a 400 naming its field and rule", ierr)
		}

		want, wantField := body, ""
		switch strings.ToLower(encoding) {
		case "", "identity":
		case "gzip":
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				wantField = "Content-Encoding"
				break
			}
			if want, err = io.ReadAll(io.LimitReader(zr, lim+1)); err != nil {
				wantField = "body"
			}
		default:
			wantField = "Content-Encoding"
		}
		overLimit := wantField == "" && int64(len(want)) > lim
		switch {
		case overLimit:
			if rule := fmt.Sprintf("must be at most %d bytes", lim); ierr == nil || ierr.Field != "body" || !strings.Contains(ierr.Rule, rule) {
				t.Fatalf("%d bytes (or more) against a limit of %d: got %d bytes and %v, want a 400 on body saying %q", len(want), lim, len(got), ierr, rule)
			}
		case wantField != "":
			if ierr == nil || ierr.Field != wantField {
				t.Fatalf("got %d bytes and %v, want a 400 on %s", len(got), ierr, wantField)
			}
		case ierr != nil:
			t.Fatalf("refused %d valid bytes within the limit of %d: %v", len(want), lim, ierr)
		case !bytes.Equal(got, want):
			t.Fatalf("returned %q, want the (decompressed) body %q", got, want)
		}
	})
}

// FuzzServeHTTP sends any method, path, headers and body to the whole handler, against one real
// JetStream and config store for every exec (the handler is called in-process, so a panic is a finding,
// not a recovered connection). Every answer must be:
//   - 204 with no body to OPTIONS, whatever the path;
//   - 200 {"success":true}, or 4xx (429 included) or 503 with a JSON body holding success:false, field
//     and rule; never another status, never a panic;
//   - bounded in memory: the bytes the process allocates while the request is served stay within
//     allocBound of the body's size (runtime/metrics, so the embedded JetStream server's work is counted).
func FuzzServeHTTP(f *testing.F) {
	h := start(f, nil)
	const disabledKey = "wk-disabled-0123456789"
	if err := h.store.PutSource(f.Context(), &configv1.Source{Id: "src-off", Enabled: false, WriteKeys: []string{disabledKey}}); err != nil {
		f.Fatal(err)
	}
	testenv.Eventually(f, 10*time.Second, "the disabled source to be seen", func() bool {
		_, ok := h.in.view.SourceByWriteKey(disabledKey)
		return ok
	})

	valid, invalid, disabled := basicAuth(writeKey), basicAuth("wk-unknown-000000"), basicAuth(disabledKey)
	bodies := map[string]string{
		"track":    `{"userId":"u","event":"E","properties":{"a":[1,2.5,true,null,"é"]},"timestamp":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:01Z"}`,
		"identify": `{"userId":"u","traits":{"email":"a@b.c"},"context":{"ip":null}}`,
		"page":     `{"anonymousId":"a","name":"Home","context":{"library":{"name":"analytics.js"}}}`,
		"screen":   `{"userId":42,"name":"Home"}`,
		"group":    `{"userId":"u","groupId":"g"}`,
		"alias":    `{"userId":"u","previousId":"p"}`,
		"":         `{"batch":[{"type":"track","userId":"u","event":"A"},{"type":"identify","anonymousId":"x"}],"context":{"app":"a"},"sentAt":"2026-01-01T00:00:00Z"}`,
	}
	for _, path := range slices.Sorted(maps.Keys(paths)) {
		f.Add(http.MethodPost, path, "", valid, "", false, []byte(bodies[paths[path]]))
	}
	track, batch := []byte(bodies["track"]), []byte(bodies[""])
	tiny := `{"type":"track","userId":"u","event":"E"}`
	for _, s := range []struct {
		method, path, encoding, auth, origin string
		compress                             bool
		body                                 []byte
	}{
		{"POST", "/v1/batch", "gzip", valid, "", true, batch},
		{"POST", "/v1/track/", "gzip", valid, "https://shop.example", true, track},
		{"POST", "/v1/t", "", "", "https://shop.example", false, []byte(`{"writeKey":"` + writeKey + `","userId":"u","event":"E"}`)},
		{"POST", "/v1/t", "", "", "", false, []byte(`{"writeKey":7,"userId":"u","event":"E"}`)},
		{"POST", "/v1/track", "", invalid, "", false, track},
		{"POST", "/v1/track", "", disabled, "", false, track},
		{"POST", "/v1/track", "", "Basic !!!", "", false, track},
		{"POST", "/v1/track", "", "Bearer " + writeKey, "", false, track},
		{"POST", "/v1/track", "", "", "", false, track},
		{"POST", "/v1/track", "gzip", valid, "", false, track}, // says gzip, is not
		{"POST", "/v1/track", "br", valid, "", true, track},
		{"POST", "/v1/batch", "gzip", valid, "", false, gzipped(make([]byte, 16<<20))}, // bomb
		{"POST", "/v1/track", "", valid, "", false, []byte(`{"userId":"u","event":"E","properties":{"x":"` + strings.Repeat("a", MaxEventBytes) + `"}}`)},
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, tiny, MaxBatchBytes+1000)}, // over 500 KB
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, tiny, MaxBatchBytes)},
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, `{"type":"page","userId":1}`, MaxBatchBytes)}, // the most valid events in one request
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, `{"type":"track","userId":"u","event":"E","properties":{"note":"`+strings.Repeat("n", 900)+`"}}`, MaxBatchBytes)},
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"context":{"library":{"name":"analytics-go"},"pad":"`+strings.Repeat("c", 300)+`"},"batch":[`, tiny, 2000)},
		{"POST", "/v1/batch", "", valid, "", false, []byte(`{"batch":[null,1,"x",{}]}`)},
		// Element shapes that cost the most per byte of body: each must stay within the bound.
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, `[]`, MaxBatchBytes)},
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, `{}`, MaxBatchBytes)},
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, `{"a":1}`, MaxBatchBytes)},
		{"POST", "/v1/batch", "", valid, "", false, fill(`{"batch":[`, `{"type":"page","userId":1,"context":{}}`, MaxBatchBytes)},
		{"POST", "/v1/batch", "", valid, "", false, []byte(`{"batch":{}}`)},
		{"POST", "/v1/batch", "", valid, "", false, []byte(`{"batch":[]}`)},
		{"POST", "/v1/identify", "", valid, "", false, []byte(`{"userId":`)},
		{"POST", "/v1/identify", "", valid, "", false, []byte(`{"traits":{}}`)},
		{"POST", "/v1/track", "", valid, "", false, []byte(`{"userId":"u","event":"E","context":"x"}`)},
		{"POST", "/v1/track", "", valid, "", false, []byte(`{"userId":"u","event":"E","messageId":"","timestamp":"yesterday"}`)},
		{"OPTIONS", "/v1/track", "", "", "https://shop.example", false, nil},
		{"OPTIONS", "/anything", "", "", "", false, nil},
		{"POST", "/v1/m", "", "", "https://shop.example", false, []byte(`{"series":[{"type":"Counter","metric":"analytics_js.invoke","value":1}]}`)},
		{"GET", "/v1/m", "", "", "", false, nil},
		{"GET", "/v1/track", "", valid, "", false, nil},
		{"", "/v1/track", "", valid, "", false, track},
		{"POST", "/v1/click", "", valid, "", false, track},
		{"POST", "", "", valid, "", false, track},
		{"POST", "//v1/track", "", valid, "", false, track},
		{"POST", "/V1/TRACK", "", valid, "", false, track},
		{"POST", "/v1/track\x00\xff", "", valid, "", false, track},
	} {
		f.Add(s.method, s.path, s.encoding, s.auth, s.origin, s.compress, s.body)
	}

	allocs := []runtimemetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	f.Fuzz(func(t *testing.T, method, path, encoding, authorization, origin string, compress bool, body []byte) {
		if compress {
			body = gzipped(body)
		}
		send := func() (*httptest.ResponseRecorder, uint64) {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			r.Method, r.URL.Path = method, path
			for k, v := range map[string]string{"Content-Type": "application/json", "Content-Encoding": encoding, "Authorization": authorization, "Origin": origin} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			w := httptest.NewRecorder()
			runtimemetrics.Read(allocs)
			before := allocs[0].Value.Uint64()
			h.in.ServeHTTP(w, r)
			runtimemetrics.Read(allocs)
			return w, allocs[0].Value.Uint64() - before
		}
		w, used := send()
		// Growing a pooled buffer (once per P) or a JetStream file block is paid by whichever request
		// comes first: a request is over the bound only when it is over on every one of sends.
		const sends = 4
		bound := allocBound(body, encoding)
		for i := 1; i < sends && used > bound; i++ {
			_, again := send()
			used = min(used, again)
		}
		if used > bound {
			t.Errorf("%s %q with %d bytes (Content-Encoding %q) allocated at least %.1f MiB on each of %d sends, over the bound of %.1f MiB",
				method, path, len(body), encoding, float64(used)/(1<<20), sends, float64(bound)/(1<<20))
		}

		status, answer := w.Code, w.Body.Bytes()
		switch {
		case method == http.MethodOptions:
			if status != http.StatusNoContent || len(answer) > 0 {
				t.Fatalf("OPTIONS %q: %d %q, want 204 and no body", path, status, answer)
			}
		case status == http.StatusOK:
			if string(answer) != `{"success":true}` {
				t.Fatalf("200 with %q", answer)
			}
		case status >= 400 && status <= 499 || status == http.StatusServiceUnavailable:
			var refusal struct {
				Success *bool   `json:"success"`
				Field   *string `json:"field"`
				Rule    *string `json:"rule"`
			}
			if err := json.Unmarshal(answer, &refusal); err != nil || refusal.Success == nil || *refusal.Success ||
				refusal.Field == nil || refusal.Rule == nil || *refusal.Rule == "" {
				t.Fatalf("%d with %q, want JSON with success:false, field and rule", status, answer)
			}
		default:
			t.Fatalf("%s %q answered %d %q: only 200, 204 (OPTIONS), 4xx and 503 are allowed", method, path, status, answer)
		}
	})
}

// allocBound is what one request may allocate, the embedded JetStream server's share included: 32 times
// its body (the decompressed body when it is gzip, up to the batch limit where reading stops) plus 4 MiB
// for fixed costs and for what other goroutines allocate meanwhile. Measured on today's handler, warm:
// 500 KB of the smallest valid events (`{"type":"page","userId":1}`, 19,000 of them) takes 18.5 MiB
// (38 times the body, the worst valid shape: the bound is 20 MiB), 500 KB of 1 KB events 1.4 MiB, one
// 32 KB event of 5,400 members 1.3 MiB, a refusal almost nothing. The first such batch in a process
// takes up to 134 MiB while the pools grow, hence the repeated sends. A batch whose 30 KB context is
// merged into each of 11,000 tiny events takes over 2 GiB.
func allocBound(body []byte, encoding string) uint64 {
	size := len(body)
	if strings.EqualFold(encoding, "gzip") {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			n, _ := io.Copy(io.Discard, io.LimitReader(zr, MaxBatchBytes+1))
			size = max(size, int(n))
		}
	}
	return 32*uint64(size) + 4<<20
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

func basicAuth(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

// fill returns head followed by as many comma-separated copies of item as fit in size bytes, and "]}".
func fill(head, item string, size int) []byte {
	b := []byte(head + item)
	for len(b)+1+len(item)+2 <= size {
		b = append(append(b, ','), item...)
	}
	return append(b, "]}"...)
}
