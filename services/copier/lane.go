package copier

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
)

// maxPendingPerDestination bounds the files of one destination in flight or waiting for a retry across
// every copier; more stay in the stream (and in staging) until those are done.
const maxPendingPerDestination = 1000

// lane is one destination's queue: a durable consumer of its source's staged files (shared by every
// copier), its own workers, rate limit and failure state. Lanes share nothing but the process, so a
// destination that is slow, throttled or failing only ever delays itself.
//
// Run owns the lane's fields except mu's; handlers only read id and use limiter, mu and its fields.
type lane struct {
	id       string
	sourceID string
	settings *configv1.DestinationSettings // as last seen by Run, to notice changes
	limiter  *rate.Limiter
	cancel   context.CancelFunc
	stopping <-chan struct{} // closed when the lane is told to stop: waits end, copies in flight finish
	done     chan struct{}

	mu sync.Mutex
	// retryAt is zero while the destination works. While it fails (isFailing), no attempt starts before
	// retryAt, and the one that starts then pushes it out again: one probe per Config.FailingRetry.
	retryAt time.Time
	// wake is closed (and replaced) to end every wait early: a success or a settings change.
	wake chan struct{}
}

// reconcile makes the lanes match the destinations: a lane for each, restarted if its source changed or
// it stopped; a settings change drops the cached credentials and ends a failing lane's wait at once.
func (c *Copier) reconcile(ctx context.Context) {
	seen := map[string]bool{}
	for _, d := range c.view.Destinations() {
		seen[d.GetId()] = true
		l, ok := c.lanes[d.GetId()]
		if ok && (l.sourceID != d.GetSourceId() || isClosed(l.done)) {
			l.stop()
			<-l.done
			delete(c.lanes, d.GetId())
			ok = false
			if l.sourceID != d.GetSourceId() { // the consumer filters on the old source: start over
				if err := c.js.DeleteConsumer(ctx, bus.StreamBatches, bus.CopierConsumer(d.GetId())); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
					c.log.WarnContext(ctx, "delete the lane of a destination moved to another source", "destination", d.GetId(), "error", err)
				}
			}
		}
		if !ok {
			nl, err := c.startLane(ctx, d)
			if err != nil {
				c.log.WarnContext(ctx, "start destination lane", "destination", d.GetId(), "error", err)
				continue
			}
			c.lanes[d.GetId()] = nl
			continue
		}
		if !proto.Equal(l.settings, d.GetSettings()) {
			if ws := c.view.Workspace(); ws != nil {
				c.creds.drop(ctx, &configv1.Destination{Id: d.GetId(), Settings: l.settings}, ws.GetId())
			}
			l.settings = d.GetSettings()
			l.resume()
			c.log.InfoContext(ctx, "destination settings changed: cached credentials dropped, retrying now", "destination", d.GetId())
		}
	}
	defer func() {
		c.mu.Lock()
		c.laneView = maps.Clone(c.lanes)
		c.mu.Unlock()
	}()
	for id, l := range c.lanes {
		if seen[id] {
			continue
		}
		delete(c.lanes, id)
		go func() {
			l.stop()
			<-l.done
			if err := c.js.DeleteConsumer(context.WithoutCancel(ctx), bus.StreamBatches, bus.CopierConsumer(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				c.log.Warn("delete the lane of a deleted destination", "destination", id, "error", err)
			}
		}()
	}
}

