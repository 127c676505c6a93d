package batcher

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
)

// fingerprint identifies a (source, messageId) pair in 16 bytes: a collision, which would drop an event,
// is about as likely as 1 in 10^26 for a million events.
type fingerprint [16]byte

func fingerprintOf(source string, messageID []byte) fingerprint {
	var buf [256]byte // most pairs fit: hashing them allocates nothing
	sum := sha256.Sum256(append(append(append(buf[:0], source...), 0), messageID...))
	return fingerprint(sum[:16])
}

// idBytes is what one remembered ID costs in a Go map of fingerprints, measured (Go 1.26, swiss tables,
// 1M to 5M entries): 24 to 36 bytes, depending on where the count falls between two table sizes.
const idBytes = 36

// recentIDs remembers the messageIds written recently, so a producer's retry of an event (same source,
// same messageId) within the window is written once. Two generations rotate every window: an ID is
// remembered for at least one window and at most two. The generations together hold at most max IDs
// (at most idBytes each): when the current one reaches half of it, it rotates early, and the window is
// that much shorter until the rate drops (counted in shortened; a retry older than the shortened window
// is written twice, never lost). It is owned by the batcher's Run goroutine.
//
// It survives restarts and handovers through the DEDUPE stream: after each seal the file's fingerprints
// are published on dedupe.<sourceId> (kept for one window), and whoever opens a source reads back the
// window's fingerprints (rebuild) before it writes anything.
type recentIDs struct {
	window    time.Duration
	max       int
	cur, prev map[fingerprint]struct{}
	rotated   time.Time
	// shortened counts early rotations: the cap, not the window, decided how long IDs were remembered.
	shortened int64
}

func newRecentIDs(window time.Duration, max int, now time.Time) *recentIDs {
	return &recentIDs{window: window, max: max, cur: map[fingerprint]struct{}{}, prev: map[fingerprint]struct{}{}, rotated: now}
}

// seen reports whether f was remembered, and remembers it if not. A new generation starts with room for
// as many IDs as the last one held, so it does not grow its way there.
func (r *recentIDs) seen(f fingerprint, now time.Time) bool {
	if r.window <= 0 {
		return false
	}
	if now.Sub(r.rotated) >= r.window {
		r.rotate(now)
	} else if 2*len(r.cur) >= r.max {
		r.shortened++
		r.rotate(now)
	}
	if _, ok := r.prev[f]; ok {
		return true
	}
	n := len(r.cur)
	r.cur[f] = struct{}{} // one map operation where a lookup and an insert took two
	return len(r.cur) == n
}

func (r *recentIDs) rotate(now time.Time) {
	r.prev, r.cur, r.rotated = r.cur, make(map[fingerprint]struct{}, len(r.cur)), now
}

// forget removes IDs whose events were not sealed after all, so their redelivery is written.
func (r *recentIDs) forget(fs []fingerprint) {
	for _, f := range fs {
		delete(r.cur, f)
		delete(r.prev, f)
	}
}

// len is the number of IDs remembered.
func (r *recentIDs) len() int { return len(r.cur) + len(r.prev) }

// idsPerMessage bounds a SealedIDs message to 256 KiB of fingerprints, under any server's max_payload.
const idsPerMessage = 16 << 10

