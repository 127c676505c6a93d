package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	replayv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/replay/v1"
)

// Replays (docs/replay.md): admin creates a replay in the KV bucket REPLAYS and changes its state;
// the copiers work it. A replay covers the destination's source's files staged up to its creation
// (through_sequence); files staged later reach the destination live.

// WithReplays lets the server create and follow replays in the REPLAYS bucket (and needs WithJetStream
// to find the files a replay covers). Without it the replay methods answer FailedPrecondition.
func WithReplays(r *configstore.Replays) Option { return func(s *Server) { s.replays = r } }

const dayMs = int64(24 * time.Hour / time.Millisecond)

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// ParseDay reads a received day as the API takes it: `YYYY-MM-DD` (UTC) or the Unix milliseconds of
// 00:00 UTC of the day, as in the object keys. field names the field in the error.
func ParseDay(field, v string) (int64, error) {
	switch {
	case v == "":
		return 0, fmt.Errorf("%s: required, a day as YYYY-MM-DD (UTC) or the key's day in Unix milliseconds", field)
	case dateRE.MatchString(v):
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a date: %v", field, v, err)
		}
		return t.UnixMilli(), nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, fmt.Errorf("%s: %q is neither a day as YYYY-MM-DD (UTC) nor the key's day in Unix milliseconds", field, v)
	}
	if ms%dayMs != 0 {
		return 0, fmt.Errorf("%s: %d is not the start of a day: a key's day is a multiple of %d (00:00 UTC), such as %d", field, ms, dayMs, ms-ms%dayMs)
	}
	return ms, nil
}

func (s *Server) replayStore() error {
	if s.replays == nil || s.js == nil {
		return status.Error(codes.FailedPrecondition, "replays are unavailable on this server (no REPLAYS bucket or JetStream)")
	}
	return nil
}

// CreateReplay implements AdminService.
func (s *Server) CreateReplay(ctx context.Context, req *adminv1.CreateReplayRequest) (*adminv1.CreateReplayResponse, error) {
	from, ferr := ParseDay("from", req.GetFrom())
	to, terr := ParseDay("to", req.GetTo())
	if err := errors.Join(ferr, terr); err != nil {
		return nil, invalid("%v", err)
	}
	if from > to {
		return nil, invalid("from: %s is after to (%s): the range is from the first day to the last, both included", req.GetFrom(), req.GetTo())
	}
	d, all, err := s.destinationReplays(ctx, req.GetDestinationId())
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		if r.GetState() == replayv1.ReplayState_REPLAY_STATE_RUNNING {
			return nil, status.Errorf(codes.FailedPrecondition, "destinationId: replay %s of destination %s is running; cancel it or wait for it to end", r.GetId(), d.GetId())
		}
	}
	through, err := bus.LastSequence(ctx, s.js, bus.StreamBatches, bus.StagedSubject(d.GetSourceId()))
	if err != nil {
		return nil, internal(err)
	}
	now := timestamppb.New(s.now())
	rp := &replayv1.Replay{Id: newID(22), DestinationId: d.GetId(), SourceId: d.GetSourceId(), FromDayMs: from, ToDayMs: to,
		Overwrite: req.GetOverwrite(), State: replayv1.ReplayState_REPLAY_STATE_RUNNING, ThroughSequence: through,
		Progress: &replayv1.ReplayProgress{}, CreatedAt: now, UpdatedAt: now}
	if through == 0 { // nothing staged for the source: nothing to do
		rp.State, rp.FinishedAt, rp.Progress.Counted = replayv1.ReplayState_REPLAY_STATE_DONE, now, true
	}
	if _, err := s.replays.Create(ctx, rp); err != nil {
		return nil, internal(err)
	}
	s.log.InfoContext(ctx, "replay created", "replay", rp.GetId(), "destination", d.GetId(), "from", from, "to", to, "overwrite", rp.GetOverwrite(), "through", through)
	return &adminv1.CreateReplayResponse{Data: &adminv1.CreateReplayResponse_Data{Replay: rp}}, nil
}

// replay reads a replay of a destination; NotFound when it is another destination's.
func (s *Server) replay(ctx context.Context, destinationID, id string) (*replayv1.Replay, uint64, error) {
	if err := s.replayStore(); err != nil {
		return nil, 0, err
	}
	if !idRE.MatchString(destinationID) {
		return nil, 0, invalid("destinationId: %q is not a destination ID", destinationID)
	}
	if !idRE.MatchString(id) {
		return nil, 0, invalid("replayId: %q is not a replay ID", id)
	}
	rp, rev, err := s.replays.Get(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) || (err == nil && rp.GetDestinationId() != destinationID) {
		return nil, 0, notFound("replay", id)
	}
	if err != nil {
		return nil, 0, internal(err)
	}
	return rp, rev, nil
}

