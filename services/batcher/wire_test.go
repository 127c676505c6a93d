package batcher

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/eventwire"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// A rolling upgrade (docs/wire.md): ingest replicas writing the unframed EventBatch (a release before
// encodings, or --events-encoding proto) and S2 side by side, into every source's stream, while the
// batchers are restarted one after the other. Every event is sealed once, whichever encoding brought it
// and whichever batcher read it.
func TestPlainAndS2MessagesSideBySideThroughARollingRestartAreEachSealedOnce(t *testing.T) {
	sources := []string{"s1", "s2", "s3", "s4"}
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	putSources(t, js, sources...)
	r := &rig{t: t, js: js}
	cfg := defaults()
	cfg.FlushInterval = time.Second // files are open whenever a batcher stops
	first := runBatcher(t, cfg, nc, js, redisURL)
	second := runBatcher(t, cfg, nc, js, redisURL)
	stopPublishing := publishEncodedUnderLoad(t, context.Background(), js, []eventwire.Encoding{eventwire.Plain, eventwire.S2}, sources...)
	testenv.Eventually(t, 30*time.Second, "the sources to be split two and two", func() bool { return splitEvenly(t, js, 2, len(sources)) })
	first()
	runBatcher(t, cfg, nc, js, redisURL)
	testenv.Eventually(t, 30*time.Second, "the restarted batcher to take its share", func() bool { return splitEvenly(t, js, 2, len(sources)) })
	second()
	runBatcher(t, cfg, nc, js, redisURL)
	testenv.Eventually(t, 30*time.Second, "the second restarted batcher to take its share", func() bool { return splitEvenly(t, js, 2, len(sources)) })
	ids := stopPublishing()
	r.waitSealedOnce(fmt.Sprintf("all %d events, half of their messages S2, sealed once", len(ids)), ids)
	if n := pendingDeadLetters(t, js); n != 0 {
		t.Errorf("%d messages dead-lettered, want none", n)
	}
}

// A message in an encoding this batcher does not know came from a newer ingest: it is not dead-lettered
// (a newer batcher reads it); the source waits at it, and what came before it is sealed.
func TestAMessageInANewerEncodingWaitsForANewerBatcherInsteadOfBeingDeadLettered(t *testing.T) {
	r := startBatcher(t, defaults())
	now := time.Now()
	r.publish("a", now, "m1")
	newer := []byte{0x00, 0x7f, 'f', 'u', 't', 'u', 'r', 'e'}
	if _, err := r.js.PublishMsg(context.Background(), bus.NewMsg(context.Background(), r.parts.Subject("a"), newer, "")); err != nil {
		t.Fatal(err)
	}
	r.publish("a", now, "m3")
	r.publish("b", now, "b1")
	r.waitSealedOnce("m1 and b1 sealed, m3 waiting behind the newer message", []string{"m1", "b1"})
	// The source goes on meeting the message, once a tick, each time reading it again from the cursor:
	// wait until it was delivered more than once, then check it went nowhere else.
	readers := map[string]bool{}
	testenv.Eventually(t, 20*time.Second, "the newer message to be read again", func() bool {
		readersOf(t, r.js, "a", 2, readers)
		return len(readers) >= 2
	})
	if n := pendingDeadLetters(t, r.js); n != 0 {
		t.Errorf("%d messages dead-lettered, want none", n)
	}
}

// readersOf adds to seen the batcher consumers of a source that have delivered its message seq.
func readersOf(t *testing.T, js jetstream.JetStream, source string, seq uint64, seen map[string]bool) {
	t.Helper()
	s, err := js.Stream(context.Background(), bus.Partitions(1).StreamOf(source))
	if err != nil {
		t.Fatal(err)
	}
	for name := range s.ConsumerNames(context.Background()).Name() {
		if !strings.HasPrefix(name, "batcher-"+source+"-") {
			continue
		}
		if c, err := s.Consumer(context.Background(), name); err == nil && c.CachedInfo().Delivered.Stream >= seq {
			seen[name] = true
		} // else deleted at a reopen since it was listed
	}
}

// pendingDeadLetters is the number of dead letters the batcher published.
func pendingDeadLetters(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), bus.StreamDeadLetter)
	if err != nil {
		return 0 // not created: nothing was dead-lettered
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
