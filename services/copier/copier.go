// Package copier delivers staged files to every enabled destination of their source: it assumes the
// destination's role (our intermediate role first, then the customer's with ExternalId = workspace ID),
// streams the file from staging into {prefix/}segment-logs/{sourceId}/{receivedDayMs}/{file}.gz with ACL
// bucket-owner-full-control (or, for a destination whose format is parquet, converts it on the way into
// {file}.parquet: parquet.go), and announces each delivery on batch.delivered.<destinationId>.
//
// Each destination is a lane of its own (lane.go): its own durable consumer on its source's staged
// files, its own workers, rate limit and failure state. A slow or failing destination therefore only
// ever delays itself, and a message is acknowledged for a destination once that destination has the
// file. A retry skips a file the destination already has (a Redis marker, and If-None-Match as the
// backstop), so nothing is written twice.
package copier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/cursor"
	"github.com/s3dest/s3dest/pkg/failpoint"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/s3put"
)

// ContentType of delivered files: they are gzip files (named .gz), served as such, with no
// Content-Encoding, so every S3 client downloads the compressed bytes unchanged.
const ContentType = "application/gzip"

// deliveredTTL keeps "already delivered" markers past the staging retention.
const deliveredTTL = 8 * 24 * time.Hour

// Copier is the copier service.
type Copier struct {
	cfg    Config
	log    *slog.Logger
	js     jetstream.JetStream
	tracer trace.Tracer
	tp     trace.TracerProvider
	now    func() time.Time

	clients *awsclient.Clients
	staging *s3.Client
	rdb     *redis.Client
	own     awsclient.OwnBuckets // never a destination's bucket
	creds   *credCache
	cursors *cursor.Store
	status  *cursor.Folder // destinations' status: their delivery history folded into cursors
	view    *configstore.View

	metrics *metrics
	// replays are the replays this copier works (replay.go).
	replays *replayWorker

	// lanes is owned by Run: one per destination in the config.
	lanes map[string]*lane

	mu sync.Mutex
	// laneView is a copy of lanes as Run last left them, for the metrics.
	laneView map[string]*lane
	// lastErrors is each destination's last failure as this copier saw it (noteFailure), for the
	// reason of a dead letter.
	lastErrors map[string]string
}

// New validates cfg; it does no I/O.
func New(cfg Config, p *platform.Process) (*Copier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	own, _ := awsclient.ParseOwnBuckets(cfg.StagingBucket, cfg.OwnBuckets) // Validate checked it
	m, err := newMetrics(p.Telemetry.Meter)
	if err != nil {
		return nil, err
	}
	return &Copier{cfg: cfg, own: own, log: p.Log, js: p.JS, tp: p.Telemetry.Tracer, tracer: p.Telemetry.Tracer.Tracer("s3dest/copier"), now: time.Now,
		metrics: m, lastErrors: map[string]string{}}, nil
}

// retention is how long a staged file waits for a failing destination: the admin service's setting, as
// the config store holds it (tests write seconds there; the admin service refuses less than 1h).
func (c *Copier) retention() time.Duration { return c.view.Retention() }

// Name implements service.Service.
func (c *Copier) Name() string { return "copier" }

// Start connects to Redis and AWS, loads the destinations and ensures the consumer.
func (c *Copier) Start(ctx context.Context) error {
	var err error
	if c.clients, err = awsclient.New(ctx, c.cfg.Config, c.tp); err != nil {
		return err
	}
	c.staging = c.clients.S3(c.clients.Base(), "")
	if c.rdb, err = platform.ConnectRedis(ctx, c.cfg.RedisURL); err != nil {
		return err
	}
	if c.creds, err = newCredCache(c.rdb, c.cfg.CredentialsKey, c.clients, c.log); err != nil {
		return err
	}
	c.creds.assumed = c.metrics.assumed
	c.cursors = cursor.New(c.rdb, 35*24*time.Hour)
	c.status = cursor.NewFolder(c.cursors, c.js)
	store, err := configstore.OpenWithStreams(ctx, c.js, c.cfg.Common.StreamConfig(), c.log)
	if err != nil {
		return err
	}
	if c.view, err = store.Watch(context.WithoutCancel(ctx), c.log); err != nil {
		return err
	}
	replays, err := configstore.OpenReplays(ctx, c.js, c.cfg.Common.StreamConfig().Replicas)
	if err != nil {
		return err
	}
	c.replays = &replayWorker{store: replays, owner: newOwnerID(), working: map[string]bool{}}
	c.lanes = map[string]*lane{}
	if err := c.metrics.ObservePending(platform.StageCopier, c.pending); err != nil {
		return err
	}
	if err := c.metrics.observeDeadlines(c.retentionDeadlines); err != nil {
		return err
	}
	return c.metrics.ObserveFailing(c.reportFailing)
}

