package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Handler handles one message. Its error decides the message's fate (see Consume).
type Handler func(ctx context.Context, msg jetstream.Msg) error

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks an error that no retry can fix. The handler is expected to have dead-lettered the
// message (with the reason) before returning it; the bus then terminates the message.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return errors.As(err, new(permanentError)) }

// ConsumerConfig describes a durable pull consumer shared by every copy of a service.
type ConsumerConfig struct {
	Stream  string
	Durable string
	Filter  string
	// AckWait is how long a delivered message may stay unacknowledged before JetStream redelivers it.
	AckWait time.Duration
	// MaxAckPending bounds the messages in flight across every copy of the service.
	MaxAckPending int
	// AckAll makes acknowledging a message acknowledge every earlier one of the consumer too; the
	// consumer then delivers, and redelivers after a crash, strictly in order.
	AckAll bool
	// StartSeq, if not 0, is the first stream sequence the consumer delivers (instead of every message).
	StartSeq uint64
	// InactiveThreshold, if not 0, lets the server delete the consumer after it has had no pull for that long.
	InactiveThreshold time.Duration
	// Metadata is stored with the consumer, for whoever lists consumers to know whose it is.
	Metadata map[string]string
}

// EnsureConsumer creates or updates the durable consumer.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, c ConsumerConfig) (jetstream.Consumer, error) {
	policy := jetstream.AckExplicitPolicy
	if c.AckAll {
		policy = jetstream.AckAllPolicy
	}
	cc := jetstream.ConsumerConfig{
		Durable:           c.Durable,
		FilterSubject:     c.Filter,
		AckPolicy:         policy,
		AckWait:           c.AckWait,
		MaxAckPending:     c.MaxAckPending,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: c.InactiveThreshold,
		Metadata:          c.Metadata,
	}
	if c.StartSeq > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, c.StartSeq
	}
	var cons jetstream.Consumer
	err := AgainOnTimeout(ctx, func() (err error) {
		cons, err = js.CreateOrUpdateConsumer(ctx, c.Stream, cc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", c.Durable, c.Stream, err)
	}
	return cons, nil
}

// ConsumeOptions tune Consume.
type ConsumeOptions struct {
	// Workers is how many messages are handled at once (default 1).
	Workers int
	// DrainTimeout bounds how long in-flight handlers may run after ctx ends (default 30s); then their
	// context is cancelled and their messages are redelivered later.
	DrainTimeout time.Duration
	// AckWait is the consumer's; a handler running longer renews its message every third of it.
	AckWait time.Duration
	// SpanName names the span each message is handled in.
	SpanName string
	Tracer   trace.Tracer
	Log      *slog.Logger
}

// Consume hands each message of cons to h until ctx ends, then stops fetching and waits for the
// handlers in flight. A nil error acknowledges the message (and waits for JetStream to confirm it); a
// Permanent error terminates it; any other error asks for a redelivery after an exponential backoff
// with jitter, so a failing dependency is retried without a hot loop.
func Consume(ctx context.Context, cons jetstream.Consumer, h Handler, o ConsumeOptions) error {
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * o.Workers))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		it.Stop()
		time.AfterFunc(o.DrainTimeout, cancel)
	})
	defer stop()

	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Workers)
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			o.Log.Warn("fetch", "error", err)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			handle(hctx, msg, h, o)
		}()
	}
	wg.Wait()
	return nil
}

func handle(ctx context.Context, msg jetstream.Msg, h Handler, o ConsumeOptions) {
	ctx = ContextFrom(ctx, msg.Headers())
	ctx, span := o.Tracer.Start(ctx, o.SpanName, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", msg.Subject())))
	defer span.End()

	// Renew the message while the handler works, so AckWait can stay short.
	stop := make(chan struct{})
	defer close(stop)
	if o.AckWait > 0 {
		go func() {
			t := time.NewTicker(o.AckWait / 3)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					_ = msg.InProgress()
				}
			}
		}()
	}
	err := h(ctx, msg)
	switch {
	case err == nil:
		if aerr := msg.DoubleAck(ctx); aerr != nil {
			o.Log.WarnContext(ctx, "ack", "subject", msg.Subject(), "error", aerr)
		}
	case IsPermanent(err):
		span.SetStatus(codes.Error, err.Error())
		o.Log.ErrorContext(ctx, "message dropped to the dead letters", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
	default:
		span.SetStatus(codes.Error, err.Error())
		attempt := uint64(1)
		if md, merr := msg.Metadata(); merr == nil {
			attempt = md.NumDelivered
		}
		delay := Backoff(attempt)
		o.Log.WarnContext(ctx, "will retry", "subject", msg.Subject(), "attempt", attempt, "in", delay, "error", err)
		_ = msg.NakWithDelay(delay)
	}
}

// Backoff is the delay before the given delivery attempt: 250ms doubling up to 5 minutes, with full jitter
// over its upper half.
func Backoff(attempt uint64) time.Duration {
	const base, ceiling = 250 * time.Millisecond, 5 * time.Minute
	d := base
	for i := uint64(1); i < attempt && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	return d/2 + rand.N(d/2+1)
}

// Pending is what the consumers of stream that match have not had acknowledged: messages not yet
// delivered plus those delivered and awaiting their ack, summed, as JetStream's consumer info says.
func Pending(ctx context.Context, js jetstream.JetStream, stream string, match func(*jetstream.ConsumerInfo) bool) (int64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("pending of %s: %w", stream, err)
	}
	var n int64
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if match(info) {
			n += int64(info.NumPending) + int64(info.NumAckPending)
		}
	}
	if err := list.Err(); err != nil {
		return 0, fmt.Errorf("pending of %s: %w", stream, err)
	}
	return n, nil
}
