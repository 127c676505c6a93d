package copier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	replayv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/replay/v1"
	"github.com/s3dest/s3dest/pkg/s3put"
)

// Replays (docs/replay.md). A replay is an entry of the KV bucket REPLAYS that the admin service
// creates: a destination, a range of received days, overwrite or not, and the BATCHES sequence of the
// source's last batch.staged message then (through_sequence). Every copier looks at the bucket every
// replayLook; one that finds a running replay whose lease is free takes it by compare-and-set (owner,
// lease_until) and works it:
//
//   - it reads its source's batch.staged messages one by one from the stream, after the cursor and up to
//     through_sequence (a direct get of the next message of the subject: no consumer to clean up), and
//     delivers each file of a day in the range through deliverAs, If-None-Match first, so a key that
//     exists is skipped, or, with overwrite, written once more;
//   - after each file it writes the cursor, the progress and a new lease with a compare-and-set on the
//     revision it last wrote. A cancel (admin), or a successor that took over an expired lease, changed
//     the revision: the write fails and this copier stops after the file in flight. A crash leaves the
//     cursor at the last file done; the next owner redoes at most the file in flight, which If-None-Match
//     then skips (overwrite writes it again: the same bytes under the same key). No key is written twice
//     with different bytes, none is missed.
//
// Rate: a replay writes through its destination's lane limiter (the lane's Rate and Burst, shared with
// live delivery) and first through a bucket of its own at 1/replayShare of that rate with a burst of one,
// one file at a time. Live delivery therefore always has at least (1 - 1/replayShare) of the destination's
// write rate, and a replay never more than its share, whatever the backlog on either side.

// replayShare: a replay uses at most 1/replayShare of its destination's write rate.
const replayShare = 2

// replayLook is how often a copier looks for replays to take.
const replayLook = time.Second

// replayFailDelay bounds the wait before a replay retries a file that failed.
const replayFailDelay = 30 * time.Second

// replayWorker is a copier's share of the replays: which ones it works now.
type replayWorker struct {
	store *configstore.Replays
	owner string // this copier, as a replay's owner

	mu      sync.Mutex
	working map[string]bool
	wg      sync.WaitGroup
}

// runReplays takes free replays until ctx ends, then waits for the ones it works to stop (each after
// its file in flight). A replay it works stays leased to it until the lease ends: a successor takes it
// over then.
func (c *Copier) runReplays(ctx context.Context) {
	defer c.replays.wg.Wait()
	t := time.NewTicker(replayLook)
	defer t.Stop()
	for {
		c.takeReplays(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// takeReplays starts work on each running replay nobody holds.
func (c *Copier) takeReplays(ctx context.Context) {
	all, err := c.replays.store.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.WarnContext(ctx, "list replays", "error", err)
		}
		return
	}
	for _, rp := range all {
		if rp.GetState() != replayv1.ReplayState_REPLAY_STATE_RUNNING || c.replays.isWorking(rp.GetId()) {
			continue
		}
		if rp.GetOwner() != "" && c.now().Before(rp.GetLeaseUntil().AsTime()) {
			continue
		}
		w, err := c.claimReplay(ctx, rp.GetId())
		if err != nil {
			if !errors.Is(err, configstore.ErrConflict) && ctx.Err() == nil {
				c.log.WarnContext(ctx, "take replay", "replay", rp.GetId(), "error", err)
			}
			continue
		}
		if w == nil {
			continue
		}
		c.replays.wg.Add(1)
		go func() {
			defer c.replays.wg.Done()
			defer c.replays.done(w.rp.GetId())
			w.run(ctx)
		}()
	}
}

func (r *replayWorker) isWorking(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.working[id]
}

func (r *replayWorker) done(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.working, id)
}