// watchInterval is how often Run compares its lanes with the destinations in the config.
const watchInterval = time.Second

// Run keeps one lane per destination (started, re-pointed after a settings change, stopped after a
// delete) and works the replays it takes, until ctx ends, then lets every lane and replay finish the
// copies in flight.
func (c *Copier) Run(ctx context.Context) error {
	defer c.rdb.Close()
	replaysDone := make(chan struct{})
	go func() {
		defer close(replaysDone)
		c.runReplays(ctx)
	}()
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		c.reconcile(ctx)
		select {
		case <-ctx.Done():
			<-replaysDone
			for _, l := range c.lanes {
				l.stop()
			}
			for _, l := range c.lanes {
				<-l.done
			}
			return nil
		case <-t.C:
		}
	}
}

// deliver copies one staged file into one destination, once.
func (c *Copier) deliver(ctx context.Context, staged *batchv1.BatchStaged, d *configv1.Destination, workspaceID string, limiter s3put.Limiter) error {
	_, err := c.deliverAs(ctx, staged, d, workspaceID, limiter, deliveryMode{})
	return err
}

// deliveryMode is how deliverAs treats a key that exists and a file it can never deliver: a live
// delivery (the zero mode) skips the key and dead-letters the file; a replay (replay.go) reports both.
type deliveryMode struct {
	// replay returns errStagingExpired, and an error refused for good, to the caller instead of
	// dead-lettering the file; a key found there is left as it is and announced nowhere.
	replay bool
	// overwrite writes a key that exists once more (a second PutObject, without If-None-Match).
	overwrite bool
}

// outcome is what one delivery did to the key.
type outcome int

const (
	outcomeWritten  outcome = iota // the key was new
	outcomeExisted                 // the key was there and left as it was
	outcomeReplaced                // the key was there and written again (deliveryMode.overwrite)
)

