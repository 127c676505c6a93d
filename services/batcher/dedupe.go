package batcher

import (
	"crypto/sha256"
	"time"
)

// fingerprint identifies a (source, messageId) pair in 16 bytes: a collision, which would drop an event,
// is about as likely as 1 in 10^26 for a million events.
type fingerprint [16]byte

func fingerprintOf(source string, messageID []byte) fingerprint {
	var buf [256]byte // most pairs fit: hashing them allocates nothing
	sum := sha256.Sum256(append(append(append(buf[:0], source...), 0), messageID...))
	return fingerprint(sum[:16])
}

// recentIDs remembers the messageIds written recently, so a producer's retry of an event (same source,
// same messageId) within the window is written once. Two generations rotate every window: an ID is
// remembered for at least one window and at most two. Memory: about 50 bytes per remembered event,
// so 50 MB per million events in the window. It is owned by the batcher's Run goroutine.
//
// The memory starts empty when the batcher starts: a retry that straddles a batcher restart is not
// caught here. JetStream's duplicate window (Nats-Msg-Id of the whole request) still catches retries of
// the same request.
type recentIDs struct {
	window    time.Duration
	cur, prev map[fingerprint]struct{}
	rotated   time.Time
}

func newRecentIDs(window time.Duration, now time.Time) *recentIDs {
	return &recentIDs{window: window, cur: map[fingerprint]struct{}{}, prev: map[fingerprint]struct{}{}, rotated: now}
}

// seen reports whether f was remembered, and remembers it if not. A new generation starts with room for
// as many IDs as the last one held, so it does not grow its way there.
func (r *recentIDs) seen(f fingerprint, now time.Time) bool {
	if r.window <= 0 {
		return false
	}
	if now.Sub(r.rotated) >= r.window {
		r.prev, r.cur, r.rotated = r.cur, make(map[fingerprint]struct{}, len(r.cur)), now
	}
	if _, ok := r.prev[f]; ok {
		return true
	}
	n := len(r.cur)
	r.cur[f] = struct{}{} // one map operation where a lookup and an insert took two
	return len(r.cur) == n
}

// forget removes IDs whose events were not sealed after all, so their redelivery is written.
func (r *recentIDs) forget(fs []fingerprint) {
	for _, f := range fs {
		delete(r.cur, f)
		delete(r.prev, f)
	}
}
