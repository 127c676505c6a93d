package batcher

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

type rig struct {
	t     *testing.T
	js    jetstream.JetStream
	stop  func()
	parts bus.Partitions // the zero value is the one stream EVENTS
}

func startBatcher(t *testing.T, cfg Config) *rig {
	t.Helper()
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	putSources(t, js, "a", "b", "c")
	r := &rig{t: t, js: js, parts: cfg.EventsPartitions()}
	r.stop = runBatcher(t, cfg, nc, js, redisURL)
	return r
}

// putSources adds enabled sources to the config store.
func putSources(t *testing.T, js jetstream.JetStream, ids ...string) {
	t.Helper()
	store, err := configstore.Own(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := store.PutSource(context.Background(), &configv1.Source{Id: id, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// runBatcher runs one more batcher on the rig's JetStream; stop ends it and waits for it.
func runBatcher(t *testing.T, cfg Config, nc *nats.Conn, js jetstream.JetStream, redisURL string) (stop func()) {
	t.Helper()
	return runBatcherWith(t, cfg, nc, js, redisURL, nil)
}

// runBatcherWith is runBatcher with a chance to set test hooks on the batcher before it runs.
func runBatcherWith(t *testing.T, cfg Config, nc *nats.Conn, js jetstream.JetStream, redisURL string, hook func(*Batcher)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tel, err := platform.NewTelemetry(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Common.Replicas, cfg.Common.AckWait, cfg.RedisURL = 1, 5*time.Second, redisURL
	b, err := New(cfg, &platform.Process{Log: slog.New(slog.DiscardHandler), Telemetry: tel, NATS: nc, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(b)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// sealedSeq is the BATCHES stream sequence of the sealed message after the first skip ones.
func (r *rig) sealedSeq(skip int) uint64 {
	r.t.Helper()
	cons, err := r.js.OrderedConsumer(context.Background(), bus.StreamBatches, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.AllSealed}})
	if err != nil {
		r.t.Fatal(err)
	}
	seq := uint64(1)
	for range skip {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			r.t.Fatal(err)
		}
		md, _ := m.Metadata()
		seq = md.Sequence.Stream + 1
	}
	return seq
}

func defaults() Config {
	return Config{FlushInterval: 200 * time.Millisecond, MaxFileBytes: 1_000_000, GzipLevel: 2, MaxOpenMessages: 10_000, DedupeWindow: 10 * time.Minute, DedupeMaxIDs: 1_000_000}
}

// publish stores one request's events (messageIds given) as ingest would.
func (r *rig) publish(source string, at time.Time, ids ...string) {
	r.t.Helper()
	b := &eventsv1.EventBatch{SourceId: source, ReceivedAt: timestamppb.New(at)}
	for _, id := range ids {
		line, _ := json.Marshal(map[string]any{"type": "track", "event": "E", "userId": "u", "messageId": id, "receivedAt": at.UTC().Format(time.RFC3339Nano)})
		b.Events = append(b.Events, &eventsv1.Event{MessageId: id, Type: "track", Json: line})
	}
	if _, err := bus.Publish(context.Background(), r.js, r.parts.Subject(source), b, ""); err != nil {
		r.t.Fatal(err)
	}
}

// sealed waits for n sealed files and returns each with its lines.
func (r *rig) sealed(n int) map[*batchv1.Batch][]string { return r.sealedAfter(0, n) }

// sealedAfter skips the first skip sealed files, then waits for n more.
func (r *rig) sealedAfter(skip, n int) map[*batchv1.Batch][]string {
	r.t.Helper()
	ctx := context.Background()
	cons, err := r.js.OrderedConsumer(ctx, bus.StreamBatches, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.AllSealed},
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.sealedSeq(skip)})
	if err != nil {
		r.t.Fatal(err)
	}
	obs, err := r.js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[*batchv1.Batch][]string{}
	for range n {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			r.t.Fatalf("waiting for sealed file %d of %d: %v", len(out)+1, n, err)
		}
		var s batchv1.BatchSealed
		if err := proto.Unmarshal(m.Data(), &s); err != nil {
			r.t.Fatal(err)
		}
		obj, err := obs.Get(ctx, s.GetObjectName())
		if err != nil {
			r.t.Fatal(err)
		}
		zr, err := gzip.NewReader(obj)
		if err != nil {
			r.t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		obj.Close()
		if int64(len(lines)) != s.GetBatch().GetEventCount() {
			r.t.Fatalf("file says %d events, holds %d", s.GetBatch().GetEventCount(), len(lines))
		}
		out[s.GetBatch()] = lines
	}
	return out
}

func TestFilesArePartitionedBySourceAndReceivedDay(t *testing.T) {
	r := startBatcher(t, defaults())
	today := time.Now().UTC()
	yesterday := today.Add(-24 * time.Hour)
	r.publish("a", today, "a1", "a2")
	r.publish("b", today, "b1")
	r.publish("a", yesterday, "a0")
	r.publish("a", today, "a3")
	files := r.sealed(3)
	want := map[string]int{
		fmt.Sprintf("a/%d", dayOf(today)):     3,
		fmt.Sprintf("b/%d", dayOf(today)):     1,
		fmt.Sprintf("a/%d", dayOf(yesterday)): 1,
	}
	for b, lines := range files {
		k := fmt.Sprintf("%s/%d", b.GetSourceId(), b.GetReceivedDayMs())
		if want[k] != len(lines) {
			t.Errorf("file %s holds %d lines, want %d", k, len(lines), want[k])
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Errorf("missing files: %v", want)
	}
}

func TestARetriedMessageIdIsWrittenOnce(t *testing.T) {
	r := startBatcher(t, defaults())
	now := time.Now()
	r.publish("a", now, "m1", "m2")
	r.publish("a", now, "m2", "m3") // a retry of m2 inside a different request
	for _, lines := range r.sealed(1) {
		if len(lines) != 3 {
			t.Fatalf("file holds %d lines, want m1, m2, m3 once each: %v", len(lines), lines)
		}
	}
}

func TestNoFileReachesTheSizeCap(t *testing.T) {
	cfg := defaults()
	cfg.FlushInterval = time.Hour // only size seals
	r := startBatcher(t, cfg)
	now := time.Now()
	// Random 200-character IDs compress about 2:1: 12,000 events make ~1.6 MB of gzip, so the batcher
	// must seal at least once on size.
	for range 120 {
		ids := make([]string, 100)
		for j := range ids {
			b := make([]byte, 100)
			_, _ = rand.Read(b)
			ids[j] = hex.EncodeToString(b)
		}
		r.publish("a", now, ids...)
	}
	files := r.sealed(1)
	for b := range files {
		if b.GetSizeBytes() >= cfg.MaxFileBytes {
			t.Fatalf("file of %d bytes reached the cap %d", b.GetSizeBytes(), cfg.MaxFileBytes)
		}
	}
}

func TestTwoBatchersSealEveryEventOnceAndTakeOverFromOneThatStops(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	sources := []string{"s1", "s2", "s3", "s4"}
	putSources(t, js, sources...)
	r := &rig{t: t, js: js}
	first := runBatcher(t, defaults(), nc, js, redisURL)
	runBatcher(t, defaults(), nc, js, redisURL)
	now := time.Now()
	for i := range 20 {
		for _, s := range sources {
			r.publish(s, now, fmt.Sprintf("%s-%d-a", s, i), fmt.Sprintf("%s-%d-b", s, i))
		}
	}
	seen := map[string]int{}
	count := func(files map[*batchv1.Batch][]string) {
		for _, lines := range files {
			for _, l := range lines {
				var ev struct {
					MessageID string `json:"messageId"`
				}
				_ = json.Unmarshal([]byte(l), &ev)
				seen[ev.MessageID]++
			}
		}
	}
	// Every event once, however the sources were split.
	files := 0
	for total := 0; total < 160; {
		count(r.sealedAfter(files, 1))
		files++
		total = 0
		for _, n := range seen {
			total += n
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s sealed %d times", id, n)
		}
	}
	// One batcher stops; the other takes its sources over and keeps sealing.
	first()
	for _, s := range sources {
		r.publish(s, now, s+"-after")
	}
	deadline := time.Now().Add(45 * time.Second)
	for len(seen) < 164 && time.Now().Before(deadline) {
		count(r.sealedAfter(files, 1))
		files++
	}
	for _, s := range sources {
		if seen[s+"-after"] != 1 {
			t.Fatalf("after the first batcher stopped, %s-after sealed %d times", s, seen[s+"-after"])
		}
	}
}

// A crash after the sealed publish and before the ack leaves the consumer with delivered, unacknowledged
// messages that are already sealed. The restarted batcher must only acknowledge them and go on with new
// events, not wait for them as for unsealed ones.
func TestARestartAfterTheSealedPublishAndBeforeTheAckGoesOnWithNewEvents(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	ctx := context.Background()
	putSources(t, js, "a")
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, js: js}
	now := time.Now()
	r.publish("a", now, "old-1")
	r.publish("a", now, "old-2")
	r.publish("a", now, "old-3")
	// What the killed batcher left: the three messages delivered, none acknowledged, all sealed.
	cons, err := bus.EnsureConsumer(ctx, js, bus.ConsumerConfig{Stream: bus.StreamEvents, Durable: "batcher-a", Filter: bus.Partitions(1).Subject("a"),
		AckWait: 5 * time.Second, MaxAckPending: defaults().MaxOpenMessages, AckAll: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range got.Messages() {
	}
	sealed := &batchv1.BatchSealed{Batch: &batchv1.Batch{BatchId: "before-the-crash", SourceId: "a"}, SealedThrough: 3}
	if _, err := bus.Publish(ctx, js, bus.SealedSubject("a"), sealed, "sealed.before-the-crash"); err != nil {
		t.Fatal(err)
	}

	runBatcher(t, defaults(), nc, js, redisURL)
	r.publish("a", now, "new-1")
	for b, lines := range r.sealedAfter(1, 1) {
		if b.GetFirstSequence() != 4 || len(lines) != 1 {
			t.Fatalf("sealed %d events from sequence %d, want only new-1 (sequence 4): %v", len(lines), b.GetFirstSequence(), lines)
		}
	}
}

// allSealed reads every sealed file announced so far, with its lines.
func (r *rig) allSealed() map[*batchv1.Batch][]string {
	r.t.Helper()
	s, err := r.js.Stream(context.Background(), bus.StreamBatches)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(bus.AllSealed))
	if err != nil {
		r.t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return r.sealed(n)
}

// leaseOwners counts the sources each batcher holds in BATCHER_LEASES.
func leaseOwners(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, "BATCHER_LEASES")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	for k := range keys.Keys() {
		if e, err := kv.Get(ctx, k); err == nil {
			owners[string(e.Value())]++
		}
	}
	return owners
}

// With one EVENTS stream, and with three partitions (sources in every one), a batcher that joins takes
// half the sources, and every event is sealed once, in files named after its source's stream.
func TestABatcherThatJoinsGetsHalfTheSourcesAndEveryEventIsSealedOnce(t *testing.T) {
	for _, parts := range []bus.Partitions{1, 3} {
		t.Run(fmt.Sprintf("%d partitions", parts), func(t *testing.T) { batcherJoins(t, parts) })
	}
}

func batcherJoins(t *testing.T, parts bus.Partitions) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	ctx := context.Background()
	// Sources spread evenly over the partitions: four in one, two in each of three.
	var sources []string
	perPartition := map[int]int{}
	total := max(4, 2*int(parts))
	for i := 1; len(sources) < total; i++ {
		if id := fmt.Sprintf("s%d", i); perPartition[parts.Of(id)] < total/int(parts) {
			perPartition[parts.Of(id)]++
			sources = append(sources, id)
		}
	}
	putSources(t, js, sources...)
	r := &rig{t: t, js: js, parts: parts}
	cfg := defaults()
	cfg.Partitions = int(parts)
	// Files stay open for 2s: whenever a source is handed over, it has an open file to seal.
	cfg.FlushInterval = 2 * time.Second
	first := runBatcher(t, cfg, nc, js, redisURL)
	if owners := leaseOwners(t, js); len(owners) != 1 {
		t.Fatalf("alone, one batcher should hold every source: %v", owners)
	}

	// Events keep coming while the second batcher joins and the sources are split.
	stopPublishing := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		n := 0
		defer func() { published <- n }()
		now := time.Now()
		for {
			select {
			case <-stopPublishing:
				return
			default:
			}
			src := sources[n%len(sources)]
			b := &eventsv1.EventBatch{SourceId: src, ReceivedAt: timestamppb.New(now)}
			id := fmt.Sprintf("e-%d", n)
			b.Events = append(b.Events, &eventsv1.Event{MessageId: id, Type: "track", Json: fmt.Appendf(nil, `{"messageId":%q}`, id)})
			if _, err := bus.Publish(ctx, js, parts.Subject(src), b, ""); err != nil {
				return
			}
			n++
		}
	}()
	testenv.Eventually(t, 10*time.Second, "events before the second batcher joins", func() bool { return len(leaseOwners(t, js)) == 1 })
	second := runBatcher(t, cfg, nc, js, redisURL)
	testenv.Eventually(t, 20*time.Second, "the sources to be split half and half", func() bool {
		owners := leaseOwners(t, js)
		if len(owners) != 2 {
			return false
		}
		for _, n := range owners {
			if n != len(sources)/2 {
				return false
			}
		}
		return true
	})
	close(stopPublishing)
	n := <-published
	var seen map[string]int
	var files map[*batchv1.Batch][]string
	count := func() int {
		seen, files = map[string]int{}, r.allSealed()
		for _, lines := range files {
			for _, l := range lines {
				var ev struct {
					MessageID string `json:"messageId"`
				}
				_ = json.Unmarshal([]byte(l), &ev)
				seen[ev.MessageID]++
			}
		}
		return len(seen)
	}
	testenv.Eventually(t, 30*time.Second, "every event sealed", func() bool { return count() == n })
	// Stopping seals whatever is open: nothing may be sealed a second time.
	first()
	second()
	count()
	for i := range n {
		if c := seen[fmt.Sprintf("e-%d", i)]; c != 1 {
			t.Fatalf("e-%d sealed %d times, want once (%d published)", i, c, n)
		}
	}
	if len(seen) != n {
		t.Fatalf("sealed %d distinct events, published %d", len(seen), n)
	}
	for b := range files {
		if want := parts.StreamOf(b.GetSourceId()) + "@"; !strings.HasPrefix(b.GetEventsStream(), want) {
			t.Errorf("batch %s of %s counts in %s, want the stream %s", b.GetBatchId(), b.GetSourceId(), b.GetEventsStream(), want)
		}
	}
	t.Logf("%d events in %d files", n, len(files))
}

func TestObjectChunksAre512KiBUnlessTheServerAllowsLessPerMessage(t *testing.T) {
	for _, c := range []struct {
		maxPayload int64
		want       uint32
	}{{1 << 20, 512 << 10}, {8 << 20, 512 << 10}, {256 << 10, 256 << 10}, {0, 1}} {
		if got := chunkSize(c.maxPayload); got != c.want {
			t.Errorf("chunkSize(%d) = %d, want %d", c.maxPayload, got, c.want)
		}
	}
}

func TestAMessageThatIsNotAnEventBatchIsDeadLetteredWithTheReasonAndTheNextIsSealed(t *testing.T) {
	r := startBatcher(t, defaults())
	ctx := context.Background()
	// A source_id (field 1) that is not UTF-8: proto.Unmarshal refuses it, and so must the batcher's decoder.
	bad := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff, 'a'})
	if _, err := r.js.Publish(ctx, bus.Partitions(1).Subject("a"), bad); err != nil {
		t.Fatal(err)
	}
	r.publish("a", time.Now(), "m1")
	for _, lines := range r.sealed(1) {
		if len(lines) != 1 || !strings.Contains(lines[0], `"m1"`) {
			t.Errorf("sealed lines %v, want m1 alone", lines)
		}
	}
	dl, err := r.js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dl.GetLastMsgForSubject(ctx, bus.DeadLetterSubject("batcher", "a"))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if reason := msg.Header.Get(bus.HeaderReason); !strings.Contains(reason, "not an EventBatch") || !strings.Contains(reason, "UTF-8") {
		t.Errorf("reason %q, want it to say the payload is not an EventBatch and why", reason)
	}
	if !bytes.Equal(msg.Data, bad) {
		t.Errorf("dead letter holds %x, want the message as it was", msg.Data)
	}
}