// deliverAs copies one staged file into one destination in the given mode.
func (c *Copier) deliverAs(ctx context.Context, staged *batchv1.BatchStaged, d *configv1.Destination, workspaceID string, limiter s3put.Limiter, mode deliveryMode) (outcome, error) {
	b := staged.GetBatch()
	// The bucket is the truth of what was delivered: every file is written with If-None-Match, and one
	// already there counts as delivered. Redis's marker only keeps the day's counters from counting a
	// redelivered file twice; a flushed, stale or foreign Redis can never make a file be skipped.
	marker := "s3dest:delivered:" + d.GetId() + ":" + b.GetBatchId()
	bucket, prefix, err := layout.SplitBucket(d.GetSettings().GetS3Bucket())
	if err != nil {
		return 0, fmt.Errorf("settings.s3Bucket: %w", err)
	}
	format := d.GetSettings().GetFormat()
	key := layout.ObjectKey(prefix, b.GetSourceId(), b.GetReceivedDayMs(), layout.FileName(b.GetFileName(), format))
	legacy := d.GetMetadata().GetId() == layout.AmazonS3MetadataID
	// Admin refuses both when a destination is written; this holds whatever reached the config store.
	if err := c.refuse(d, bucket, legacy); err != nil {
		c.recordFailure(ctx, d, b, "the destination's settings check", failSettings, err)
		return 0, err
	}

	var creds aws.CredentialsProvider
	opts := objectOptions(bucket, key, b)
	if format == layout.FormatParquet {
		opts.ContentType = ParquetContentType // copyOnce converts the file (parquet.go)
	}
	opts.Limiter = limiter
	if legacy {
		// The legacy destination writes as our own principal, relying on the customer's bucket policy.
		creds = c.clients.Base()
		opts.SSE = types.ServerSideEncryptionAes256
	} else if creds, err = c.creds.get(ctx, d, workspaceID); err != nil {
		err = classify(fmt.Errorf("credentials: %w", err), stepAssume, d)
		c.recordFailure(ctx, d, b, "AssumeRole of "+d.GetSettings().GetIamRoleArn(), failureReason(err, stepAssume, d.GetSettings().GetRegion()), err)
		return 0, err
	}

	dst := c.clients.S3(creds, d.GetSettings().GetRegion())
	res, err := c.copyWithRetries(ctx, staged, dst, opts)
	done := outcomeWritten
	if err == nil && res.Existed && mode.overwrite {
		opts.IfNoneMatch = false
		res, err = c.copyWithRetries(ctx, staged, dst, opts)
		done = outcomeReplaced
	}
	if errors.Is(err, errStagingExpired) && mode.replay {
		return 0, err
	}
	if errors.Is(err, errStagingExpired) {
		return 0, c.deadLetter(ctx, staged, d, reasonStagingGone, fmt.Sprintf("staged file %s was gone from staging before destination %s accepted it", staged.GetStagingKey(), d.GetId()))
	}
	if err != nil {
		if creds != c.clients.Base() && (awsclient.IsForbidden(err) || awsclient.IsExpiredCredentials(err)) {
			c.creds.drop(ctx, d, workspaceID)
		}
		err = classify(err, stepPut, d)
		if isPermanent(err) && !mode.replay {
			return 0, c.deadLetter(ctx, staged, d, reasonRefused, fmt.Sprintf("destination %s refused staged file %s for good, no retry can succeed (S3 %s): %s",
				d.GetId(), staged.GetStagingKey(), awsclient.ErrorCode(err), UserMessage(err)))
		}
		c.recordFailure(ctx, d, b, "PutObject into "+bucket, failureReason(err, stepPut, d.GetSettings().GetRegion()), err)
		return 0, err
	}
	if res.Size != b.GetSizeBytes() && !res.Existed && format != layout.FormatParquet {
		return 0, fmt.Errorf("copied %d bytes of a %d-byte file", res.Size, b.GetSizeBytes())
	}
	if res.Existed {
		done = outcomeExisted
		if mode.replay {
			return done, nil
		}
	}
	deliveredAt := c.now()
	delivered := &batchv1.BatchDelivered{Batch: b, DestinationId: d.GetId(), Bucket: bucket, Key: key, DeliveredAt: timestamppb.New(deliveredAt)}
	if _, err := bus.Publish(ctx, c.js, bus.DeliveredSubject(d.GetId()), delivered, "delivered."+d.GetId()+"."+b.GetBatchId()); err != nil {
		return 0, err
	}
	// The marker keeps a redelivered file (a crash between the publish and the ack) from being counted
	// twice in the metrics; the status counts each file once on its own (pkg/cursor's Folder).
	first, err := c.rdb.SetNX(ctx, marker, 1, deliveredTTL).Result()
	if err != nil {
		c.log.WarnContext(ctx, "record the delivery marker", "error", err)
	}
	if err == nil && !first {
		c.log.InfoContext(ctx, "delivered again; counted before", "batch", b.GetBatchId(), "destination", d.GetId(), "existed", res.Existed)
		return done, nil
	}
	c.metrics.delivered(ctx, d.GetId(), b, deliveredAt.Sub(b.GetOldestReceivedAt().AsTime()).Seconds())
	c.foldStatus(ctx, d.GetId())
	c.log.InfoContext(ctx, "delivered", "batch", b.GetBatchId(), "destination", d.GetId(), "bucket", bucket, "key", key, "existed", res.Existed)
	return done, nil
}