// startLane ensures the destination's consumer and starts its workers. A new consumer starts at the
// destination's creation: a destination receives the files staged since it exists, not the history,
// unless it was created with settings.backfill, which starts it one retention earlier. It
// reads its source's batch.staged and its own batch.carried (files carried forward past the retention).
func (c *Copier) startLane(ctx context.Context, d *configv1.Destination) (*lane, error) {
	name := bus.CopierConsumer(d.GetId())
	filters := []string{bus.StagedSubject(d.GetSourceId()), bus.CarriedSubject(d.GetId())}
	cons, err := c.js.Consumer(ctx, bus.StreamBatches, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		start := c.now()
		if d.GetCreatedAt() != nil {
			start = d.GetCreatedAt().AsTime()
		}
		if d.GetSettings().GetBackfill() {
			// Backfill: every file staged within one retention before the creation, as the stream keeps
			// them (not the margin beyond, whose files would reach their deadline at once).
			start = start.Add(-c.retention())
		}
		cons, err = c.js.CreateConsumer(ctx, bus.StreamBatches, jetstream.ConsumerConfig{
			Durable:        name,
			Description:    "copier lane of destination " + d.GetId(),
			FilterSubjects: filters,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        c.cfg.AckWait,
			MaxAckPending:  maxPendingPerDestination,
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
			OptStartTime:   &start,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) { // another copier was first
			cons, err = c.js.Consumer(ctx, bus.StreamBatches, name)
		}
	} else if err == nil && !slices.Equal(cons.CachedInfo().Config.FilterSubjects, filters) {
		// A lane made before files could be carried forward filters on batch.staged alone.
		cfg := cons.CachedInfo().Config
		cfg.FilterSubject, cfg.FilterSubjects = "", filters
		cons, err = c.js.UpdateConsumer(ctx, bus.StreamBatches, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &lane{
		id: d.GetId(), sourceID: d.GetSourceId(), settings: d.GetSettings(),
		limiter: rate.NewLimiter(rate.Limit(c.cfg.Rate), c.cfg.Burst),
		cancel:  cancel, stopping: lctx.Done(), done: make(chan struct{}), wake: make(chan struct{}),
	}
	log := c.log.With("destination", d.GetId())
	go func() {
		defer close(l.done)
		if err := bus.Consume(lctx, cons, c.laneHandler(l), bus.ConsumeOptions{
			Workers: c.cfg.Workers, AckWait: c.cfg.AckWait, SpanName: "copier.copy", Tracer: c.tracer, Log: log, DrainTimeout: 2 * time.Minute,
		}); err != nil {
			log.Warn("destination lane stopped", "error", err)
		}
	}()
	return l, nil
}

// laneHandler delivers one staged file into the lane's destination, as the destination is configured
// at each attempt: the settings are read again after every wait, so the attempt that a settings change
// wakes uses the new role, bucket and region, never the ones seen before the wait. A disabled destination
// acknowledges without receiving (it receives nothing while disabled).
//
// While the destination is failing, the handler keeps its file and tries again on the lane's slow
// schedule instead of asking JetStream for a redelivery: a nak's backoff grows to minutes, and a file
// parked there would miss the end of the wait (a fix) by that much. Files held here are renewed by the
// bus (AckWait) and released on stop, and a success or a settings change wakes them at once.
//
// Before every attempt, and before asking for credentials, the file's deadline is checked (retention.go):
// a file whose retention ended is carried forward or dead-lettered, whatever the destination's state, and
// a file held while its destination fails is held no longer than its deadline.
func (c *Copier) laneHandler(l *lane) bus.Handler {
	return func(ctx context.Context, msg jetstream.Msg) error {
		lm, err := decodeLaneMsg(msg, c.retention())
		if err != nil {
			return c.deadLetterPayload(ctx, msg, l.id, err)
		}
		staged := lm.staged
		current := func() (*configv1.Destination, bool) {
			d, ok := c.view.Destination(l.id)
			return d, ok && d.GetEnabled() && d.GetSourceId() == staged.GetBatch().GetSourceId()
		}
		for {
			d, ok := current()
			if !ok {
				return nil
			}
			if !c.now().Before(lm.deadline) {
				return c.retentionEnded(ctx, lm, d)
			}
			if err := l.turn(ctx, c.now, c.cfg.FailingRetry, lm.deadline); err != nil {
				return err
			}
			d, ok = current() // again: the wait may have ended because the settings changed
			if !ok {
				return nil
			}
			if !c.now().Before(lm.deadline) {
				return c.retentionEnded(ctx, lm, d)
			}
			ws := c.view.Workspace()
			if ws == nil {
				return errors.New("no workspace configured yet")
			}
			err := c.deliver(ctx, staged, d, ws.GetId(), l.limiter)
			switch {
			case err == nil:
				l.resume()
				return nil
			case isFailing(err):
				c.log.WarnContext(ctx, "destination failing; its files wait in staging", "destination", d.GetId(),
					"batch", staged.GetBatch().GetBatchId(), "retry in", c.cfg.FailingRetry, "deadline", lm.deadline.UTC(), "error", err)
				l.failed(c.now().Add(c.cfg.FailingRetry))
				continue
			}
			return fmt.Errorf("destination %s: %w", d.GetId(), err)
		}
	}
}

// deadLetterPayload parks a lane message that is not one: it can never be delivered.
func (c *Copier) deadLetterPayload(ctx context.Context, msg jetstream.Msg, destinationID string, cause error) error {
	out := bus.NewMsg(ctx, bus.DeadLetterSubject("copier", bus.LastToken(msg.Subject())), msg.Data(), "")
	reason := fmt.Sprintf("lane message on %s for destination %s: %v", msg.Subject(), destinationID, cause)
	out.Header.Set(bus.HeaderReason, reason)
	out.Header.Set(HeaderDestination, destinationID)
	if _, err := c.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	c.metrics.deadLettered(ctx, reasonPayload)
	return bus.Permanent(errors.New(reason))
}

// turn returns when an attempt may start: at once while the destination works; while it fails, when
// retryAt comes (and then only for one attempt), or when a success or settings change ends the wait, or
// when the file's deadline comes (the caller then decides for it instead of attempting).
func (l *lane) turn(ctx context.Context, now func() time.Time, every time.Duration, deadline time.Time) error {
	for {
		l.mu.Lock()
		at, wake := l.retryAt, l.wake
		if at.IsZero() {
			l.mu.Unlock()
			return nil
		}
		t := now()
		if !t.Before(deadline) {
			l.mu.Unlock()
			return nil
		}
		if !t.Before(at) {
			l.retryAt = t.Add(every) // this attempt is the probe; the others keep waiting
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		next := at
		if deadline.Before(next) {
			next = deadline
		}
		timer := time.NewTimer(next.Sub(t))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-l.stopping:
			timer.Stop()
			return errors.New("stopping: the file waits for the next attempt")
		case <-wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// failed puts the lane on the slow schedule until at.
func (l *lane) failed(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retryAt = at
}

// resume takes the lane off the slow schedule and wakes its waiting attempts.
func (l *lane) resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retryAt.IsZero() {
		return
	}
	l.retryAt = time.Time{}
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *lane) stop() { l.cancel() }

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
