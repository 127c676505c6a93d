package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const eventsPerRequest = 100

// payloads builds /v1/batch bodies of ~1 KB track events. Each event's messageId names the phase,
// the sender, the request and the position, "<phase>-<sender>-<request>-<i>", so the read-back can
// check every delivered line against the requests that were answered 200.
type payloads struct {
	props [][]byte // varied property blocks, so gzip sees realistic (not constant) text
	// realistic, when set, replaces the padded track event: varied Segment events (realisticEvents),
	// each sent with its messageId first.
	realistic [][]byte
}

// newPayloads builds the payloads of kind "padded" (the ~1 KB track event with a padded note) or
// "realistic" (realisticEvents).
func newPayloads(kind string) (*payloads, error) {
	p := newPaddedPayloads()
	switch kind {
	case "padded":
	case "realistic":
		var err error
		if p.realistic, err = realisticEvents(4096); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("-events: must be padded or realistic, got %q", kind)
	}
	return p, nil
}

func newPaddedPayloads() *payloads {
	words := strings.Fields(`order checkout cart product viewed added removed coupon applied shipping billing address
		mobile desktop tablet campaign email newsletter search results category electronics apparel shoes garden
		kitchen sports outdoor premium basic annual monthly trial upgrade downgrade referral partner organic paid`)
	r := rand.New(rand.NewPCG(1, 2))
	p := &payloads{}
	for range 1024 {
		var b bytes.Buffer
		fmt.Fprintf(&b, `"properties":{"orderId":"%016x","total":%d.%02d,"currency":"USD","coupon":"%s-%d","products":[`,
			r.Uint64(), r.IntN(900)+10, r.IntN(100), words[r.IntN(len(words))], r.IntN(100))
		for j := range 3 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sku":"SKU-%06d","name":"%s %s","price":%d.99,"quantity":%d}`,
				r.IntN(1_000_000), words[r.IntN(len(words))], words[r.IntN(len(words))], r.IntN(200), r.IntN(5)+1)
		}
		b.WriteString(`],"note":"`)
		for b.Len() < 640 {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString(`"}`)
		p.props = append(p.props, b.Bytes())
	}
	return p
}

// body appends one request of eventsPerRequest events to dst.
func (p *payloads) body(dst []byte, phase string, sender, request int) []byte {
	dst = append(dst, `{"batch":[`...)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range eventsPerRequest {
		if i > 0 {
			dst = append(dst, ',')
		}
		if p.realistic != nil {
			dst = append(dst, `{"messageId":"`...)
			dst = appendID(dst, phase, sender, request, i)
			dst = append(dst, `",`...)
			dst = append(dst, p.realistic[(sender*7919+request*eventsPerRequest+i)%len(p.realistic)]...)
			dst = append(dst, '}')
			continue
		}
		dst = append(dst, `{"type":"track","messageId":"`...)
		dst = appendID(dst, phase, sender, request, i)
		dst = append(dst, `","userId":"user-`...)
		dst = strconv.AppendInt(dst, int64((request*eventsPerRequest+i)%50_000), 10)
		dst = append(dst, `","event":"Order Completed","timestamp":"`...)
		dst = append(dst, now...)
		dst = append(dst, `","context":{"library":{"name":"analytics-go","version":"3.3.0"},"ip":"203.0.113.`...)
		dst = strconv.AppendInt(dst, int64(i+request)%250, 10)
		dst = append(dst, `","userAgent":"Mozilla/5.0 (X11; Linux x86_64) s3dest-bench"},`...)
		dst = append(dst, p.props[(sender*7919+request*eventsPerRequest+i)%len(p.props)]...)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func appendID(dst []byte, phase string, sender, request, i int) []byte {
	dst = append(dst, phase...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(request), 10)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, int64(i), 10)
}

// requestLog is what one sender's requests did: when each was answered 200 (zero: never).
type requestLog struct {
	mu    sync.Mutex
	at    [][]time.Time // [sender][request]
	start time.Time
}

func newRequestLog(senders int) *requestLog {
	return &requestLog{at: make([][]time.Time, senders), start: time.Now()}
}

func (l *requestLog) record(sender, request int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.at[sender]) <= request {
		l.at[sender] = append(l.at[sender], time.Time{})
	}
	l.at[sender][request] = at
}