// claimReplay takes the replay's lease by compare-and-set; nil if it is no longer free.
func (c *Copier) claimReplay(ctx context.Context, id string) (*replayRun, error) {
	rp, rev, err := c.replays.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	now := c.now()
	if rp.GetState() != replayv1.ReplayState_REPLAY_STATE_RUNNING || (rp.GetOwner() != "" && now.Before(rp.GetLeaseUntil().AsTime())) {
		return nil, nil
	}
	previous := rp.GetOwner()
	rp.Owner = c.replays.owner
	rp.LeaseUntil = timestamppb.New(now.Add(c.cfg.ReplayLease))
	rp.UpdatedAt = timestamppb.New(now)
	if rp.GetStartedAt() == nil {
		rp.StartedAt = timestamppb.New(now)
	}
	if rp.Progress == nil {
		rp.Progress = &replayv1.ReplayProgress{}
	}
	if rev, err = c.replays.store.Update(ctx, rp, rev); err != nil {
		return nil, err
	}
	c.replays.mu.Lock()
	c.replays.working[id] = true
	c.replays.mu.Unlock()
	log := c.log.With("replay", id, "destination", rp.GetDestinationId())
	log.InfoContext(ctx, "replay taken", "previousOwner", previous, "cursor", rp.GetCursor(), "through", rp.GetThroughSequence())
	return &replayRun{c: c, spec: proto.Clone(rp).(*replayv1.Replay), rp: rp, rev: rev, log: log,
		limiter: rate.NewLimiter(rate.Limit(float64(c.cfg.Rate)/replayShare), 1)}, nil
}

// replayRun is one copier's work on one replay. Its goroutine owns rp and rev; mu serialises their
// writes with the lease renewal.
type replayRun struct {
	c   *Copier
	log *slog.Logger
	// spec is the replay as taken, for the fields that never change (destination, source, days,
	// overwrite, through_sequence).
	spec    *replayv1.Replay
	limiter *rate.Limiter // the replay's own share, before the lane's limiter

	mu  sync.Mutex
	rp  *replayv1.Replay
	rev uint64
	// saved is when rp was last written (the lease renewal writes when nothing else did).
	saved time.Time
}

// errLost: the replay changed under us (cancelled, or taken over): stop without writing.
var errLost = errors.New("the replay changed: cancelled, or another copier took it over")

// save writes rp with a fresh lease at the revision last written; errLost if it moved since.
func (w *replayRun) save(ctx context.Context, change func(rp *replayv1.Replay)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	next := proto.Clone(w.rp).(*replayv1.Replay)
	change(next)
	now := w.c.now()
	next.UpdatedAt = timestamppb.New(now)
	if next.GetState() == replayv1.ReplayState_REPLAY_STATE_RUNNING {
		next.LeaseUntil = timestamppb.New(now.Add(w.c.cfg.ReplayLease))
	} else {
		next.Owner, next.LeaseUntil = "", nil
		next.FinishedAt = timestamppb.New(now)
	}
	rev, err := w.c.replays.store.Update(ctx, next, w.rev)
	if errors.Is(err, configstore.ErrConflict) {
		return errLost
	}
	if err != nil {
		return err
	}
	w.rp, w.rev, w.saved = next, rev, now
	return nil
}

// renew keeps the lease while a file takes long (a wait on the rate, a retry): every third of the lease
// without a save, it saves. A failure to renew ends the work (cancel).
func (w *replayRun) renew(ctx context.Context, cancel context.CancelFunc) {
	every := w.c.cfg.ReplayLease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		due := w.c.now().Sub(w.saved) >= every
		w.mu.Unlock()
		if !due {
			continue
		}
		if err := w.save(ctx, func(*replayv1.Replay) {}); err != nil {
			if ctx.Err() == nil {
				w.log.WarnContext(ctx, "replay lease not renewed: stopping", "error", err)
			}
			cancel()
			return
		}
	}
}

// release gives the lease up when this copier stops (a SIGTERM, a rolling restart), so that another
// copier takes the replay over at its next look rather than after the lease.
func (w *replayRun) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	next := proto.Clone(w.rp).(*replayv1.Replay)
	next.Owner, next.LeaseUntil, next.UpdatedAt = "", nil, timestamppb.New(w.c.now())
	if _, err := w.c.replays.store.Update(ctx, next, w.rev); err != nil {
		w.log.Info("replay paused: this copier is stopping; another takes it over when the lease ends", "error", err)
		return
	}
	w.log.Info("replay paused: this copier is stopping; the lease is released for another to take it at once", "cursor", next.GetCursor())
}

