package ingest

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter keeps one token bucket per source. A request takes as many tokens as it has events; when the
// bucket is short the request is refused whole (never half-accepted) with the time until it would fit.
type limiter struct {
	perSecond int
	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
}

// minimalEvent is the shortest event the rules accept; a batch holds it with a comma after it.
const minimalEvent = `{"type":"page","userId":1}`

// maxBatchEvents bounds the events one request can carry (MaxBatchBytes of the smallest valid events),
// so the burst always admits a whole request: a batch larger than a second's worth is refused with 429
// until the bucket has refilled, then accepted, never refused forever.
const maxBatchEvents = MaxBatchBytes/(len(minimalEvent)+1) + 1

func newLimiter(perSecond int) *limiter {
	return &limiter{perSecond: perSecond, buckets: map[string]*rate.Limiter{}}
}

// allow takes n tokens for source, or says how long to wait before retrying.
func (l *limiter) allow(source string, n int, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil || l.perSecond == 0 {
		return true, 0
	}
	l.mu.Lock()
	b, found := l.buckets[source]
	if !found {
		b = rate.NewLimiter(rate.Limit(l.perSecond), max(l.perSecond, maxBatchEvents))
		l.buckets[source] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, n)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, time.Duration(math.Ceil(d.Seconds())) * time.Second
	}
	return true, 0
}
