package batcher

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/eventwire"
	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// sealedCount is the number of batch.sealed messages of a source in BATCHES.
func sealedCount(t *testing.T, js jetstream.JetStream, source string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), bus.StreamBatches)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(bus.SealedSubject(source)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[bus.SealedSubject(source)]
}

// A batcher that stops in its seal path (as under SIGSTOP, a long GC pause or a partition) past its
// lease wakes up after its successor has read and sealed the same events. JetStream must refuse the
// stale seal, and every event must be sealed exactly once while events keep coming.
func TestABatcherStalledPastItsLeaseCannotSealWhatItsSuccessorSealed(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	ctx := context.Background()
	putSources(t, js, "a")
	r := &rig{t: t, js: js}
	cfg := defaults()
	cfg.FlushInterval = time.Second

	var stalling atomic.Bool
	stalled, resume := make(chan struct{}), make(chan struct{})
	var old *Batcher
	stopOld := runBatcherWith(t, cfg, nc, js, redisURL, func(b *Batcher) {
		old = b
		b.beforePublish = func() {
			if stalling.CompareAndSwap(false, true) {
				close(stalled)
				<-resume
			}
		}
	})

	// Events keep coming, through the stall, the takeover and the wake-up.
	stopPublishing := publishUnderLoad(t, ctx, js)

	select {
	case <-stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the first batcher never reached its sealed publish")
	}
	before := sealedCount(t, js, "a")
	// The successor takes the lease once the stalled owner's expires, reads from the sealed cursor and
	// seals the events the stalled one holds.
	runBatcher(t, cfg, nc, js, redisURL)
	testenv.Eventually(t, 45*time.Second, "the successor to seal the source", func() bool {
		return sealedCount(t, js, "a") > before+1
	})
	close(resume) // the stalled batcher wakes up and tries to seal what it held
	testenv.Eventually(t, 10*time.Second, "the successor to seal more after the wake-up", func() bool {
		return sealedCount(t, js, "a") > before+3
	})
	ids := stopPublishing()
	r.waitSealedOnce(fmt.Sprintf("all %d events sealed", len(ids)), ids)
	stopOld()
	if old.fenced == 0 {
		t.Errorf("the stalled batcher's seal was not refused by the fence")
	}
	t.Logf("%d events, %d sealed messages; stale seals refused: %d", len(ids), sealedCount(t, js, "a"), old.fenced)
}

// A file whose every event is a retry stores nothing, but its sealed message still moves the cursor:
// a restarted batcher reads from the cursor and must not write those retries again.
func TestAFileOfOnlyRetriesMovesTheCursorSoARestartDoesNotWriteThem(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	putSources(t, js, "a")
	r := &rig{t: t, js: js}
	stop := runBatcher(t, defaults(), nc, js, redisURL)
	now := time.Now()
	r.publish("a", now, "m1", "m2")
	r.waitSealedOnce("the first request sealed", []string{"m1", "m2"})
	before := sealedCount(t, js, "a")
	r.publish("a", now, "m1", "m2") // a client's retry of the whole request, as a new message
	testenv.Eventually(t, 10*time.Second, "the retry's sealed message", func() bool { return sealedCount(t, js, "a") > before })
	stop()
	runBatcher(t, defaults(), nc, js, redisURL)
	r.publish("a", now, "m3")
	r.waitSealedOnce("m3 sealed after the restart, and the retries not again", []string{"m1", "m2", "m3"})
}

// publishUnderLoad publishes EventBatches of two events every 2 ms, on events.<source> of each source in
// turn (events.a when none is named), until the returned stop is called, which returns every messageId
// published.
func publishUnderLoad(t *testing.T, ctx context.Context, js jetstream.JetStream, sources ...string) (stop func() []string) {
	return publishEncodedUnderLoad(t, ctx, js, []eventwire.Encoding{eventwire.Plain}, sources...)
}

// publishEncodedUnderLoad is publishUnderLoad writing each source's messages in the encodings given in
// turn, as ingest replicas of different releases or settings would side by side.
func publishEncodedUnderLoad(t *testing.T, ctx context.Context, js jetstream.JetStream, encodings []eventwire.Encoding, sources ...string) (stop func() []string) {
	if len(sources) == 0 {
		sources = []string{"a"}
	}
	stopPublishing := make(chan struct{})
	published := make(chan []string, 1)
	go func() {
		var ids []string
		defer func() { published <- ids }()
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for n := 0; ; n++ {
			select {
			case <-stopPublishing:
				return
			case <-pace.C:
			}
			source := sources[n%len(sources)]
			batch := &eventsv1.EventBatch{SourceId: source, ReceivedAt: timestamppb.Now()}
			for k := range 2 {
				id := fmt.Sprintf("e-%d-%d", n, k)
				batch.Events = append(batch.Events, &eventsv1.Event{MessageId: id, Type: "track", Json: fmt.Appendf(nil, `{"messageId":%q,"properties":{"note":"compressible compressible compressible"}}`, id)})
				ids = append(ids, id)
			}
			data, err := proto.Marshal(batch)
			if err != nil {
				t.Errorf("marshal: %v", err)
				return
			}
			msg := eventwire.Frame(nil, data, encodings[(n/len(sources))%len(encodings)])
			if _, err := js.PublishMsg(ctx, bus.NewMsg(ctx, bus.Partitions(1).Subject(source), msg, "")); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
		}
	}()
	return func() []string {
		close(stopPublishing)
		return <-published
	}
}
