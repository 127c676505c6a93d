package copier

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/cursor"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/retention"
)

// The retention (DESIGN.md §3, configstore Settings, owned by the admin service) is how long a staged
// file waits for a destination that fails. The copier decides at the file's deadline, before it asks for
// credentials, so a destination whose role is broken is decided for like any other:
//
//   - while the destination's retention is extended (retention_extended_until is later than now), the
//     file is carried forward: its staged object is copied onto itself (the staging lifecycle counts its
//     age from then) and a fresh lane message goes to batch.carried.<destinationId> (the stream's MaxAge
//     counts from then), whose deadline is the extension's end or one retention, whichever is sooner;
//   - otherwise it is dead-lettered for that destination (deadletter.copier.<sourceId>) with the reason
//     and the destination's last error, counted (s3dest_dead_letters_total{stage="copier",
//     reason="retention"}, and the day's dead-lettered files and events in the status).
//
// Nothing expires before that decision: the streams and the object store keep messages for the
// retention plus bus.RetentionMargin, the staging lifecycle at least as long, and a lane always looks at
// its oldest files first and holds none past its deadline (lane.turn), while a nak's backoff (at most
// 5 minutes) is far inside the margin.

// laneMsg is a lane message decoded: the staged file, and, when it was carried forward, when it was
// first staged and how often it was carried.
type laneMsg struct {
	staged   *batchv1.BatchStaged
	stagedAt time.Time
	deadline time.Time
	carries  int32
	seq      uint64 // the message's stream sequence
}

// decodeLaneMsg reads a batch.staged or batch.carried message and its deadline under the retention.
func decodeLaneMsg(msg jetstream.Msg, ret time.Duration) (laneMsg, error) {
	md, err := msg.Metadata()
	if err != nil {
		return laneMsg{}, fmt.Errorf("message metadata: %w", err)
	}
	var lm laneMsg
	lm.seq = md.Sequence.Stream
	lm.stagedAt, lm.deadline = retention.Deadline(msg.Subject(), msg.Data(), md.Timestamp, ret)
	if strings.HasPrefix(msg.Subject(), bus.CarriedSubject("")) {
		var c batchv1.BatchCarried
		if err := proto.Unmarshal(msg.Data(), &c); err != nil || c.GetStaged() == nil {
			return laneMsg{}, fmt.Errorf("payload: not a BatchCarried: %v", err)
		}
		lm.staged, lm.carries = c.GetStaged(), c.GetCarries()
		return lm, nil
	}
	lm.staged = &batchv1.BatchStaged{}
	if err := proto.Unmarshal(msg.Data(), lm.staged); err != nil {
		return laneMsg{}, fmt.Errorf("payload: not a BatchStaged: %w", err)
	}
	return lm, nil
}

// retentionEnded decides for a file whose deadline came: carried forward while the destination's
// retention is extended, dead-lettered for the destination otherwise. A nil error acknowledges the
// lane message (a fresh one carries the file on); a permanent one terminates it.
func (c *Copier) retentionEnded(ctx context.Context, lm laneMsg, d *configv1.Destination) error {
	now := c.now()
	if until := d.GetRetentionExtendedUntil(); until != nil && now.Before(until.AsTime()) {
		return c.carry(ctx, lm, d, until.AsTime())
	}
	b := lm.staged.GetBatch()
	reason := fmt.Sprintf("retention ended: destination %s did not accept staged file %s (batch %s, %d events, received day %d) within the retention of %s (staged %s, deadline %s); its last error: %s",
		d.GetId(), lm.staged.GetStagingKey(), b.GetBatchId(), b.GetEventCount(), b.GetReceivedDayMs(), c.retention(),
		lm.stagedAt.UTC().Format(time.RFC3339), lm.deadline.UTC().Format(time.RFC3339), c.lastError(ctx, d.GetId(), b.GetReceivedDayMs()))
	return c.deadLetter(ctx, lm.staged, d, reasonRetention, reason)
}

