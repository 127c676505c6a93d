// Package batcher turns the EVENTS stream (or, with partitions set, the streams EVENTS-0 … EVENTS-{N-1},
// each source in one of them: bus.Partitions) into files: gzip NDJSON, one per (source, UTC received day),
// sealed when it nears the size cap, when its oldest event reaches the flush interval, and on a graceful
// stop. A sealed file is stored in the JetStream object store BATCHES and announced on
// batch.sealed.<sourceId>; only then are its events acknowledged.
//
// Exactly once: the batcher that leases a source reads it through a consumer of its own with AckAll,
// created at takeover to start right after the source's sealed cursor (any other batcher consumer of the
// source is deleted first), so the source's messages arrive strictly in stream order. All open files of
// a source are sealed together, in order of their first sequence, each sealed message recording
// sealed_through: the sequence up to which the source's events are all in sealed files. That cursor is
// read from JetStream only (the last batch.sealed.<sourceId> message, if it counts in this incarnation of
// the source's EVENTS stream), never from Redis, which may have been flushed or restored from an old
// snapshot; it lets a redelivered event that is already sealed be acknowledged without being written
// again. File names derive from the partition, the source's EVENTS stream's identity and the sequences,
// so a replay overwrites rather than duplicates, and a recreated stream never reuses an old name. Each sealed publish expects
// the subject's last message to be the one the batcher knows (the fence), so a batcher that stalled past
// its lease cannot seal what its successor sealed.
package batcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/cursor"
	"github.com/s3dest/s3dest/pkg/eventwire"
	"github.com/s3dest/s3dest/pkg/failpoint"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Batcher is the batcher service. Run's goroutine owns every open file and every map below; the
// consumer goroutines only forward messages.
type Batcher struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	tracer trace.Tracer
	meter  metric.MeterProvider
	now    func() time.Time

	rdb     *redis.Client
	cursors *cursor.Store
	obs     jetstream.ObjectStore
	chunk   uint32 // the object store's chunk size
	batches jetstream.Stream
	view    *configstore.View

	leases *leases
	msgs   chan fetched
	// consumers holds the message iterator of every source this batcher leases; a message fetched
	// through another (older) iterator is no longer ours to write.
	consumers map[string]jetstream.MessagesContext
	feeders   sync.WaitGroup

	open map[partition]*file
	// batch is the message being added, decoded in place; it points into that message's data, or into
	// wire's buffer when the message was compressed, neither of which changes while its events are
	// written (each line is copied into its file's buffer).
	batch eventwire.Batch
	wire  eventwire.Reader
	// recent holds the messageIds written recently, per source.
	recent  *recentIDs
	metrics *metrics
	// sealedThrough caches each source's cursor: every event up to it is in a sealed file.
	sealedThrough map[string]uint64
	// lastSealed is, per source, the BATCHES sequence of the last batch.sealed.<sourceId> message this
	// batcher knows of: every sealed publish expects it (the fence), so a batcher that stalled past its
	// lease cannot seal after its successor did.
	lastSealed map[string]uint64
	// generation numbers this process's consumers, so a reopened source never reuses a consumer name.
	generation int
	// parts says which EVENTS stream holds each source's events; events and streams are indexed by
	// partition: each stream, and its identity (name and creation time) its sequences count in.
	parts   bus.Partitions
	events  []jetstream.Stream
	streams []streamIdentity
	held    int
	// duplicates counts events dropped as retries; fenced counts seals JetStream refused because another
	// batcher sealed the source since.
	duplicates, fenced int64
	// beforePublish, if set (tests only), runs before each sealed publish: it stands for a batcher that
	// stops there (SIGSTOP, a long GC pause, a partition).
	beforePublish func()
}