// refuse fails a destination that names one of our own buckets, or one of the legacy kind while it is
// off: something only a settings change (or the operator) can fix, so its files wait in staging.
func (c *Copier) refuse(d *configv1.Destination, bucket string, legacy bool) error {
	if err := c.own.Refuse(bucket); err != nil {
		return &failure{fmt.Errorf("destination %s: settings.s3Bucket: %w", d.GetId(), err),
			MsgFollowSetup + fmt.Sprintf(" The bucket %q belongs to this s3dest installation and cannot receive a destination's files: check the Bucket Name setting.", bucket), true, false}
	}
	if legacy && !c.cfg.EnableLegacyS3 {
		return &failure{fmt.Errorf("destination %s: metadataId: the Amazon S3 (legacy) kind is off (--enable-legacy-s3)", d.GetId()),
			"The Amazon S3 destination writes as s3dest's own principal and is off on this installation: move to the AWS S3 destination with an IAM role, or ask the operator to enable it (--enable-legacy-s3).", true, false}
	}
	return nil
}

// objectOptions is the write of a batch file into a customer's bucket: its type, the ACL, a write only if
// the key is new, and the sealed size and SHA-256 (the store checks the checksum), as one streamed
// PutObject whatever the size (files are under 100 MB). Never a multipart upload: the reference's policy
// grants no s3:AbortMultipartUpload, so the parts of an upload cut short by a failure or a SIGKILL
// (Kubernetes' 30 s grace period is shorter than a lane's drain) would stay in the customer's bucket,
// billed, with nobody able to remove them but the customer.
func objectOptions(bucket, key string, b *batchv1.Batch) s3put.Options {
	return s3put.Options{Bucket: bucket, Key: key, ContentType: ContentType, ACL: types.ObjectCannedACLBucketOwnerFullControl,
		IfNoneMatch: true, Size: b.GetSizeBytes(), SHA256: b.GetSha256(), NoMultipart: true}
}

var errStagingExpired = errors.New("the staged file is gone")

// copyWithRetries streams the staged file into the destination, trying again after a throttle, a 5xx,
// a timeout or a broken connection with exponential backoff and full jitter: a streamed PutObject cannot
// be retried inside the SDK, so each attempt reads the staged file again.
func (c *Copier) copyWithRetries(ctx context.Context, staged *batchv1.BatchStaged, dst *s3.Client, opts s3put.Options) (s3put.Result, error) {
	backoff := retry.NewExponentialJitterBackoff(20 * time.Second)
	for attempt := 1; ; attempt++ {
		res, err := c.copyOnce(ctx, staged, dst, opts)
		if err == nil || !s3put.Retryable(err) || attempt == awsclient.MaxAttempts {
			return res, err
		}
		delay, derr := backoff.BackoffDelay(attempt, err)
		if derr != nil {
			return res, err
		}
		c.log.DebugContext(ctx, "copy will retry", "key", opts.Key, "attempt", attempt, "in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, err
		case <-t.C:
		}
	}
}

func (c *Copier) copyOnce(ctx context.Context, staged *batchv1.BatchStaged, dst *s3.Client, opts s3put.Options) (s3put.Result, error) {
	obj, err := c.staging.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(staged.GetStagingBucket()), Key: aws.String(staged.GetStagingKey())})
	if awsclient.ErrorCode(err) == "NoSuchKey" {
		return s3put.Result{}, errStagingExpired
	}
	if err != nil {
		return s3put.Result{}, fmt.Errorf("read staged %s: %w", staged.GetStagingKey(), err)
	}
	defer obj.Body.Close()
	if n := aws.ToInt64(obj.ContentLength); n != opts.Size {
		// Not the file that was sealed: write nothing (the checksum would refuse it anyway).
		return s3put.Result{}, fmt.Errorf("read staged %s: it is %d bytes, the sealed file %d", staged.GetStagingKey(), n, opts.Size)
	}
	if opts.ContentType == ParquetContentType {
		return c.convertAndUpload(ctx, obj.Body, dst, opts)
	}
	return s3put.Upload(ctx, dst, failpoint.Reader("copier.mid-upload", obj.Body), opts)
}

// convertAndUpload converts the staged file (opts.Size and opts.SHA256 are the sealed file's) into a
// temporary Parquet file and writes that with one PutObject of its own length and SHA-256.
func (c *Copier) convertAndUpload(ctx context.Context, staged io.Reader, dst *s3.Client, opts s3put.Options) (s3put.Result, error) {
	pq, err := convertStaged(staged, opts.Size, opts.SHA256)
	if err != nil {
		return s3put.Result{}, fmt.Errorf("convert to Parquet for %s: %w", opts.Key, err)
	}
	defer pq.Close()
	opts.Size, opts.SHA256 = pq.size, pq.sha256
	res, err := s3put.Upload(ctx, dst, failpoint.Reader("copier.mid-upload", pq.f), opts)
	if err == nil && !res.Existed && res.Size != pq.size {
		return res, fmt.Errorf("copied %d bytes of a %d-byte Parquet file", res.Size, pq.size)
	}
	return res, err
}