// run works the replay until it is done, cancelled, taken over, or ctx ends.
func (w *replayRun) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	w.mu.Lock()
	w.saved = w.c.now()
	w.mu.Unlock()
	go w.renew(ctx, cancel)
	err := w.work(ctx)
	switch {
	case err == nil:
	case errors.Is(err, errLost):
		w.log.InfoContext(ctx, "replay stopped: it was cancelled or taken over")
	case parent.Err() != nil:
		w.release()
	default:
		w.log.WarnContext(ctx, "replay stopped", "error", err)
	}
}

func (w *replayRun) work(ctx context.Context) error {
	c := w.c
	stream, err := c.js.Stream(ctx, bus.StreamBatches)
	if err != nil {
		return fmt.Errorf("stream %s: %w", bus.StreamBatches, err)
	}
	w.mu.Lock()
	counted := w.rp.GetProgress().GetCounted()
	w.mu.Unlock()
	if !counted {
		files, bytes, err := w.count(ctx, stream)
		if err != nil {
			return err
		}
		if err := w.save(ctx, func(rp *replayv1.Replay) {
			rp.Progress.FilesTotal, rp.Progress.BytesTotal, rp.Progress.Counted = files, bytes, true
		}); err != nil {
			return err
		}
	}
	for {
		seq, staged, err := w.next(ctx, stream, w.cursor())
		if err != nil {
			return err
		}
		if staged == nil { // past through_sequence: done
			err := w.save(ctx, func(rp *replayv1.Replay) {
				rp.State = replayv1.ReplayState_REPLAY_STATE_DONE
				rp.Cursor = rp.GetThroughSequence()
			})
			if err == nil {
				w.mu.Lock()
				p := w.rp.GetProgress()
				w.mu.Unlock()
				w.log.InfoContext(ctx, "replay done", "written", p.GetFilesWritten(), "skipped", p.GetFilesSkipped(), "replaced", p.GetFilesReplaced(), "expired", p.GetFilesExpired())
			}
			return err
		}
		if day := staged.GetBatch().GetReceivedDayMs(); day < w.spec.GetFromDayMs() || day > w.spec.GetToDayMs() {
			w.mu.Lock()
			w.rp.Cursor = seq // written with the next save
			w.mu.Unlock()
			continue
		}
		if err := w.replayFile(ctx, seq, staged); err != nil {
			return err
		}
	}
}

// cursor is the sequence up to which the replay is done.
func (w *replayRun) cursor() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rp.GetCursor()
}

// count is the files and bytes of the replay's range after its cursor.
func (w *replayRun) count(ctx context.Context, stream jetstream.Stream) (files, bytes int64, err error) {
	for seq := w.cursor(); ; {
		next, staged, err := w.next(ctx, stream, seq)
		if err != nil || staged == nil {
			return files, bytes, err
		}
		seq = next
		if day := staged.GetBatch().GetReceivedDayMs(); day >= w.spec.GetFromDayMs() && day <= w.spec.GetToDayMs() {
			files++
			bytes += staged.GetBatch().GetSizeBytes()
		}
	}
}

// next is the first batch.staged message of the replay's source after seq and up to through_sequence;
// a nil file when there is none. A message that is not a BatchStaged is skipped (the live lane
// dead-letters it).
func (w *replayRun) next(ctx context.Context, stream jetstream.Stream, after uint64) (uint64, *batchv1.BatchStaged, error) {
	for seq := after + 1; seq <= w.spec.GetThroughSequence(); {
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(bus.StagedSubject(w.spec.GetSourceId())))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil, nil
		}
		if err != nil {
			return 0, nil, fmt.Errorf("read the staged files of source %s from sequence %d: %w", w.spec.GetSourceId(), seq, err)
		}
		if msg.Sequence > w.spec.GetThroughSequence() {
			return 0, nil, nil
		}
		staged := &batchv1.BatchStaged{}
		if err := proto.Unmarshal(msg.Data, staged); err != nil || staged.GetBatch() == nil {
			seq = msg.Sequence + 1
			continue
		}
		return msg.Sequence, staged, nil
	}
	return 0, nil, nil
}