// accepted is the number of events answered 200, and when the last 200 came.
func (l *requestLog) accepted() (n int64, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, reqs := range l.at {
		for _, t := range reqs {
			if !t.IsZero() {
				n += eventsPerRequest
				if t.After(last) {
					last = t
				}
			}
		}
	}
	return n, last
}

// acceptedAt reports when event (sender, request) was answered 200, or false.
func (l *requestLog) acceptedAt(sender, request int) (time.Time, bool) {
	if sender < 0 || sender >= len(l.at) || request < 0 || request >= len(l.at[sender]) {
		return time.Time{}, false
	}
	t := l.at[sender][request]
	return t, !t.IsZero()
}

// sender posts bodies to /v1/batch on keep-alive connections and retries a request until it is answered
// 200 (the same messageIds: ingest and the batcher drop a retried event), so every event it stops
// with is either accepted or was never sent.
type sender struct {
	client   *http.Client
	url      string
	writeKey string
	p        *payloads
	rejected atomic.Int64 // non-200 answers and transport errors, each retried
}

func newSender(trackingURL, writeKey string, conns int, p *payloads) *sender {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &sender{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: trackingURL + "/v1/batch", writeKey: writeKey, p: p}
}

func (s *sender) send(ctx context.Context, body []byte) (time.Time, error) {
	backoff := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, s.url, bytes.NewReader(body))
		if err != nil {
			return time.Time{}, err
		}
		req.SetBasicAuth(s.writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
			if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests {
				return time.Time{}, fmt.Errorf("POST /v1/batch: %d", resp.StatusCode)
			}
			err = fmt.Errorf("POST /v1/batch: %d", resp.StatusCode)
		}
		s.rejected.Add(1)
		if attempt >= 50 {
			return time.Time{}, err
		}
		// Wait on the backoff timer or the end of the run, whichever comes first.
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, time.Second)
	}
}

// flood sends as fast as conns concurrent senders can for d and returns the log. Requests in flight when
// d ends are finished (and counted when answered 200).
func (s *sender) flood(ctx context.Context, phase string, conns int, d time.Duration) (*requestLog, error) {
	log := newRequestLog(conns)
	stopAt := log.start.Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for r := 0; time.Now().Before(stopAt) && ctx.Err() == nil; r++ {
				buf = s.p.body(buf[:0], phase, w, r)
				at, err := s.send(ctx, buf)
				if err != nil {
					errs <- err
					return
				}
				log.record(w, r, at)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return log, <-errs
}

// steady sends rate events/s for d: request k is due at k·eventsPerRequest/rate seconds, each on its own
// goroutine so a slow answer does not slow the rate, and a late schedule catches up rather than sending
// fewer requests.
func (s *sender) steady(ctx context.Context, phase string, rate int, d time.Duration) (*requestLog, error) {
	log := newRequestLog(1)
	every := time.Duration(float64(time.Second) * eventsPerRequest / float64(rate))
	n := int(d / every)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	timer := time.NewTimer(0)
	defer timer.Stop()
	for r := range n {
		if wait := time.Until(log.start.Add(time.Duration(r) * every)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				wg.Wait()
				return log, ctx.Err()
			}
		}
		body := s.p.body(nil, phase, 0, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := s.send(ctx, body)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			log.record(0, r, at)
		}()
	}
	wg.Wait()
	return log, firstErr
}

// parseID splits "<phase>-<sender>-<request>-<i>".
func parseID(id []byte) (phase string, sender, request, i int, ok bool) {
	parts := bytes.Split(id, []byte{'-'})
	if len(parts) != 4 {
		return "", 0, 0, 0, false
	}
	var err error
	var n [3]int
	for k := range 3 {
		if n[k], err = strconv.Atoi(string(parts[k+1])); err != nil {
			return "", 0, 0, 0, false
		}
	}
	return string(parts[0]), n[0], n[1], n[2], true
}