// recordFailure keeps the destination's last error, as the message a customer can act on: it publishes
// it on batch.failed.<destinationId>, and the admin status API shows it as the day's last error until a
// delivery succeeds. what names the step, reason is the metric's label.
func (c *Copier) recordFailure(ctx context.Context, d *configv1.Destination, b *batchv1.Batch, what, reason string, err error) {
	c.metrics.failed(ctx, d.GetId(), reason)
	c.noteFailure(d.GetId(), what, err)
	failed := &batchv1.DeliveryFailed{Batch: b, DestinationId: d.GetId(), Message: UserMessage(err), FailedAt: timestamppb.New(c.now())}
	if _, perr := bus.Publish(ctx, c.js, bus.FailedSubject(d.GetId()), failed, ""); perr != nil {
		c.log.WarnContext(ctx, "record delivery failure", "destination", d.GetId(), "error", perr)
		return
	}
	c.foldStatus(ctx, d.GetId())
}

// foldStatus brings the destination's status in Redis up to its history in JetStream, so the status API
// shows a delivery or a failure at once. A fold that fails only leaves the cache behind: the next fold
// (here or at a status read) catches up from the same position.
func (c *Copier) foldStatus(ctx context.Context, destinationID string) {
	if err := c.status.CatchUp(ctx, destinationID); err != nil {
		c.log.WarnContext(ctx, "fold the delivery status", "destination", destinationID, "error", err)
	}
}

// deadLetterTTL keeps a dead letter's marker past any redelivery of its lane message.
const deadLetterTTL = 35 * 24 * time.Hour

// deadLetter parks a staged file that will never reach the destination, with the reason, counts it
// (by reason in s3dest_dead_letters_total, and in the day's dead-lettered files and events of the
// destination's status), and terminates its lane message.
func (c *Copier) deadLetter(ctx context.Context, staged *batchv1.BatchStaged, d *configv1.Destination, why, reason string) error {
	data, err := proto.Marshal(staged)
	if err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	b := staged.GetBatch()
	out := bus.NewMsg(ctx, bus.DeadLetterSubject("copier", b.GetSourceId()), data, "copier."+d.GetId()+"."+b.GetBatchId())
	out.Header.Set(bus.HeaderReason, reason)
	out.Header.Set(HeaderDestination, d.GetId())
	if _, err := c.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	counted, err := c.rdb.SetNX(ctx, "s3dest:deadlettered:"+d.GetId()+":"+b.GetBatchId(), 1, deadLetterTTL).Result()
	if err != nil {
		c.log.WarnContext(ctx, "record the dead letter's marker", "error", err)
	}
	if counted || err != nil {
		c.metrics.deadLettered(ctx, why)
	}
	// The day's status counts the file among its dead letters, once (its Nats-Msg-Id, and the fold's
	// marker past the duplicate window); the metric counts it once by the Redis marker above.
	failed := &batchv1.DeliveryFailed{Batch: b, DestinationId: d.GetId(), Message: "A file was dropped: " + reason, FailedAt: timestamppb.New(c.now()), DeadLettered: true}
	if _, err := bus.Publish(ctx, c.js, bus.FailedSubject(d.GetId()), failed, "failed.dead."+d.GetId()+"."+b.GetBatchId()); err != nil {
		// The dead letter is published: a redelivery finds it deduplicated and records this then.
		return fmt.Errorf("dead-letter: %w", err)
	}
	c.foldStatus(ctx, d.GetId())
	c.log.WarnContext(ctx, "file dead-lettered for a destination", "destination", d.GetId(), "batch", b.GetBatchId(), "reason", why, "events", b.GetEventCount())
	return bus.Permanent(errors.New(reason))
}

// HeaderDestination names, on a copier dead letter, the destination that lacks the file.
const HeaderDestination = "S3dest-Destination"
