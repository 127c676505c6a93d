package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/retention"
)

// The admin service owns the retention (DESIGN.md §8: stream and KV settings have one owner): its
// --retention is the one setting. At start it writes it to the config store (Settings), where every
// other service reads it, and applies the streams and the object store with MaxAge = retention +
// bus.RetentionMargin; the other services only create what is missing and report what differs.

// MaxRetention bounds --retention: data waits for a failing destination at most this long.
const MaxRetention = 90 * 24 * time.Hour

// OwnRetention writes the retention to the config store when it differs from the stored one and
// applies the streams. A shorter retention than before shrinks the streams only once bus.RetentionMargin
// has passed since the change: until then the copiers dead-letter the files older than the new
// retention, which the streams must still hold. It returns when the streams should be applied again
// (zero: they are as configured).
func OwnRetention(ctx context.Context, js jetstream.JetStream, store *configstore.Store, sc bus.StreamConfig, now time.Time, log *slog.Logger) (again time.Time, err error) {
	st, err := store.Settings(ctx)
	if err != nil && !errors.Is(err, configstore.ErrNotFound) {
		return time.Time{}, err
	}
	before := st.GetRetention().AsDuration()
	if before != sc.Retention {
		st = &configv1.Settings{Retention: durationpb.New(sc.Retention), UpdatedAt: timestamppb.New(now)}
		if err := store.PutSettings(ctx, st); err != nil {
			return time.Time{}, err
		}
		log.Info("retention set", "retention", sc.Retention, "previous", before, "streamMaxAge", sc.MaxAge())
	}
	apply := sc
	if shrinkAt := st.GetUpdatedAt().AsTime().Add(bus.RetentionMargin); now.Before(shrinkAt) {
		if s, err := js.Stream(ctx, bus.StreamBatches); err == nil {
			if has := s.CachedInfo().Config.MaxAge; has > sc.MaxAge() {
				apply.Retention = has - bus.RetentionMargin
				again = shrinkAt
				log.Info("the streams keep their longer max age until the copiers dead-lettered what the shorter retention ends",
					"maxAge", has, "shrinksTo", sc.MaxAge(), "at", shrinkAt.UTC())
			}
		}
	}
	if err := bus.ApplyStreams(ctx, js, apply); err != nil {
		return time.Time{}, err
	}
	return again, nil
}

// ExtendDestinationRetention implements AdminService: the destination's waiting files are kept at
// least until now + extend_by (carried forward by the copier), or, with end, the extension ends.
func (s *Server) ExtendDestinationRetention(ctx context.Context, req *adminv1.ExtendDestinationRetentionRequest) (*adminv1.ExtendDestinationRetentionResponse, error) {
	by := req.GetExtendBy()
	switch {
	case req.GetEnd() && by != nil:
		return nil, invalid("extendBy and end: give one of them, not both")
	case !req.GetEnd() && by == nil:
		return nil, invalid("extendBy: required, a duration such as \"259200s\" (or end: true to end the extension)")
	case by != nil && (by.CheckValid() != nil || by.AsDuration() <= 0 || by.AsDuration() > retention.MaxExtension):
		return nil, invalid("extendBy: must be more than 0s and at most %s, got %s", retention.MaxExtension, by.AsDuration())
	}
	if !idRE.MatchString(req.GetDestinationId()) {
		return nil, invalid("destinationId: %q is not a destination ID", req.GetDestinationId())
	}
	d, err := s.extendRetention(ctx, req)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "destination retention extended", "destination", d.GetId(), "until", d.GetRetentionExtendedUntil().AsTime().UTC(), "ended", req.GetEnd())
	return &adminv1.ExtendDestinationRetentionResponse{Data: &adminv1.ExtendDestinationRetentionResponse_Data{Destination: d}}, nil
}

// extendRetention stores the extension at the revision it read, again on a concurrent change (another
// admin replica may update the same destination at once).
func (s *Server) extendRetention(ctx context.Context, req *adminv1.ExtendDestinationRetentionRequest) (*configv1.Destination, error) {
	for range casAttempts {
		d, rev, err := s.store.DestinationAt(ctx, req.GetDestinationId())
		if errors.Is(err, configstore.ErrNotFound) {
			return nil, notFound("destination", req.GetDestinationId())
		}
		if err != nil {
			return nil, internal(err)
		}
		now := s.now()
		if req.GetEnd() {
			d.RetentionExtendedUntil = nil
		} else if until := now.Add(req.GetExtendBy().AsDuration()); d.GetRetentionExtendedUntil() == nil || until.After(d.GetRetentionExtendedUntil().AsTime()) {
			d.RetentionExtendedUntil = timestamppb.New(until)
		}
		d.UpdatedAt = timestamppb.New(now)
		_, err = s.store.UpdateDestination(ctx, d, rev)
		if errors.Is(err, configstore.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, internal(err)
		}
		return d, nil
	}
	return nil, errContended("destinationId " + req.GetDestinationId())
}

// retentionStatus is where destination d stands with the retention: the installation's retention, the
// extension, the dead letters summed over days, and its lane's oldest waiting file (when JetStream is
// at hand).
func (s *Server) retentionStatus(ctx context.Context, d *configv1.Destination, days []*adminv1.DayStatus) (*adminv1.RetentionStatus, error) {
	ret := s.view.Retention()
	rs := &adminv1.RetentionStatus{Retention: durationpb.New(ret)}
	if until := d.GetRetentionExtendedUntil(); until != nil && s.now().Before(until.AsTime()) {
		rs.ExtendedUntil = until
	}
	for _, day := range days {
		rs.DeadLetteredFiles += day.GetDeadLetteredFiles()
		rs.DeadLetteredEvents += day.GetDeadLetteredEvents()
	}
	if s.js == nil {
		return rs, nil
	}
	lane, err := retention.LaneOf(ctx, s.js, d.GetId(), d.GetSourceId(), ret)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the destination's waiting files: %v", err)
	}
	rs.WaitingFiles = lane.Waiting
	if !lane.OldestDeadline.IsZero() {
		rs.OldestWaitingStagedAt, rs.OldestWaitingDeadline = timestamppb.New(lane.OldestStagedAt), timestamppb.New(lane.OldestDeadline)
	}
	return rs, nil
}

// lastDelivery is destination id's last delivered file and its lag, read from its last
// batch.delivered.<destinationId> message (nil when there is none, or no JetStream at hand).
func (s *Server) lastDelivery(ctx context.Context, id string) (*adminv1.LastDelivery, error) {
	if s.js == nil {
		return nil, nil
	}
	stream, err := s.js.Stream(ctx, bus.StreamBatches)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the destination's last delivery: %v", err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, bus.DeliveredSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the destination's last delivery: %v", err)
	}
	var m batchv1.BatchDelivered
	if err := proto.Unmarshal(raw.Data, &m); err != nil {
		return nil, internal(fmt.Errorf("decode the last delivery of %s: %w", id, err))
	}
	ld := &adminv1.LastDelivery{DeliveredAt: m.GetDeliveredAt(), Key: m.GetKey()}
	if oldest := m.GetBatch().GetOldestReceivedAt(); oldest != nil && m.GetDeliveredAt() != nil {
		ld.Lag = durationpb.New(m.GetDeliveredAt().AsTime().Sub(oldest.AsTime()))
	}
	return ld, nil
}

// CheckRetention is the rule of --retention.
func CheckRetention(r time.Duration) error {
	if r < bus.MinRetention || r > MaxRetention {
		return fmt.Errorf("retention: must be between %s and %s, got %s", bus.MinRetention, MaxRetention, r)
	}
	return nil
}
