// Package batcher turns the EVENTS stream into files: gzip NDJSON, one per (source, UTC received day),
// sealed when it nears the size cap, when its oldest event reaches the flush interval, and on a graceful
// stop. A sealed file is stored in the JetStream object store BATCHES and announced on
// batch.sealed.<sourceId>; only then are its events acknowledged.
//
// Exactly once: a file's batch ID and name derive from its partition and stream sequences, and the
// per-partition cursor (the last sealed sequence, in Redis and recoverable from batch.sealed) makes a
// redelivered event that is already in a sealed file be acknowledged without being written again.
package batcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/cursor"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Batcher is the batcher service. Run's goroutine owns every open file; nothing else touches them.
type Batcher struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	tracer trace.Tracer
	now    func() time.Time

	rdb      *redis.Client
	cursors  *cursor.Store
	obs      jetstream.ObjectStore
	batches  jetstream.Stream
	consumer jetstream.Consumer

	open map[partition]*file
	// recent holds the messageIds written recently, per source.
	recent *recentIDs
	// sealedUpTo caches each partition's last sealed sequence.
	sealedUpTo map[partition]uint64
	held       int
	// duplicates counts events dropped as retries.
	duplicates int64
}

// New validates cfg; it does no I/O.
func New(cfg Config, p *platform.Process) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Batcher{
		cfg: cfg, log: p.Log, nc: p.NATS, js: p.JS,
		tracer:     p.Telemetry.Tracer.Tracer("s3dest/batcher"),
		now:        time.Now,
		open:       map[partition]*file{},
		recent:     newRecentIDs(cfg.DedupeWindow, time.Now()),
		sealedUpTo: map[partition]uint64{},
	}, nil
}

// Name implements service.Service.
func (b *Batcher) Name() string { return "batcher" }

// Start connects to Redis and ensures the streams, the object store and the durable consumer.
func (b *Batcher) Start(ctx context.Context) error {
	rdb, err := platform.ConnectRedis(ctx, b.cfg.RedisURL)
	if err != nil {
		return err
	}
	b.rdb = rdb
	b.cursors = cursor.New(rdb, 35*24*time.Hour)
	sc := bus.DefaultStreamConfig()
	sc.Replicas = b.cfg.Replicas
	if err := bus.EnsureStreams(ctx, b.js, sc); err != nil {
		return err
	}
	if b.obs, err = b.js.ObjectStore(ctx, bus.ObjectBatches); err != nil {
		return fmt.Errorf("open object store: %w", err)
	}
	if b.batches, err = b.js.Stream(ctx, bus.StreamBatches); err != nil {
		return fmt.Errorf("open stream %s: %w", bus.StreamBatches, err)
	}
	b.consumer, err = bus.EnsureConsumer(ctx, b.js, bus.ConsumerConfig{
		Stream: bus.StreamEvents, Durable: "batcher", Filter: bus.AllEvents,
		// Events wait in an open file for up to the flush interval before they are acknowledged.
		AckWait:       b.cfg.FlushInterval + 2*time.Minute,
		MaxAckPending: b.cfg.MaxOpenMessages,
	})
	return err
}

// Run batches until ctx ends, then seals every open file and returns.
func (b *Batcher) Run(ctx context.Context) error {
	defer b.rdb.Close()
	it, err := b.consumer.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	msgs := make(chan jetstream.Msg, 64)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				b.log.Warn("fetch events", "error", err)
				continue
			}
			msgs <- m
		}
	}()

	tick := time.NewTicker(min(b.cfg.FlushInterval/4, time.Second))
	defer tick.Stop()
	// Work started before the stop must finish after it: sealing runs on a context that outlives ctx.
	wctx := context.WithoutCancel(ctx)
	stopping := ctx.Done()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				b.sealAll(wctx, "stop")
				return nil
			}
			b.add(wctx, m)
		case <-tick.C:
			b.sealExpired(wctx)
		case <-stopping:
			// Stop fetching; what was already fetched still arrives on msgs, then msgs closes.
			it.Stop()
			stopping = nil
		}
	}
}