// destinationReplays is the destination and its replays, oldest first.
func (s *Server) destinationReplays(ctx context.Context, id string) (*configv1.Destination, []*replayv1.Replay, error) {
	if err := s.replayStore(); err != nil {
		return nil, nil, err
	}
	d, err := s.destination(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	all, err := s.replays.List(ctx)
	if err != nil {
		return nil, nil, internal(err)
	}
	return d, slices.DeleteFunc(all, func(r *replayv1.Replay) bool { return r.GetDestinationId() != d.GetId() }), nil
}

// GetReplay implements AdminService.
func (s *Server) GetReplay(ctx context.Context, req *adminv1.GetReplayRequest) (*adminv1.GetReplayResponse, error) {
	rp, _, err := s.replay(ctx, req.GetDestinationId(), req.GetReplayId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetReplayResponse{Data: &adminv1.GetReplayResponse_Data{Replay: rp}}, nil
}

// ListReplays implements AdminService.
func (s *Server) ListReplays(ctx context.Context, req *adminv1.ListReplaysRequest) (*adminv1.ListReplaysResponse, error) {
	_, all, err := s.destinationReplays(ctx, req.GetDestinationId())
	if err != nil {
		return nil, err
	}
	out := []*replayv1.Replay{}
	for _, r := range slices.Backward(all) {
		out = append(out, r)
	}
	return &adminv1.ListReplaysResponse{Data: &adminv1.ListReplaysResponse_Data{Replays: out}}, nil
}

// CancelReplay implements AdminService: the copier working it stops after the file in flight (it sees
// the change at its next write); resume continues from the cursor.
func (s *Server) CancelReplay(ctx context.Context, req *adminv1.CancelReplayRequest) (*adminv1.CancelReplayResponse, error) {
	rp, err := s.changeReplay(ctx, req.GetDestinationId(), req.GetReplayId(), func(rp *replayv1.Replay) error {
		if rp.GetState() != replayv1.ReplayState_REPLAY_STATE_RUNNING {
			return status.Errorf(codes.FailedPrecondition, "replayId: replay %s is %s, not running: nothing to cancel", rp.GetId(), StateName(rp.GetState()))
		}
		rp.State, rp.Owner, rp.LeaseUntil, rp.FinishedAt = replayv1.ReplayState_REPLAY_STATE_CANCELLED, "", nil, timestamppb.New(s.now())
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "replay cancelled", "replay", rp.GetId(), "destination", rp.GetDestinationId(), "cursor", rp.GetCursor())
	return &adminv1.CancelReplayResponse{Data: &adminv1.CancelReplayResponse_Data{Replay: rp}}, nil
}

// ResumeReplay implements AdminService: a cancelled or failed replay runs again from its cursor.
func (s *Server) ResumeReplay(ctx context.Context, req *adminv1.ResumeReplayRequest) (*adminv1.ResumeReplayResponse, error) {
	rp, err := s.changeReplay(ctx, req.GetDestinationId(), req.GetReplayId(), func(rp *replayv1.Replay) error {
		switch rp.GetState() {
		case replayv1.ReplayState_REPLAY_STATE_CANCELLED, replayv1.ReplayState_REPLAY_STATE_FAILED:
		default:
			return status.Errorf(codes.FailedPrecondition, "replayId: replay %s is %s: only a cancelled or failed replay can be resumed", rp.GetId(), StateName(rp.GetState()))
		}
		rp.State, rp.Owner, rp.LeaseUntil, rp.FinishedAt, rp.LastError = replayv1.ReplayState_REPLAY_STATE_RUNNING, "", nil, nil, ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "replay resumed", "replay", rp.GetId(), "destination", rp.GetDestinationId(), "cursor", rp.GetCursor())
	return &adminv1.ResumeReplayResponse{Data: &adminv1.ResumeReplayResponse_Data{Replay: rp}}, nil
}

// changeReplay applies change at the revision read, again when a copier wrote progress meanwhile.
func (s *Server) changeReplay(ctx context.Context, destinationID, id string, change func(*replayv1.Replay) error) (*replayv1.Replay, error) {
	for range casAttempts {
		rp, rev, err := s.replay(ctx, destinationID, id)
		if err != nil {
			return nil, err
		}
		if err := change(rp); err != nil {
			return nil, err
		}
		rp.UpdatedAt = timestamppb.New(s.now())
		_, err = s.replays.Update(ctx, rp, rev)
		if errors.Is(err, configstore.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, internal(err)
		}
		return rp, nil
	}
	return nil, errContended("replayId " + id)
}

// StateName is a replay state as people read it: running, done, cancelled, failed.
func StateName(st replayv1.ReplayState) string {
	switch st {
	case replayv1.ReplayState_REPLAY_STATE_RUNNING:
		return "running"
	case replayv1.ReplayState_REPLAY_STATE_DONE:
		return "done"
	case replayv1.ReplayState_REPLAY_STATE_CANCELLED:
		return "cancelled"
	case replayv1.ReplayState_REPLAY_STATE_FAILED:
		return "failed"
	}
	return "unknown"
}