// New validates cfg; it does no I/O.
func New(cfg Config, p *platform.Process) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Batcher{
		cfg: cfg, log: p.Log, nc: p.NATS, js: p.JS,
		tracer:        p.Telemetry.Tracer.Tracer("s3dest/batcher"),
		meter:         p.Telemetry.Meter,
		now:           time.Now,
		msgs:          make(chan fetched, 256),
		consumers:     map[string]jetstream.MessagesContext{},
		open:          map[partition]*file{},
		recent:        newRecentIDs(cfg.DedupeWindow, cfg.DedupeMaxIDs, time.Now()),
		sealedThrough: map[string]uint64{},
		lastSealed:    map[string]uint64{},
		parts:         cfg.EventsPartitions(),
	}, nil
}

// Name implements service.Service.
func (b *Batcher) Name() string { return "batcher" }

// Start connects to Redis, ensures the streams and the object store, and loads the sources.
func (b *Batcher) Start(ctx context.Context) error {
	rdb, err := platform.ConnectRedis(ctx, b.cfg.RedisURL)
	if err != nil {
		return err
	}
	b.rdb = rdb
	b.cursors = cursor.New(rdb, 35*24*time.Hour)
	store, err := configstore.OpenWithStreams(ctx, b.js, b.cfg.Common.StreamConfig(), b.log)
	if err != nil {
		return err
	}
	if err = bus.AgainOnTimeout(ctx, func() (err error) { b.obs, err = b.js.ObjectStore(ctx, bus.ObjectBatches); return err }); err != nil {
		return fmt.Errorf("open object store: %w", err)
	}
	b.chunk = chunkSize(b.nc.MaxPayload())
	if err = bus.AgainOnTimeout(ctx, func() (err error) { b.batches, err = b.js.Stream(ctx, bus.StreamBatches); return err }); err != nil {
		return fmt.Errorf("open stream %s: %w", bus.StreamBatches, err)
	}
	for _, name := range b.parts.Streams() {
		var s jetstream.Stream
		err := bus.AgainOnTimeout(ctx, func() (err error) { s, err = b.js.Stream(ctx, name); return err })
		if err != nil {
			return fmt.Errorf("open stream %s: %w", name, err)
		}
		b.events = append(b.events, s)
		b.streams = append(b.streams, streamIdentity{name: name, created: s.CachedInfo().Created})
	}
	if _, err := ensureDedupeStream(ctx, b.js, b.cfg.DedupeWindow, b.cfg.Replicas, b.log); err != nil {
		return err
	}
	if b.metrics, err = newMetrics(b.meter); err != nil {
		return err
	}
	if err := b.metrics.ObservePending(platform.StageBatcher, b.pending); err != nil {
		return err
	}
	if b.leases, err = openLeases(ctx, b.js, b.cfg.Replicas, b.log); err != nil {
		return err
	}
	if b.view, err = store.Watch(context.WithoutCancel(ctx), b.log); err != nil {
		return err
	}
	return b.followSources(ctx)
}

// fetched is a message and the iterator that fetched it; a nil msg says the iterator ended on its own
// (its consumer was deleted).
type fetched struct {
	msg    jetstream.Msg
	from   jetstream.MessagesContext
	source string
}

