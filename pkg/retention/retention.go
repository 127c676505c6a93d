// Package retention says when a staged file's wait for a destination ends, and where a destination's
// lane stands with it. The copier decides by it (deliver, carry forward, or dead-letter) and the admin
// status API reports by it, so both read a file's deadline the same way.
//
// A file waits for a destination from the time of its lane message (batch.staged.<sourceId>, or
// batch.carried.<destinationId> once carried forward) for the installation's retention (configstore
// Settings, owned by the admin service). The streams keep the message, and the staging bucket the file,
// for longer: bus.RetentionMargin more, so the copier always decides before anything expires.
package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
)

// MaxExtension bounds one extension of a destination's retention: the staging bucket and the streams
// hold its files that long at most past the retention.
const MaxExtension = 90 * 24 * time.Hour

// Deadline is when the wait of the file of a lane message ends, and when it was staged (first announced
// on batch.staged; carrying forward keeps that time). msgTime is the message's time in the stream.
func Deadline(subject string, data []byte, msgTime time.Time, retention time.Duration) (stagedAt, deadline time.Time) {
	deadline = msgTime.Add(retention)
	if !strings.HasPrefix(subject, bus.CarriedSubject("")) {
		return msgTime, deadline
	}
	var c batchv1.BatchCarried
	if err := proto.Unmarshal(data, &c); err != nil {
		return msgTime, deadline
	}
	if d := c.GetDeadline(); d != nil && d.AsTime().Before(deadline) {
		deadline = d.AsTime()
	}
	stagedAt = msgTime
	if s := c.GetStagedAt(); s != nil {
		stagedAt = s.AsTime()
	}
	return stagedAt, deadline
}

// Lane is where a destination's lane stands: how many files it has not received, and its oldest one.
type Lane struct {
	Waiting int64
	// OldestStagedAt and OldestDeadline are zero when nothing waits.
	OldestStagedAt time.Time
	OldestDeadline time.Time
}

// LaneOf reads the destination's lane from JetStream: its consumer's pending messages, and the first
// message after its acknowledgement floor, which is the oldest the destination has not received (a
// lane's messages are in stream order, and stream order is time order). A destination without a lane
// yet has nothing waiting.
func LaneOf(ctx context.Context, js jetstream.JetStream, destinationID, sourceID string, retention time.Duration) (Lane, error) {
	cons, err := js.Consumer(ctx, bus.StreamBatches, bus.CopierConsumer(destinationID))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return Lane{}, nil
	}
	if err != nil {
		return Lane{}, fmt.Errorf("lane of destination %s: %w", destinationID, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return Lane{}, fmt.Errorf("lane of destination %s: %w", destinationID, err)
	}
	lane := Lane{Waiting: int64(info.NumPending) + int64(info.NumAckPending)}
	if lane.Waiting == 0 {
		return lane, nil
	}
	stream, err := js.Stream(ctx, bus.StreamBatches)
	if err != nil {
		return Lane{}, fmt.Errorf("lane of destination %s: %w", destinationID, err)
	}
	var oldest *jetstream.RawStreamMsg
	for _, subject := range []string{bus.StagedSubject(sourceID), bus.CarriedSubject(destinationID)} {
		m, err := stream.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return Lane{}, fmt.Errorf("oldest waiting file of destination %s: %w", destinationID, err)
		}
		if oldest == nil || m.Sequence < oldest.Sequence {
			oldest = m
		}
	}
	if oldest != nil {
		lane.OldestStagedAt, lane.OldestDeadline = Deadline(oldest.Subject, oldest.Data, oldest.Time, retention)
	}
	return lane, nil
}
