package batcher

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

func TestTheDedupeWindowRemembersAnIDForAtLeastOneWindowAndForgetsItAfterTwo(t *testing.T) {
	start := time.Unix(1_764_547_200, 0)
	const window = 10 * time.Minute
	for _, c := range []struct {
		after time.Duration
		seen  bool
	}{
		{0, true},
		{window - time.Second, true},
		{window, true},                 // rotated once: still in the previous generation
		{2*window - time.Second, true}, // the previous generation rotated at window, not yet again
		{2 * window, false},            // two rotations: forgotten
		{3 * window, false},
	} {
		r := newRecentIDs(window, 1_000_000, start)
		id := fingerprintOf("src", []byte("m1"))
		if r.seen(id, start) {
			t.Fatal("a new ID was reported as seen")
		}
		// Other traffic makes the window rotate on time.
		for at := start; at.Before(start.Add(c.after)); at = at.Add(window) {
			r.seen(fingerprintOf("src", fmt.Appendf(nil, "other-%d", at.Unix())), at)
		}
		if got := r.seen(id, start.Add(c.after)); got != c.seen {
			t.Errorf("%s after it was written: seen = %v, want %v", c.after, got, c.seen)
		}
	}
}

func TestTheDedupeMemoryStaysUnderItsCapAndSaysWhenTheWindowWasShortened(t *testing.T) {
	now := time.Unix(1_764_547_200, 0)
	const capIDs = 10_000
	r := newRecentIDs(10*time.Minute, capIDs, now)
	for i := range 20 * capIDs {
		id := fingerprintOf("src", fmt.Appendf(nil, "m-%d", i))
		if r.seen(id, now) {
			t.Fatalf("m-%d reported as seen", i)
		}
		if r.len() > capIDs {
			t.Fatalf("after %d IDs the window holds %d, over its cap of %d", i+1, r.len(), capIDs)
		}
		if !r.seen(id, now) {
			t.Fatalf("m-%d forgotten right after it was written", i)
		}
	}
	if r.shortened == 0 {
		t.Error("the window was cut short without being counted")
	}
	// The most recent half of the cap is always remembered.
	for i := 20*capIDs - capIDs/2; i < 20*capIDs; i++ {
		if !r.seen(fingerprintOf("src", fmt.Appendf(nil, "m-%d", i)), now) {
			t.Fatalf("m-%d, among the last %d written, was forgotten", i, capIDs/2)
		}
	}
}

func TestARetryAfterARestartIsWrittenOnce(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	putSources(t, js, "a")
	r := &rig{t: t, js: js}
	stop := runBatcher(t, defaults(), nc, js, redisURL)
	now := time.Now()
	r.publish("a", now, "m1", "m2")
	r.waitSealedOnce("the first request sealed", []string{"m1", "m2"})
	stop()
	runBatcher(t, defaults(), nc, js, redisURL)
	r.publish("a", now, "m2", "m3") // a producer's retry of m2, in a new request
	r.waitSealedOnce("m3 sealed and the retried m2 not again", []string{"m1", "m2", "m3"})
}

func TestARetryAfterAHandoverIsWrittenOnce(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	putSources(t, js, "a")
	r := &rig{t: t, js: js}
	first := runBatcher(t, defaults(), nc, js, redisURL)
	runBatcher(t, defaults(), nc, js, redisURL) // holds nothing while the first one owns the only source
	now := time.Now()
	r.publish("a", now, "m1", "m2")
	r.waitSealedOnce("the first request sealed", []string{"m1", "m2"})
	first() // a clean stop gives the lease back: the second batcher takes the source over
	r.publish("a", now, "m1", "m3")
	r.waitSealedOnce("m3 sealed by the new owner and the retried m1 not again", []string{"m1", "m2", "m3"})
}

func TestTheDedupeWindowIsMeasuredInIDsBytesAndShortenings(t *testing.T) {
	tel, err := platform.NewTelemetry(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(tel.Meter)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_764_547_200, 0)
	r := newRecentIDs(time.Minute, 1000, now)
	for i := range 1500 {
		r.seen(fingerprintOf("src", fmt.Appendf(nil, "m-%d", i)), now)
	}
	m.observe(r, 2)
	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			switch {
			case s.GetGauge() != nil:
				got[f.GetName()] = s.GetGauge().GetValue()
			case s.GetCounter() != nil:
				got[f.GetName()] = s.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"s3dest_batcher_dedupe_ids":                    float64(r.len()),
		"s3dest_batcher_dedupe_bytes":                  float64(r.len() * idBytes),
		"s3dest_batcher_dedupe_window_shortened_total": float64(r.shortened),
		"s3dest_batcher_seals_fenced_total":            2,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v (exported: %v)", name, got[name], v, got)
		}
	}
	if r.shortened == 0 || r.len() > 1000 {
		t.Errorf("1500 IDs under a cap of 1000: %d remembered, %d shortenings", r.len(), r.shortened)
	}
}

// BenchmarkDedupeRebuild measures what a takeover costs to read back a source's dedupe window from the
// DEDUPE stream: one op rebuilds one million IDs (16 MB of fingerprints in 62 messages).
func BenchmarkDedupeRebuild(b *testing.B) {
	_, _, js := testenv.NATS(b)
	ctx := context.Background()
	if _, err := ensureDedupeStream(ctx, js, 10*time.Minute, 1, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	const n = 1_000_000
	bt := &Batcher{cfg: Config{DedupeWindow: 10 * time.Minute}, js: js, log: slog.New(slog.DiscardHandler), now: time.Now}
	f := &file{part: partition{source: "src"}}
	for i := range n {
		f.ids = append(f.ids, fingerprintOf("src", fmt.Appendf(nil, "m-%d", i)))
	}
	bt.journal(ctx, f, "bench")
	for b.Loop() {
		bt.recent = newRecentIDs(10*time.Minute, 2*n, time.Now())
		if err := bt.rebuild(ctx, "src"); err != nil {
			b.Fatal(err)
		}
		if bt.recent.len() != n {
			b.Fatalf("rebuilt %d IDs, want %d", bt.recent.len(), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/1M-ids")
}