// ensureDedupeStream creates the DEDUPE stream, kept for the dedupe window. The batcher owns it: a
// stream whose settings differ from this batcher's is reported, not changed behind another's back.
func ensureDedupeStream(ctx context.Context, js jetstream.JetStream, window time.Duration, replicas int, log *slog.Logger) (jetstream.Stream, error) {
	cfg := jetstream.StreamConfig{
		Name: bus.StreamDedupe, Description: "fingerprints of the events in sealed files, for the batcher's dedupe window",
		Subjects: []string{bus.AllDedupe}, Storage: jetstream.FileStorage, Replicas: replicas,
		Retention: jetstream.LimitsPolicy, MaxAge: max(window, time.Second),
	}
	var s jetstream.Stream
	// Every batcher ensures it at start, so on a cluster creates race and a forming cluster answers
	// late: AgainOnTimeout waits those out.
	err := bus.AgainOnTimeout(ctx, func() error {
		var err error
		s, err = js.Stream(ctx, bus.StreamDedupe)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another batcher was first
				s, err = js.Stream(ctx, bus.StreamDedupe)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", bus.StreamDedupe, err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != cfg.MaxAge {
		log.Warn("the dedupe journal's retention differs from this batcher's dedupe-window; not changed here: set the same window on every batcher, or update the stream",
			"stream", bus.StreamDedupe, "maxAge", got, "dedupeWindow", window)
	}
	return s, nil
}

// journal publishes the fingerprints of a sealed file. It runs after the sealed publish: had it run
// before, a seal that then failed would leave fingerprints of unsealed events, and the next owner would
// drop those events. A crash between the two only lets a retry of that file's events be written twice.
func (b *Batcher) journal(ctx context.Context, f *file, batchID string) {
	for ids := f.ids; len(ids) > 0; {
		n := min(len(ids), idsPerMessage)
		buf := make([]byte, 0, n*len(fingerprint{}))
		for _, id := range ids[:n] {
			buf = append(buf, id[:]...)
		}
		ids = ids[n:]
		if _, err := bus.Publish(ctx, b.js, bus.DedupeSubject(f.part.source), &batchv1.SealedIDs{BatchId: batchID, Fingerprints: buf}, ""); err != nil {
			b.log.WarnContext(ctx, "journal the sealed file's messageIds; a retry of them may be written again", "batch", batchID, "error", err)
			return
		}
	}
}

// rebuild reads back the fingerprints the source's files sealed within the window, whoever sealed them.
func (b *Batcher) rebuild(ctx context.Context, source string) error {
	if b.cfg.DedupeWindow <= 0 {
		return nil
	}
	start := time.Now()
	cons, err := b.js.OrderedConsumer(ctx, bus.StreamDedupe, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.DedupeSubject(source)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: ptr(time.Now().Add(-b.cfg.DedupeWindow)),
	})
	if err != nil {
		return fmt.Errorf("read the dedupe journal of %s: %w", source, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read the dedupe journal of %s: %w", source, err)
	}
	// One iterator over one consumer: an ordered consumer's Next (a Fetch of one) deletes and creates the
	// consumer again at each call, one clustered consumer creation per journal message, and the first of
	// them whose pull request reaches our server before the new consumer's interest does ("no responders")
	// failed the whole rebuild, which followSources then tried again from the start, for as long as the
	// batcher's server was not the one hosting the consumer (the chaos suite's NATS partition: the source
	// stalled, its lease held). The iterator recreates its consumer only on a gap or a lost heartbeat.
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read the dedupe journal of %s: %w", source, err)
	}
	defer it.Stop()
	n, ids := info.NumPending, 0
	now := b.now()
	for ; n > 0; n-- {
		m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
		if err != nil {
			return fmt.Errorf("read the dedupe journal of %s: %w", source, err)
		}
		var msg batchv1.SealedIDs
		if err := proto.Unmarshal(m.Data(), &msg); err != nil {
			b.log.WarnContext(ctx, "dedupe journal message is not SealedIDs; skipped", "source", source, "error", err)
			continue
		}
		fps := msg.GetFingerprints()
		for i := 0; i+len(fingerprint{}) <= len(fps); i += len(fingerprint{}) {
			b.recent.seen(fingerprint(fps[i:i+len(fingerprint{})]), now)
			ids++
		}
	}
	b.log.InfoContext(ctx, "dedupe window rebuilt", "source", source, "ids", ids, "took", time.Since(start))
	return nil
}

func ptr[T any](v T) *T { return &v }