// add writes one EVENTS message (one accepted request) into the file of its partition.
func (b *Batcher) add(ctx context.Context, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		b.log.Error("event message without metadata", "subject", m.Subject(), "error", err)
		_ = m.Nak()
		return
	}
	seq := md.Sequence.Stream
	var batch eventsv1.EventBatch
	if err := proto.Unmarshal(m.Data(), &batch); err != nil {
		b.deadLetter(ctx, m, fmt.Sprintf("payload: not an EventBatch: %v", err))
		return
	}
	part := partition{source: batch.GetSourceId(), dayMs: dayOf(batch.GetReceivedAt().AsTime())}
	if part.source == "" || part.source != bus.LastToken(m.Subject()) {
		b.deadLetter(ctx, m, fmt.Sprintf("sourceId: %q does not match the subject %s", part.source, m.Subject()))
		return
	}

	upTo, err := b.sealedThrough(ctx, part)
	if err != nil {
		b.log.Warn("cannot read the partition cursor; retrying the message later", "source", part.source, "day", part.dayMs, "error", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	if seq <= upTo {
		_ = m.Ack() // already in a sealed file: a redelivery after a crash
		return
	}
	f := b.open[part]
	if f != nil && seq <= f.last {
		return // redelivered while its file is still open: the file's ack will cover it
	}

	size := int64(0)
	for _, e := range batch.GetEvents() {
		size += int64(len(e.GetJson()) + 1)
	}
	if f != nil {
		fits, err := f.fits(size, b.cfg.MaxFileBytes)
		if err != nil {
			b.fail(f, err)
			f = nil
		} else if !fits {
			b.seal(ctx, f, "size")
			f = nil
		}
	}
	if f == nil {
		if f, err = openFile(ctx, b.obs, part, seq, b.cfg.GzipLevel, b.now()); err != nil {
			b.log.Error("open file", "error", err)
			_ = m.NakWithDelay(time.Second)
			return
		}
		b.open[part] = f
	}
	now := b.now()
	for _, e := range batch.GetEvents() {
		fp := fingerprintOf(part.source, e.GetMessageId())
		if b.recent.seen(fp, now) {
			b.duplicates++
			continue // a producer's retry of an event already written
		}
		f.ids = append(f.ids, fp)
		if err := f.write(e.GetJson()); err != nil {
			b.fail(f, err)
			_ = m.NakWithDelay(time.Second)
			return
		}
	}
	f.last = seq
	f.replies = append(f.replies, m.Reply())
	if sc := trace.SpanContextFromContext(bus.ContextFrom(ctx, m.Headers())); sc.IsValid() && len(f.traces) < maxTraceLinks {
		f.traces = append(f.traces, sc)
	}
	b.held++
	if b.held >= b.cfg.MaxOpenMessages {
		b.sealAll(ctx, "held messages")
	}
}

// seal closes f, announces it on batch.sealed.<sourceId> and then acknowledges its events. If any step
// fails the events are released for redelivery; the deterministic names make the retry overwrite.
func (b *Batcher) seal(ctx context.Context, f *file, reason string) {
	delete(b.open, f.part)
	b.held -= len(f.replies)
	var links []trace.Link
	if len(f.traces) > 0 {
		ctx = trace.ContextWithRemoteSpanContext(ctx, f.traces[0])
		for _, sc := range f.traces[1:] {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := b.tracer.Start(ctx, "batcher.seal", trace.WithLinks(links...))
	defer span.End()
	if err := f.close(); err != nil {
		b.release(f, err)
		return
	}
	if f.events == 0 {
		// Every event was a retry of one already written: no file, just the acks.
		if err := b.obs.Delete(ctx, f.objectName); err != nil {
			b.log.WarnContext(ctx, "remove empty spooled object", "object", f.objectName, "error", err)
		}
		b.ack(f)
		return
	}
	batch := &batchv1.Batch{
		BatchId:           f.batchID(),
		SourceId:          f.part.source,
		ReceivedDayMs:     f.part.dayMs,
		FirstSequence:     f.first,
		LastSequence:      f.last,
		EventCount:        f.events,
		SizeBytes:         f.compressed,
		UncompressedBytes: f.uncompressed,
		Sha256:            f.sha256(),
		SealedAt:          timestamppb.New(b.now()),
		FileName:          f.fileName(),
	}
	sealed := &batchv1.BatchSealed{Batch: batch, ObjectName: f.objectName}
	if _, err := bus.Publish(ctx, b.js, bus.SealedSubject(f.part.source), sealed, "sealed."+batch.GetBatchId()); err != nil {
		b.release(f, err)
		return
	}
	b.sealedUpTo[f.part] = f.last
	if err := b.cursors.Add(ctx, cursor.Sealed, f.part.source, f.part.dayMs, f.events, f.compressed, f.last, b.now()); err != nil {
		// The cursor is rebuilt from batch.sealed when Redis lacks it; the file is safe either way.
		b.log.Warn("record cursor", "error", err)
	}
	b.ack(f)
	b.log.InfoContext(ctx, "sealed", "batch", batch.GetBatchId(), "source", f.part.source, "day", f.part.dayMs,
		"events", f.events, "bytes", f.compressed, "reason", reason, "duplicatesDropped", b.duplicates)
}

// ack acknowledges the EVENTS messages of a file. The ack subjects were kept instead of the messages so
// an open file does not hold its events' payloads in memory.
func (b *Batcher) ack(f *file) {
	for _, r := range f.replies {
		_ = b.nc.Publish(r, []byte("+ACK"))
	}
}

// fail drops an open file after a write error and releases its events.
func (b *Batcher) fail(f *file, err error) {
	delete(b.open, f.part)
	b.held -= len(f.replies)
	f.abort(err)
	b.release(f, err)
}

// release asks JetStream to redeliver a file's events soon, and forgets their messageIds so the
// redelivery is written.
func (b *Batcher) release(f *file, err error) {
	b.recent.forget(f.ids)
	b.log.Error("file not sealed; its events will be redelivered", "object", f.objectName, "error", err)
	for _, r := range f.replies {
		_ = b.nc.Publish(r, []byte(`-NAK {"delay": 1000000000}`))
	}
}

func (b *Batcher) sealExpired(ctx context.Context) {
	now := b.now()
	for _, f := range b.open {
		if now.Sub(f.opened) >= b.cfg.FlushInterval {
			b.seal(ctx, f, "age")
		}
	}
}

func (b *Batcher) sealAll(ctx context.Context, reason string) {
	for _, f := range b.open {
		b.seal(ctx, f, reason)
	}
}

// sealedThrough returns the last stream sequence of the partition already in a sealed file: from memory,
// else Redis, else the last batch.sealed message of the source (so losing Redis loses nothing).
func (b *Batcher) sealedThrough(ctx context.Context, part partition) (uint64, error) {
	if seq, ok := b.sealedUpTo[part]; ok {
		return seq, nil
	}
	d, ok, err := b.cursors.Get(ctx, cursor.Sealed, part.source, part.dayMs)
	if err == nil && ok {
		b.sealedUpTo[part] = d.LastSeq
		return d.LastSeq, nil
	}
	if err != nil {
		b.log.Warn("cursor unavailable; reading the last sealed batch from JetStream", "error", err)
	}
	raw, err := b.batches.GetLastMsgForSubject(ctx, bus.SealedSubject(part.source))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		b.sealedUpTo[part] = 0
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last sealed batch of %s: %w", part.source, err)
	}
	var last batchv1.BatchSealed
	if err := proto.Unmarshal(raw.Data, &last); err != nil {
		return 0, fmt.Errorf("decode last sealed batch of %s: %w", part.source, err)
	}
	seq := uint64(0)
	if last.GetBatch().GetReceivedDayMs() == part.dayMs {
		seq = last.GetBatch().GetLastSequence()
	}
	b.sealedUpTo[part] = seq
	return seq, nil
}

func (b *Batcher) deadLetter(ctx context.Context, m jetstream.Msg, reason string) {
	out := bus.NewMsg(ctx, bus.DeadLetterSubject("batcher", bus.LastToken(m.Subject())), m.Data(), "")
	out.Header.Set(bus.HeaderReason, reason)
	if _, err := b.js.PublishMsg(ctx, out); err != nil {
		b.log.Error("dead-letter failed; will retry", "error", err)
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	b.log.Error("event message dead-lettered", "subject", m.Subject(), "reason", reason)
	_ = m.Term()
}

// dayOf is 00:00 UTC of t's day, in Unix milliseconds: the received-day of the object key.
func dayOf(t time.Time) int64 {
	return t.UTC().Truncate(24 * time.Hour).UnixMilli()
}