// carry refreshes the staged object and publishes the file again for this destination alone. The
// object is refreshed first: a lane message never outlives the object it points to.
func (c *Copier) carry(ctx context.Context, lm laneMsg, d *configv1.Destination, until time.Time) error {
	now := c.now()
	if err := c.refreshStaged(ctx, lm.staged, now); errors.Is(err, errStagingExpired) {
		return c.deadLetter(ctx, lm.staged, d, reasonStagingGone, fmt.Sprintf("staged file %s is gone from staging: it could not be carried forward for destination %s, whose retention is extended until %s",
			lm.staged.GetStagingKey(), d.GetId(), until.UTC().Format(time.RFC3339)))
	} else if err != nil {
		return err
	}
	next := now.Add(c.retention())
	if until.Before(next) {
		next = until
	}
	out := &batchv1.BatchCarried{Staged: lm.staged, DestinationId: d.GetId(), StagedAt: timestamppb.New(lm.stagedAt),
		Deadline: timestamppb.New(next), Carries: lm.carries + 1}
	// The ID is the carried message's stream sequence: a redelivery of it (a crash before the ack)
	// carries the file once.
	id := fmt.Sprintf("carried.%s.%s.%d", d.GetId(), lm.staged.GetBatch().GetBatchId(), lm.seq)
	if _, err := bus.Publish(ctx, c.js, bus.CarriedSubject(d.GetId()), out, id); err != nil {
		return fmt.Errorf("carry forward: %w", err)
	}
	c.metrics.carriedForward(ctx)
	c.log.InfoContext(ctx, "retention extended: file carried forward", "destination", d.GetId(), "batch", lm.staged.GetBatch().GetBatchId(),
		"extendedUntil", until.UTC(), "nextDeadline", next.UTC(), "carries", out.GetCarries())
	return nil
}

// refreshStaged copies the staged object onto itself with its metadata replaced, which restarts its
// age for the staging bucket's lifecycle rule. errStagingExpired when it is gone.
func (c *Copier) refreshStaged(ctx context.Context, staged *batchv1.BatchStaged, now time.Time) error {
	bucket, key := staged.GetStagingBucket(), staged.GetStagingKey()
	head, err := c.staging.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if code := awsclient.ErrorCode(err); code == "NoSuchKey" || code == "NotFound" || awsclient.HTTPStatus(err) == 404 {
		return errStagingExpired
	}
	if err != nil {
		return fmt.Errorf("refresh staged %s: %w", key, err)
	}
	meta := map[string]string{}
	for k, v := range head.Metadata {
		meta[k] = v
	}
	meta["s3dest-carried-at"] = now.UTC().Format(time.RFC3339)
	in := &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		CopySource:        aws.String((&url.URL{Path: bucket + "/" + key}).EscapedPath()),
		CopySourceIfMatch: head.ETag, // the object read, not one written since
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: meta,
		ContentType:          head.ContentType,
		ServerSideEncryption: head.ServerSideEncryption,
	}
	if _, err := c.staging.CopyObject(ctx, in); err != nil {
		return fmt.Errorf("refresh staged %s: %w", key, err)
	}
	return nil
}

// lastError is what the destination last failed with, for a dead letter's reason: as this copier saw
// it, or else as the day's status says.
func (c *Copier) lastError(ctx context.Context, destinationID string, dayMs int64) string {
	c.mu.Lock()
	last := c.lastErrors[destinationID]
	c.mu.Unlock()
	if last != "" {
		return last
	}
	if day, ok, err := c.cursors.Get(ctx, cursor.Delivered, destinationID, dayMs); err == nil && ok && day.LastError != "" {
		return day.LastError
	}
	return "none recorded (no attempt failed, or the copier restarted since)"
}

// noteFailure keeps the destination's last error as an operator reads it: what failed, the AWS code,
// and the message the customer is shown. It never holds a secret (errors never do).
func (c *Copier) noteFailure(destinationID, what string, err error) {
	text := what + " failed"
	if code := awsclient.ErrorCode(err); code != "" {
		text += " (" + code + ")"
	}
	text += ": " + UserMessage(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErrors[destinationID] = text
}
