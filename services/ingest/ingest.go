// Package ingest is the front door: Segment's Tracking API over HTTP, and the subject ingest.<sourceId>
// for producers already on JetStream. It validates every event, adds what Segment adds (receivedAt,
// messageId, corrected timestamp, context.ip), and publishes each accepted request as EventBatch messages
// on events.<sourceId>: one, or as many as the server's payload limit requires. It answers 200 only after
// JetStream stored every one of them.
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/eventwire"
	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Ingest is the ingest service.
type Ingest struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	tracer  trace.Tracer
	metrics *metrics
	tel     *platform.Telemetry

	view     *configstore.View
	ln       net.Listener
	srv      *http.Server
	consumer jetstream.Consumer
	limits   *limiter
	inflight *inflight
	trusted  []netip.Prefix
	now      func() time.Time
	// parts says which EVENTS stream, and so which subject, each source's events go to.
	parts bus.Partitions

	// encoding is how the EventBatch messages are written (Config.EventsEncoding).
	encoding eventwire.Encoding
	// partBytes bounds one EventBatch message: MaxMessageBytes or the server's max_payload, less room
	// for the headers.
	partBytes int
}

// headerRoom is what a message's headers (Nats-Msg-Id, trace context) may take of the payload limit.
const headerRoom = 4096

// New validates cfg; it does no I/O.
func New(cfg Config, p *platform.Process) (*Ingest, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(p.Telemetry.Meter)
	if err != nil {
		return nil, err
	}
	trusted, _ := parseTrustedProxies(cfg.TrustedProxies)      // checked by Validate
	encoding, _ := eventwire.ParseEncoding(cfg.EventsEncoding) // checked by Validate
	partBytes := cfg.MaxMessageBytes
	if p.NATS != nil && p.NATS.MaxPayload() > 0 {
		partBytes = min(partBytes, int(p.NATS.MaxPayload()))
	}
	if partBytes < minMessageBytes {
		return nil, fmt.Errorf("the NATS server's max_payload is %d bytes; ingest needs at least %d so that the largest event fits in a message", partBytes, minMessageBytes)
	}
	return &Ingest{
		cfg: cfg, log: p.Log, js: p.JS, tel: p.Telemetry, metrics: m,
		tracer:    p.Telemetry.Tracer.Tracer("s3dest/ingest"),
		limits:    newLimiter(cfg.RateLimit),
		inflight:  newInflight(int64(cfg.MaxInflightBytes)),
		trusted:   trusted,
		encoding:  encoding,
		now:       time.Now,
		partBytes: partBytes - headerRoom,
		parts:     cfg.EventsPartitions(),
	}, nil
}

// Name implements service.Service.
func (s *Ingest) Name() string { return "ingest" }

// Addr is the Tracking API's bound address (after Start).
func (s *Ingest) Addr() string { return s.ln.Addr().String() }

// Start ensures the streams, loads the write keys and binds the HTTP port.
func (s *Ingest) Start(ctx context.Context) error {
	store, err := configstore.OpenWithStreams(ctx, s.js, s.cfg.Common.StreamConfig(), s.log)
	if err != nil {
		return err
	}
	// The view lives as long as the process: write keys keep updating while requests drain.
	if s.view, err = store.Watch(context.WithoutCancel(ctx), s.log); err != nil {
		return err
	}
	s.consumer, err = bus.EnsureConsumer(ctx, s.js, bus.ConsumerConfig{
		Stream: bus.StreamIngest, Durable: "ingest", Filter: bus.AllIngest,
		AckWait: s.cfg.AckWait, MaxAckPending: 1000,
	})
	if err != nil {
		return err
	}
	if err := s.metrics.ObservePending(platform.StageIngest, s.pending); err != nil {
		return err
	}
	if s.ln, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.HTTPAddr, err)
	}
	s.srv = platform.NewHTTPServer(otelhttp.NewHandler(s, "tracking", otelhttp.WithTracerProvider(s.tel.Tracer), otelhttp.WithMeterProvider(s.tel.Meter),
		otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string { return op + " " + r.URL.Path })),
		platform.HTTPTimeouts{})
	return nil
}