// replayFile delivers one file of the replay and records it, trying again after a failure until it
// succeeds or the replay stops.
func (w *replayRun) replayFile(ctx context.Context, seq uint64, staged *batchv1.BatchStaged) error {
	c := w.c
	for attempt := 1; ; attempt++ {
		d, ok := c.view.Destination(w.spec.GetDestinationId())
		if !ok || d.GetSourceId() != w.spec.GetSourceId() {
			why := fmt.Sprintf("destination %s was deleted", w.spec.GetDestinationId())
			if ok {
				why = fmt.Sprintf("destination %s now receives source %s, not %s", d.GetId(), d.GetSourceId(), w.spec.GetSourceId())
			}
			return w.save(ctx, func(rp *replayv1.Replay) { rp.State, rp.LastError = replayv1.ReplayState_REPLAY_STATE_FAILED, why })
		}
		var (
			done outcome
			err  error
		)
		if ws := c.view.Workspace(); ws == nil {
			err = errors.New("no workspace configured yet")
		} else if !d.GetEnabled() {
			err = fmt.Errorf("destination %s is disabled: the replay waits until it is enabled", d.GetId())
		} else {
			done, err = c.deliverAs(ctx, staged, d, ws.GetId(), replayLimiter{own: w.limiter, lane: c.laneLimiter(d.GetId())},
				deliveryMode{replay: true, overwrite: w.spec.GetOverwrite()})
		}
		size := staged.GetBatch().GetSizeBytes()
		switch {
		case err == nil || errors.Is(err, errStagingExpired):
			expired := err != nil
			return w.save(ctx, func(rp *replayv1.Replay) {
				rp.Cursor = seq
				p := rp.GetProgress()
				p.BytesDone += size
				switch {
				case expired:
					p.FilesExpired++
				case done == outcomeExisted:
					p.FilesSkipped++
				case done == outcomeReplaced:
					p.FilesReplaced++
				default:
					p.FilesWritten++
				}
			})
		case ctx.Err() != nil:
			return ctx.Err()
		}
		w.log.WarnContext(ctx, "replay: a file failed; trying again", "batch", staged.GetBatch().GetBatchId(), "attempt", attempt, "error", err)
		// The customer's message where there is one (a failing role or bucket), else the error itself
		// (a disabled destination, a throttle): errors never hold a secret.
		why := err.Error()
		if f := (*failure)(nil); errors.As(err, &f) {
			why = UserMessage(err)
		}
		if serr := w.save(ctx, func(rp *replayv1.Replay) { rp.LastError = why }); serr != nil {
			return serr
		}
		wait := min(c.cfg.FailingRetry, replayFailDelay, time.Duration(attempt)*time.Second)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// laneLimiter is the write limiter of the destination's lane, or nil before its lane runs.
func (c *Copier) laneLimiter(destinationID string) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.laneView[destinationID]; ok {
		return l.limiter
	}
	return nil
}

// replayLimiter paces a replay's writes: its own share first, then the lane's limiter that live
// delivery waits on too.
type replayLimiter struct {
	own  *rate.Limiter
	lane *rate.Limiter
}

var _ s3put.Limiter = replayLimiter{}

// Wait implements s3put.Limiter.
func (l replayLimiter) Wait(ctx context.Context) error {
	if err := l.own.Wait(ctx); err != nil {
		return err
	}
	if l.lane == nil {
		return nil
	}
	return l.lane.Wait(ctx)
}

// newOwnerID names this copier process as a replay's owner: unique across restarts and replicas.
func newOwnerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("copier@%s/%d/%x", host, os.Getpid(), rand.Uint32())
}