// followSources opens every source this batcher can lease, up to its fair share, and is not reading
// yet. Several batchers share the sources: each source is leased by one batcher at a time, and each
// batcher takes at most ceil(sources / live batchers).
func (b *Batcher) followSources(ctx context.Context) error {
	sources := b.view.Sources()
	share := b.leases.share(len(sources))
	for _, src := range sources {
		id := src.GetId()
		if _, ok := b.consumers[id]; ok {
			continue
		}
		if len(b.consumers) >= share {
			return nil
		}
		if !b.leases.acquire(ctx, id) || !b.leases.confirm(ctx, id) {
			continue
		}
		if err := b.openSource(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// consumerSource is the metadata key that names the source of a batcher's consumer.
const consumerSource = "s3dest-batcher-source"

// openSource starts reading a leased source from its cursor, through a consumer of this batcher's own.
// The truth of where to start is JetStream's (the last batch.sealed message), never a consumer's ack
// floor: any other consumer of the source, a predecessor's that stalled past its lease included, is
// deleted first, so its pending pulls take no more messages and its acknowledgements count for nothing.
// The new consumer delivers the source's events strictly in stream order from the cursor on, with AckAll.
func (b *Batcher) openSource(ctx context.Context, id string) error {
	through, err := b.sourceCursor(ctx, id)
	if err != nil {
		return err
	}
	if err := b.deleteConsumers(ctx, id); err != nil {
		return err
	}
	// The retries a predecessor (or this batcher before a restart) already wrote are known before
	// anything is read.
	if err := b.rebuild(ctx, id); err != nil {
		return err
	}
	b.generation++
	cons, err := bus.EnsureConsumer(ctx, b.js, bus.ConsumerConfig{
		Stream: b.parts.StreamOf(id), Durable: fmt.Sprintf("batcher-%s-%s-%d", id, b.leases.me, b.generation), Filter: b.parts.Subject(id),
		// Events wait in an open file for up to the flush interval; keepHeld renews them meanwhile.
		AckWait: b.cfg.Common.AckWait, MaxAckPending: b.cfg.MaxOpenMessages, AckAll: true,
		StartSeq: through + 1, Metadata: map[string]string{consumerSource: id},
		// The next owner deletes it; this only cleans up after a source that left the configuration.
		InactiveThreshold: time.Hour,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("consume events of %s: %w", id, err)
	}
	b.log.Info("reading source", "source", id, "from", through+1, "consumer", cons.CachedInfo().Name)
	b.consumers[id] = it
	b.feeders.Add(1)
	go func() {
		defer b.feeders.Done()
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) {
				b.msgs <- fetched{from: it, source: id}
				return
			}
			if err != nil {
				b.log.Warn("fetch events", "source", id, "error", err)
				continue
			}
			b.msgs <- fetched{msg: m, from: it, source: id}
		}
	}()
	return nil
}

// deleteConsumers deletes every consumer of the source's EVENTS stream that reads the source for a
// batcher: those named in their metadata, and the one consumer per source of earlier versions
// (batcher-<sourceId>).
func (b *Batcher) deleteConsumers(ctx context.Context, id string) error {
	events := b.events[b.parts.Of(id)]
	list := events.ListConsumers(ctx)
	var names []string
	for info := range list.Info() {
		if info.Config.Metadata[consumerSource] == id || info.Name == "batcher-"+id {
			names = append(names, info.Name)
		}
	}
	if err := list.Err(); err != nil {
		return fmt.Errorf("list the consumers of %s: %w", id, err)
	}
	for _, name := range names {
		if err := events.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s of %s: %w", name, id, err)
		}
	}
	return nil
}

// pending is what the batchers' consumers of EVENTS (every batcher's: they are told apart by their
// metadata, not by owner) have not had acknowledged, for the metrics. Events in open files count until
// their file is sealed.
func (b *Batcher) pending(ctx context.Context) (int64, bool) {
	n, err := bus.Pending(ctx, b.js, bus.StreamEvents, func(c *jetstream.ConsumerInfo) bool { return c.Config.Metadata[consumerSource] != "" })
	return n, err == nil
}

// Run batches until ctx ends, then seals every open file and returns.
func (b *Batcher) Run(ctx context.Context) error {
	defer b.rdb.Close()
	tick := time.NewTicker(min(b.cfg.FlushInterval/4, time.Second))
	defer tick.Stop()
	// Work started before the stop must finish after it: sealing runs on a context that outlives ctx.
	wctx := context.WithoutCancel(ctx)
	lastPing := time.Now()
	for {
		select {
		case f := <-b.msgs:
			b.add(wctx, f)
		case <-tick.C:
			for _, lost := range b.leases.renew(ctx) {
				b.dropSource(wctx, lost)
			}
			b.rebalance(wctx)
			b.followStream(wctx)
			b.sealExpired(wctx)
			b.metrics.observe(b.recent, b.fenced)
			if time.Since(lastPing) >= b.cfg.Common.AckWait/3 {
				b.keepHeld()
				lastPing = time.Now()
			}
			if err := b.followSources(ctx); err != nil {
				b.log.Warn("follow new sources", "error", err)
			}
		case <-ctx.Done():
			// Stop fetching, take what was already fetched, then seal everything.
			for _, it := range b.consumers {
				it.Stop()
			}
			done := make(chan struct{})
			go func() { b.feeders.Wait(); close(done) }()
		drain:
			for {
				select {
				case f := <-b.msgs:
					b.add(wctx, f)
				case <-done:
					break drain
				}
			}
			for len(b.msgs) > 0 {
				b.add(wctx, <-b.msgs)
			}
			b.sealAll(wctx, "stop")
			b.leases.releaseAll(wctx)
			return nil
		}
	}
}

// add writes one EVENTS message (one accepted request) into the file of its partition.
func (b *Batcher) add(ctx context.Context, in fetched) {
	if b.consumers[in.source] != in.from {
		// Fetched through a consumer this batcher no longer reads (the source was handed over, lost, or
		// reopened): whoever reads the source now starts from the sealed cursor and gets it there.
		return
	}
	m := in.msg
	if m == nil {
		b.log.WarnContext(ctx, "the source's consumer was deleted; reopening it from the sealed cursor", "source", in.source)
		b.reopen(ctx, in.source, "consumer deleted")
		return
	}
	md, err := m.Metadata()
	if err != nil {
		b.log.Error("event message without metadata", "subject", m.Subject(), "error", err)
		_ = m.Nak()
		return
	}
	seq := md.Sequence.Stream
	source := bus.LastToken(m.Subject())
	through, err := b.sourceCursor(ctx, source)
	b.log.DebugContext(ctx, "event message", "source", source, "seq", seq, "delivered", md.NumDelivered, "sealedThrough", through)
	if err != nil {
		b.log.Warn("cannot read the source's cursor; retrying the message later", "source", source, "error", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	if seq <= through {
		_ = m.Ack() // already in a sealed file: a redelivery after AckWait
		return
	}
	batch := &b.batch
	if err := b.wire.Decode(m.Data(), batch); err != nil {
		if errors.Is(err, eventwire.ErrNewerEncoding) {
			// A newer ingest wrote it (docs/wire.md): the message is sound, and a dead letter would lose
			// it. Seal what came before it, then read the source again from there, meeting it once a
			// tick, until this batcher is upgraded or the source moves to one that is.
			b.log.ErrorContext(ctx, "event message in a newer encoding: upgrade this batcher", "source", source, "seq", seq, "error", err)
			if b.sealSource(ctx, source, "newer encoding") {
				b.reopen(ctx, source, "newer encoding")
			}
			return
		}
		b.deadLetter(ctx, m, reasonPayload, fmt.Sprintf("payload: not an EventBatch: %v", err))
		return
	}
	part := partition{source: batch.SourceID, dayMs: dayOf(batch.ReceivedAt)}
	if part.source != source {
		b.deadLetter(ctx, m, reasonSourceMismatch, fmt.Sprintf("sourceId: %q does not match the subject %s", part.source, m.Subject()))
		return
	}
	f := b.open[part]
	if f != nil && seq <= f.last {
		return // redelivered while its file is still open: the file's ack covers it
	}

	size := int64(0)
	for _, e := range batch.Events {
		size += int64(len(e.JSON) + 1)
	}
	if f != nil {
		fits, err := f.fits(size, b.cfg.MaxFileBytes)
		if err != nil {
			b.fail(ctx, source, err)
			return
		}
		if !fits {
			if !b.sealSource(ctx, source, "size") {
				return // reopened: the message comes again, in order
			}
			f = nil
		}
	}
	if f == nil {
		if f, err = openFile(ctx, b.obs, part, b.streams[b.parts.Of(source)], b.leases.me, seq, b.cfg.GzipLevel, b.chunk, b.now()); err != nil {
			b.fail(ctx, source, fmt.Errorf("open file: %w", err))
			return
		}
		b.open[part] = f
	}
	now := b.now()
	for _, e := range batch.Events {
		fp := fingerprintOf(part.source, e.MessageID)
		if b.recent.seen(fp, now) {
			b.duplicates++
			continue // a producer's retry of an event already written
		}
		f.ids = append(f.ids, fp)
		if err := f.write(e.JSON); err != nil {
			b.fail(ctx, source, err)
			return
		}
	}
	f.last = seq
	if f.oldest.IsZero() || batch.ReceivedAt.Before(f.oldest) {
		f.oldest = batch.ReceivedAt
	}
	if batch.ReceivedAt.After(f.newest) {
		f.newest = batch.ReceivedAt
	}
	f.replies = append(f.replies, m.Reply())
	f.seqs = append(f.seqs, seq)
	failpoint.Hit("batcher.mid-file")
	if sc := trace.SpanContextFromContext(bus.ContextFrom(ctx, m.Headers())); sc.IsValid() && len(f.traces) < maxTraceLinks {
		f.traces = append(f.traces, sc)
	}
	b.held++
	if b.held >= b.cfg.MaxOpenMessages {
		b.sealAll(ctx, "held messages")
	}
}

// sealSource seals every open file of a source, in order of their first sequence, and then acknowledges
// the prefix of the source's events that is sealed. Each sealed message claims only that prefix, so a
// crash between two of them never claims an unsealed event. If a file fails, or JetStream refuses a seal
// because another batcher sealed the source since (the fence), it and the files after it are dropped and
// the source is reopened from the sealed cursor; sealSource then reports false.
func (b *Batcher) sealSource(ctx context.Context, source, reason string) bool {
	var files []*file
	for part, f := range b.open {
		if part.source == source {
			files = append(files, f)
			delete(b.open, part)
			b.held -= len(f.replies)
		}
	}
	slices.SortFunc(files, func(x, y *file) int { return cmp.Compare(x.first, y.first) })
	var maxLast uint64
	for _, f := range files {
		maxLast = max(maxLast, f.last)
	}
	// The prefix of the source that is sealed after each file; the last file completes the group.
	prefix := b.sealedThrough[source]
	var sealed []*file
	ok := true
	for i, f := range files {
		through := maxLast
		if i+1 < len(files) {
			through = files[i+1].first - 1
		}
		if err := b.seal(ctx, f, through, reason); err != nil {
			b.log.Error("file not sealed; the source is read again from its sealed cursor", "object", f.objectName, "error", err)
			for _, g := range files[i+1:] {
				g.abort(err)
			}
			for _, g := range files[i:] {
				b.recent.forget(g.ids)
			}
			if bus.IsWrongLastSequence(err) {
				b.fenced++ // sealed by another batcher meanwhile
			}
			// What is sealed is read again from JetStream: another batcher's seal, or this one's own if the
			// publish was stored but its answer lost.
			delete(b.sealedThrough, source)
			delete(b.lastSealed, source)
			ok = false
			break
		}
		prefix = max(prefix, through)
		b.sealedThrough[source] = prefix
		sealed = append(sealed, f)
	}
	// With AckAll, acknowledging one message acknowledges every earlier one of the source: acknowledge
	// the last message within the sealed prefix, never beyond it.
	var ackSeq uint64
	ackReply := ""
	for _, f := range sealed {
		for i, seq := range f.seqs {
			if seq <= prefix && seq >= ackSeq {
				ackSeq, ackReply = seq, f.replies[i]
			}
		}
	}
	if ackReply != "" {
		_ = b.nc.Publish(ackReply, []byte("+ACK"))
	}
	if !ok {
		b.reopen(ctx, source, "seal failed")
	}
	return ok
}

// seal closes f and announces it on batch.sealed.<sourceId> with the source's cursor through.
func (b *Batcher) seal(ctx context.Context, f *file, through uint64, reason string) error {
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
		return err
	}
	failpoint.Hit("batcher.after-store")
	objectName := f.objectName
	if f.events == 0 {
		// Every event was a retry of one already written: no file, but the sealed message still moves
		// the cursor, so those events are not read again.
		if err := b.obs.Delete(ctx, f.objectName); err != nil {
			b.log.WarnContext(ctx, "remove empty spooled object", "object", f.objectName, "error", err)
		}
		objectName = ""
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
		EventsStream:      f.stream.String(),
	}
	if !f.oldest.IsZero() {
		batch.OldestReceivedAt, batch.NewestReceivedAt = timestamppb.New(f.oldest), timestamppb.New(f.newest)
	}
	sealed := &batchv1.BatchSealed{Batch: batch, ObjectName: objectName, SealedThrough: through}
	if b.beforePublish != nil {
		b.beforePublish()
	}
	failpoint.Hit("batcher.before-sealed")
	// The fence: the publish expects the subject's last message to be the last one this batcher knows
	// of. If a successor took the lease and sealed meanwhile, JetStream refuses it.
	ack, err := bus.Publish(ctx, b.js, bus.SealedSubject(f.part.source), sealed, "sealed."+batch.GetBatchId(),
		jetstream.WithExpectLastSequencePerSubject(b.lastSealed[f.part.source]))
	if err == nil && ack.Duplicate {
		// The same batch was sealed already (by this batcher, if an earlier publish was stored but its
		// answer lost): its object, of the same name, stays; the cursor is read again.
		err = fmt.Errorf("sealed publish of %s deduplicated: the batch is sealed already", batch.GetBatchId())
	}
	if err != nil {
		// Only a refusal is certain: after a timeout or a lost connection the message may be stored, and
		// its object must stay. Either way the cursor is read again from JetStream.
		if objectName != "" && bus.IsWrongLastSequence(err) {
			if derr := b.obs.Delete(ctx, objectName); derr != nil {
				b.log.WarnContext(ctx, "remove spooled object of a refused seal", "object", objectName, "error", derr)
			}
		}
		return fmt.Errorf("seal batch %s: %w", batch.GetBatchId(), err)
	}
	b.lastSealed[f.part.source] = ack.Sequence
	failpoint.Hit("batcher.after-sealed")
	if objectName == "" {
		return nil
	}
	b.journal(ctx, f, batch.GetBatchId())
	b.metrics.FilesSealed.Add(ctx, 1, b.metrics.With("source", f.part.source))
	if err := b.cursors.Add(ctx, cursor.Sealed, f.part.source, f.part.dayMs, f.events, f.compressed, f.last, b.now()); err != nil {
		b.log.WarnContext(ctx, "record day cursor", "error", err)
	}
	b.log.InfoContext(ctx, "sealed", "batch", batch.GetBatchId(), "source", f.part.source, "day", f.part.dayMs,
		"events", f.events, "bytes", f.compressed, "reason", reason, "duplicatesDropped", b.duplicates)
	return nil
}

// keepHeld tells JetStream that the messages in open files are still being worked on, so AckWait can be
// short: after a crash, their redelivery starts within AckWait instead of after the flush interval.
func (b *Batcher) keepHeld() {
	for _, f := range b.open {
		for _, r := range f.replies {
			_ = b.nc.Publish(r, []byte("+WPI"))
		}
	}
}

// fail drops every open file of a source after a write error and reads the source again from its
// sealed cursor.
func (b *Batcher) fail(ctx context.Context, source string, err error) {
	b.log.ErrorContext(ctx, "file failed; the source is read again from its sealed cursor", "source", source, "error", err)
	b.dropFiles(source, err)
	b.reopen(ctx, source, "file failed")
}

// dropFiles aborts every open file of a source and forgets their messageIds, so their events are
// written when they come again.
func (b *Batcher) dropFiles(source string, err error) {
	for part, f := range b.open {
		if part.source == source {
			delete(b.open, part)
			b.held -= len(f.replies)
			f.abort(err)
			b.recent.forget(f.ids)
		}
	}
}

// reopen stops reading a source (its open files must be gone already); the next tick opens it again
// from its sealed cursor with a new consumer, which delivers everything after the cursor in order. One
// way back from every failure keeps AckAll safe: nothing is acknowledged that was not written.
func (b *Batcher) reopen(ctx context.Context, source, why string) {
	b.dropFiles(source, errors.New(why))
	if it, ok := b.consumers[source]; ok {
		it.Stop()
		delete(b.consumers, source)
	}
	b.log.InfoContext(ctx, "source will be read again from its sealed cursor", "source", source, "reason", why)
}

func (b *Batcher) sealExpired(ctx context.Context) {
	now := b.now()
	expired := map[string]bool{}
	for part, f := range b.open {
		if now.Sub(f.opened) >= b.cfg.FlushInterval {
			expired[part.source] = true
		}
	}
	for source := range expired {
		b.sealSource(ctx, source, "age")
	}
}

func (b *Batcher) sealAll(ctx context.Context, reason string) {
	sources := map[string]bool{}
	for part := range b.open {
		sources[part.source] = true
	}
	for source := range sources {
		b.sealSource(ctx, source, reason)
	}
}

// followStream notices that an EVENTS stream was deleted and created again while this batcher runs.
// The open files of its sources hold events of the old incarnation: they are sealed under its identity
// (their acknowledgements go nowhere; the data is what matters). Then each of those sources starts
// again on the new stream: new consumers, cursors read again (an old incarnation's cursor counts for
// nothing), and new names for everything sealed from now on. Sources of the other partitions go on.
func (b *Batcher) followStream(ctx context.Context) {
	for p, events := range b.events {
		info, err := events.Info(ctx)
		if err != nil {
			if !errors.Is(err, jetstream.ErrStreamNotFound) {
				b.log.WarnContext(ctx, "read the EVENTS stream's identity", "stream", b.streams[p].name, "error", err)
			}
			continue
		}
		if info.Created.Equal(b.streams[p].created) {
			continue
		}
		now := streamIdentity{name: b.streams[p].name, created: info.Created}
		b.log.WarnContext(ctx, "the EVENTS stream was created again: its sequences start over; following the new one",
			"was", b.streams[p].String(), "now", now.String())
		inPartition := func(source string) bool { return b.parts.Of(source) == p }
		for part := range b.open {
			if inPartition(part.source) {
				b.sealSource(ctx, part.source, "stream recreated")
			}
		}
		for id, it := range b.consumers {
			if inPartition(id) {
				it.Stop()
				delete(b.consumers, id)
			}
		}
		maps.DeleteFunc(b.sealedThrough, func(id string, _ uint64) bool { return inPartition(id) })
		maps.DeleteFunc(b.lastSealed, func(id string, _ uint64) bool { return inPartition(id) })
		b.streams[p] = now
	}
}

// rebalance hands over the sources this batcher holds beyond its fair share, ceil(sources / live
// batchers), so that a batcher that joins gets its part within a lease renewal.
func (b *Batcher) rebalance(ctx context.Context) {
	excess := len(b.consumers) - b.leases.share(len(b.view.Sources()))
	if excess <= 0 {
		return
	}
	owned := slices.Sorted(maps.Keys(b.consumers))
	for _, source := range owned[len(owned)-excess:] {
		b.handOver(ctx, source)
	}
}

// handOver gives a source to whichever batcher takes it next, without loss or duplicate: fetching
// stops, its open files are sealed and their events acknowledged, and only then is the lease deleted.
// Messages fetched but not yet written are dropped as they come out of the drained iterator (add sees
// that their iterator is no longer the source's): the next owner deletes this batcher's consumer and
// reads the source with its own from the sealed cursor, in stream order.
func (b *Batcher) handOver(ctx context.Context, source string) {
	b.consumers[source].Drain()
	delete(b.consumers, source)
	b.sealSource(ctx, source, "handover")
	delete(b.sealedThrough, source)
	delete(b.lastSealed, source)
	b.leases.release(ctx, source)
	b.log.InfoContext(ctx, "source handed over to even out the batchers", "source", source)
}

// dropSource stops working on a source whose lease was lost: another batcher owns it now. Its open
// files are dropped unsealed; the new owner reads their events from the sealed cursor.
func (b *Batcher) dropSource(ctx context.Context, source string) {
	if it, ok := b.consumers[source]; ok {
		it.Stop()
		delete(b.consumers, source)
	}
	b.dropFiles(source, errors.New("lease lost"))
	delete(b.sealedThrough, source)
	delete(b.lastSealed, source)
	b.log.WarnContext(ctx, "lease lost; another batcher owns the source now", "source", source)
}

// sourceCursor returns the sequence up to which the source's events are all sealed. JetStream is the
// only truth: the sealed_through of the last batch.sealed message, if that message counts in this
// incarnation of the source's EVENTS stream. Redis is never read for it: a flushed Redis would only cost a lookup,
// but one restored from an old snapshot, or one that outlived a recreated stream, could hold a cursor
// ahead of the stream, and every event up to it would be acknowledged unwritten.
func (b *Batcher) sourceCursor(ctx context.Context, source string) (uint64, error) {
	if seq, ok := b.sealedThrough[source]; ok {
		return seq, nil
	}
	var seq uint64
	raw, err := b.batches.GetLastMsgForSubject(ctx, bus.SealedSubject(source))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		b.lastSealed[source] = 0
	case err != nil:
		return 0, fmt.Errorf("last sealed batch of %s: %w", source, err)
	default:
		b.lastSealed[source] = raw.Sequence
		var last batchv1.BatchSealed
		if err := proto.Unmarshal(raw.Data, &last); err != nil {
			return 0, fmt.Errorf("decode last sealed batch of %s: %w", source, err)
		}
		if stream := b.streams[b.parts.Of(source)]; sameStream(stream, last.GetBatch().GetEventsStream(), raw.Time) {
			seq = last.GetSealedThrough()
		} else {
			b.log.Warn("the last sealed batch counts in another incarnation of the EVENTS stream; starting the source from its first event",
				"source", source, "sealedIn", last.GetBatch().GetEventsStream(), "stream", stream.String())
		}
	}
	b.sealedThrough[source] = seq
	return seq, nil
}

// sameStream reports whether a sealed message counts in stream, the current incarnation of its source's
// EVENTS stream: its events_stream says so, or, sealed before that field existed, it was stored after
// the stream was created (a sealed message always follows the events it covers). A source whose
// partition changed (partitions set anew after EVENTS was drained) finds its cursor in another stream's
// name, and starts from the first event of its new stream.
func sameStream(stream streamIdentity, sealedIn string, storedAt time.Time) bool {
	if sealedIn != "" {
		return sealedIn == stream.String()
	}
	return !storedAt.Before(stream.created)
}

// deadLetter parks an EVENTS message; why is the reason's class, the metric's label.
func (b *Batcher) deadLetter(ctx context.Context, m jetstream.Msg, why, reason string) {
	out := bus.NewMsg(ctx, bus.DeadLetterSubject("batcher", bus.LastToken(m.Subject())), m.Data(), "")
	out.Header.Set(bus.HeaderReason, reason)
	if _, err := b.js.PublishMsg(ctx, out); err != nil {
		b.log.Error("dead-letter failed; will retry", "error", err)
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	b.metrics.DeadLetters.Add(ctx, 1, b.metrics.With("stage", platform.StageBatcher, "reason", why))
	b.log.Error("event message dead-lettered", "subject", m.Subject(), "reason", reason)
	_ = m.Term()
}

// dayOf is 00:00 UTC of t's day, in Unix milliseconds: the received-day of the object key.
func dayOf(t time.Time) int64 {
	return t.UTC().Truncate(24 * time.Hour).UnixMilli()
}