// Run serves until ctx ends, then stops accepting and finishes the requests in flight.
func (s *Ingest) Run(ctx context.Context) error {
	go s.spreadLeaders(ctx)
	errc := make(chan error, 2)
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve tracking API: %w", err)
		}
	}()
	go func() {
		errc <- bus.Consume(ctx, s.consumer, s.handleIngest, bus.ConsumeOptions{
			Workers: s.cfg.Workers, AckWait: s.cfg.AckWait, SpanName: "ingest.message", Tracer: s.tracer, Log: s.log,
		})
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain tracking API: %w", err)
	}
	return <-errc
}

// pending is what the INGEST consumer has not had acknowledged, for the metrics.
func (s *Ingest) pending(ctx context.Context) (int64, bool) {
	n, err := bus.Pending(ctx, s.js, bus.StreamIngest, func(c *jetstream.ConsumerInfo) bool { return c.Name == "ingest" })
	return n, err == nil
}

// batchPool recycles the encoded batches and their compressed messages: NATS copies a message into its
// write buffer before PublishMsg returns, so a buffer is free once the publish is acknowledged or has failed.
var batchPool = sync.Pool{New: func() any { return new([]byte) }}

// accept enriches events and publishes them as EventBatch messages of at most partBytes each, one after
// another, so a request never holds more than one message's bytes whatever its events expand to.
//
// Each message has a deterministic Nats-Msg-Id, so a retried request is stored once. idBase "" (HTTP)
// derives each message's ID from its events' messageIds: a client's retry is split the same way only if
// its enrichment has the same size (a different client IP may not), and an ID made of the contents
// stays right either way. idBase set (ingest.<sourceId>) names the stored message, and a redelivery
// splits the same bytes the same way, so the parts are idBase, idBase.p1, idBase.p2, ...
//
// Parts are not published atomically (JetStream's atomic batch publish would need AllowAtomicPublish on
// the stream and still leaves a timed-out commit in doubt): when one fails the request is answered 503,
// the parts already stored stay, and the retry stores only what is missing.
func (s *Ingest) accept(ctx context.Context, sourceID, ip string, p *payload, idBase string) error {
	rc := newReceipt(sourceID, ip, s.now())
	buf, framed := batchPool.Get().(*[]byte), batchPool.Get().(*[]byte)
	defer batchPool.Put(buf)
	defer batchPool.Put(framed)
	header := eventwire.AppendBatchHeader((*buf)[:0], sourceID, rc.at)
	headerLen := len(header)
	data := header
	h := sha256.New()
	part, inPart := 0, 0
	publish := func() error {
		msgID := idBase
		switch {
		case idBase == "":
			msgID = sourceID + "." + hex.EncodeToString(h.Sum(nil)[:16])
		case part > 0:
			msgID = idBase + ".p" + strconv.Itoa(part)
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
		defer cancel()
		// Parts are cut by their EventBatch's size, so a compressed message is never the larger (Frame).
		msg := eventwire.Frame(*framed, data, s.encoding)
		if len(msg) != len(data) {
			*framed = msg
		}
		ack, err := s.js.PublishMsg(pctx, bus.NewMsg(ctx, s.parts.Subject(sourceID), msg, msgID))
		if err != nil {
			return fmt.Errorf("publish %d events of %s (part %d): %w", inPart, sourceID, part, err)
		}
		if !ack.Duplicate { // a retry of a part already stored was counted when it was
			s.metrics.accepted(ctx, sourceID, inPart)
		}
		part, inPart = part+1, 0
		data = data[:headerLen]
		h.Reset()
		return nil
	}
	for i := range p.events {
		ev := p.merged(i)
		id, typ, err := enrich(&ev, rc)
		if err != nil {
			return err
		}
		if n := eventwire.EventSize(id, typ, ev.size()); inPart > 0 && len(data)+n > s.partBytes {
			if err := publish(); err != nil {
				return err
			}
		}
		h.Write(id)
		h.Write([]byte{0})
		data = appendEvent(data, id, typ, &ev)
		inPart++
	}
	err := publish()
	*buf = data
	return err
}

// handleIngest takes one message from ingest.<sourceId>: raw Segment JSON, one event or a batch. What
// cannot be accepted goes to deadletter.ingest.<sourceId> with the reason.
func (s *Ingest) handleIngest(ctx context.Context, msg jetstream.Msg) error {
	sourceID := bus.LastToken(msg.Subject())
	if err := s.view.Fresh(); err != nil {
		return fmt.Errorf("source %s cannot be checked right now: %w", sourceID, err) // redelivered later
	}
	switch src, ok := s.view.Source(sourceID); {
	case !ok:
		return s.deadLetter(ctx, msg, sourceID, deadUnknownSource, fmt.Sprintf("subject: unknown source %q", sourceID))
	case !src.GetEnabled():
		return s.deadLetter(ctx, msg, sourceID, deadDisabledSource, fmt.Sprintf("subject: source %q is disabled", sourceID))
	}
	if len(msg.Data()) > MaxBatchBytes {
		return s.deadLetter(ctx, msg, sourceID, deadInvalid, fmt.Sprintf("payload: must be at most %d bytes, got %d", MaxBatchBytes, len(msg.Data())))
	}
	p, ierr := parsePayload(msg.Data(), "")
	if ierr != nil {
		return s.deadLetter(ctx, msg, sourceID, deadInvalid, ierr.Error())
	}
	defer p.release()
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	// The INGEST sequence identifies the message: a redelivery publishes the same ID and is deduplicated.
	err = s.accept(ctx, sourceID, "", &p, fmt.Sprintf("%s.ingest-%d", sourceID, md.Sequence.Stream))
	var ie *InputError
	if errors.As(err, &ie) {
		return s.deadLetter(ctx, msg, sourceID, deadInvalid, ie.Error())
	}
	return err
}

// deadLetter parks a message of ingest.<sourceId>; why is the reason's class, the metric's label.
func (s *Ingest) deadLetter(ctx context.Context, msg jetstream.Msg, sourceID, why, reason string) error {
	dl := &eventsv1.DeadLetter{SourceId: sourceID, Subject: msg.Subject(), Reason: reason, Payload: msg.Data(), ReceivedAt: timestamppb.New(s.now())}
	data, err := proto.Marshal(dl)
	if err != nil {
		return err
	}
	out := bus.NewMsg(ctx, bus.DeadLetterSubject("ingest", sourceID), data, "")
	out.Header.Set(bus.HeaderReason, reason)
	if _, err := s.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	s.metrics.deadLettered(ctx, why)
	return bus.Permanent(errors.New(reason))
}

// spreadLeaders moves the leaders of the EVENTS partitions onto their own nodes (bus.SpreadLeaders),
// trying again each second for a minute while a stream has no leader yet or a step-down fails: on a
// cluster that is starting, the streams were just created. Ingest does it because the leaders bound
// what it can publish; it is a no-op with one partition or one replica.
func (s *Ingest) spreadLeaders(ctx context.Context) {
	if s.cfg.EventsPartitions() <= 1 || s.cfg.Replicas <= 1 {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range 60 {
		leaders, err := bus.SpreadLeaders(ctx, s.js, s.cfg.EventsPartitions())
		if err == nil {
			s.log.Info("EVENTS partition leaders", "leaders", leaders)
			return
		}
		s.log.Debug("spread the EVENTS partition leaders; trying again", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	s.log.Warn("the EVENTS partition leaders could not be spread over the nodes; publishing goes on through the leaders as they are")
}
