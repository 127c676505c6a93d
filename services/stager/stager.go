// Package stager moves sealed files from the JetStream object store into our staging bucket at
// staging/{sourceId}/{receivedDayMs}/{batchId}.gz, encrypted at rest, verifying on the way that the bytes
// are the ones the batcher sealed. It announces each on batch.staged.<sourceId> and only then removes the
// spooled object and acknowledges the sealed message.
package stager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/failpoint"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/s3put"
)

// Stager is the stager service.
type Stager struct {
	cfg    Config
	log    *slog.Logger
	js     jetstream.JetStream
	tracer trace.Tracer
	tp     trace.TracerProvider

	s3       *s3.Client
	obs      jetstream.ObjectStore
	consumer jetstream.Consumer
	store    *configstore.Store
	metrics  *platform.Metrics
	// lifecycleDays is the staging lifecycle rule last applied (0: none yet). Run owns it after Start.
	lifecycleDays int32
}

// New validates cfg; it does no I/O.
func New(cfg Config, p *platform.Process) (*Stager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := platform.NewMetrics(p.Telemetry.Meter)
	if err != nil {
		return nil, err
	}
	return &Stager{cfg: cfg, log: p.Log, js: p.JS, tp: p.Telemetry.Tracer, tracer: p.Telemetry.Tracer.Tracer("s3dest/stager"), metrics: m}, nil
}

// Name implements service.Service.
func (s *Stager) Name() string { return "stager" }

// Key is where a batch waits in the staging bucket.
func Key(b *batchv1.Batch) string {
	return fmt.Sprintf("staging/%s/%d/%s.gz", b.GetSourceId(), b.GetReceivedDayMs(), b.GetBatchId())
}

// Start checks the staging bucket (creating it if missing) and ensures the consumer.
func (s *Stager) Start(ctx context.Context) error {
	clients, err := awsclient.New(ctx, s.cfg.Config, s.tp)
	if err != nil {
		return err
	}
	s.s3 = clients.S3(clients.Base(), "")
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	if s.cfg.Retention != 0 {
		s.log.Warn("staging-retention (S3DEST_STAGING_RETENTION) is deprecated and ignored: the retention is the admin service's --retention (S3DEST_RETENTION), read from the config store",
			"stagingRetention", s.cfg.Retention)
	}
	if s.store, err = configstore.OpenWithStreams(ctx, s.js, s.cfg.Common.StreamConfig(), s.log); err != nil {
		return err
	}
	sc, err := s.store.StreamConfig(ctx, s.cfg.Common.StreamConfig())
	if err != nil {
		return err
	}
	s.applyRetention(ctx, sc.Retention)
	if err = bus.AgainOnTimeout(ctx, func() (err error) { s.obs, err = s.js.ObjectStore(ctx, bus.ObjectBatches); return err }); err != nil {
		return fmt.Errorf("open object store: %w", err)
	}
	s.consumer, err = bus.EnsureConsumer(ctx, s.js, bus.ConsumerConfig{
		Stream: bus.StreamBatches, Durable: "stager", Filter: bus.AllSealed,
		AckWait: s.cfg.AckWait, MaxAckPending: 64,
	})
	if err != nil {
		return err
	}
	return s.metrics.ObservePending(platform.StageStager, s.pending)
}

// pending is what the stager's consumer has not had acknowledged, for the metrics.
func (s *Stager) pending(ctx context.Context) (int64, bool) {
	n, err := bus.Pending(ctx, s.js, bus.StreamBatches, func(c *jetstream.ConsumerInfo) bool { return c.Name == "stager" })
	return n, err == nil
}

func (s *Stager) ensureBucket(ctx context.Context) error {
	_, err := s.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if err == nil {
		return nil
	}
	if awsclient.HTTPStatus(err) != 404 {
		return fmt.Errorf("staging bucket %s: %w", s.cfg.Bucket, err)
	}
	// Another stager replica may create it between our HEAD and our create: that is success too.
	var owned *types.BucketAlreadyOwnedByYou
	if _, err := s.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.cfg.Bucket)}); err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create staging bucket %s: %w", s.cfg.Bucket, err)
	}
	s.log.Info("created the staging bucket", "bucket", s.cfg.Bucket)
	return nil
}

// LifecycleDays is the staging bucket's expiry for a retention: the retention plus bus.RetentionMargin,
// in whole days rounded up (S3 counts days, from the next midnight UTC after an object's last write), so
// a staged file always outlives the copier's decision at its deadline. The copier refreshes a file it
// carries forward (an extended retention), which restarts this count.
func LifecycleDays(retention time.Duration) int32 {
	return int32((retention + bus.RetentionMargin + 24*time.Hour - 1) / (24 * time.Hour))
}

// applyRetention sets the staging bucket's lifecycle rule from the installation's retention (the admin
// service's setting, never a stager flag, so every stager applies the same rule). A store without
// lifecycle rules (the local S3 of s3dest dev) keeps the files; that is logged, not fatal.
func (s *Stager) applyRetention(ctx context.Context, retention time.Duration) {
	days := LifecycleDays(retention)
	if days == s.lifecycleDays {
		return
	}
	_, err := s.s3.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket: aws.String(s.cfg.Bucket),
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{
			ID:                             aws.String("s3dest-staging-retention"),
			Status:                         types.ExpirationStatusEnabled,
			Filter:                         &types.LifecycleRuleFilter{Prefix: aws.String("staging/")},
			Expiration:                     &types.LifecycleExpiration{Days: aws.Int32(days)},
			AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)},
		}}},
	})
	if err != nil {
		s.log.Warn("staging retention not applied; staged files are kept until removed by hand", "bucket", s.cfg.Bucket, "days", days, "error", awsclient.ErrorCode(err))
		return
	}
	s.lifecycleDays = days
	s.log.Info("staging retention applied", "bucket", s.cfg.Bucket, "days", days, "retention", retention, "margin", bus.RetentionMargin)
}

// followRetention applies a changed retention to the staging bucket until ctx ends.
func (s *Stager) followRetention(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if sc, err := s.store.StreamConfig(ctx, s.cfg.Common.StreamConfig()); err == nil {
			s.applyRetention(ctx, sc.Retention)
		}
	}
}

// Run stages files until ctx ends, then finishes the uploads in flight.
func (s *Stager) Run(ctx context.Context) error {
	go s.followRetention(ctx)
	return bus.Consume(ctx, s.consumer, s.handle, bus.ConsumeOptions{
		Workers: s.cfg.Workers, AckWait: s.cfg.AckWait, SpanName: "stager.stage", Tracer: s.tracer, Log: s.log, DrainTimeout: 2 * time.Minute,
	})
}

func (s *Stager) handle(ctx context.Context, msg jetstream.Msg) error {
	var sealed batchv1.BatchSealed
	if err := proto.Unmarshal(msg.Data(), &sealed); err != nil {
		return bus.Permanent(fmt.Errorf("payload: not a BatchSealed: %w", err))
	}
	if sealed.GetObjectName() == "" {
		// The batcher dropped every event of it as a retry of one already written: nothing to stage,
		// the message only moved the source's cursor.
		return nil
	}
	b := sealed.GetBatch()
	key := Key(b)
	staged := &batchv1.BatchStaged{Batch: b, StagingBucket: s.cfg.Bucket, StagingKey: key}

	obj, err := s.obs.Get(ctx, sealed.GetObjectName())
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		// Removed after an earlier attempt staged it: announce again (deduplicated) if staging has it.
		if _, herr := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)}); herr != nil {
			return fmt.Errorf("batch %s: spooled object %s is gone and staging lacks it: %w", b.GetBatchId(), sealed.GetObjectName(), herr)
		}
		return s.announce(ctx, staged, sealed.GetObjectName())
	}
	if err != nil {
		return fmt.Errorf("open spooled %s: %w", sealed.GetObjectName(), err)
	}
	defer obj.Close()

	// The sealed size and SHA-256 go with the upload: a file of up to one part streams from the object
	// store into one PutObject that the store accepts only if the bytes hash to the sealed SHA-256 (no
	// buffer, no hashing by the SDK); a larger one is a multipart upload with per-part checksums. Either
	// way the bytes are hashed here too and compared with the sealed file before batch.staged.
	sum := sha256.New()
	res, err := s3put.Upload(ctx, s.s3, io.TeeReader(failpoint.Reader("stager.mid-upload", obj), sum), s3put.Options{
		Bucket: s.cfg.Bucket, Key: key, ContentType: "application/gzip", SSE: types.ServerSideEncryptionAes256,
		Size: b.GetSizeBytes(), SHA256: b.GetSha256(),
	})
	if err != nil {
		return fmt.Errorf("stage batch %s: %w", b.GetBatchId(), err)
	}
	if err := verify(b, res.Size, sum); err != nil {
		return fmt.Errorf("stage batch %s: %w", b.GetBatchId(), err)
	}
	failpoint.Hit("stager.after-upload")
	return s.announce(ctx, staged, sealed.GetObjectName())
}

// verify checks that what was staged is what was sealed.
func verify(b *batchv1.Batch, size int64, sum hash.Hash) error {
	if size != b.GetSizeBytes() {
		return fmt.Errorf("staged %d bytes, sealed %d", size, b.GetSizeBytes())
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != b.GetSha256() {
		return fmt.Errorf("staged sha256 %s, sealed %s", got, b.GetSha256())
	}
	return nil
}

func (s *Stager) announce(ctx context.Context, staged *batchv1.BatchStaged, objectName string) error {
	b := staged.GetBatch()
	if _, err := bus.Publish(ctx, s.js, bus.StagedSubject(b.GetSourceId()), staged, "staged."+b.GetBatchId()); err != nil {
		return err
	}
	s.metrics.FilesStaged.Add(ctx, 1, s.metrics.With("source", b.GetSourceId()))
	if err := s.obs.Delete(ctx, objectName); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		// Harmless: the object store's TTL removes it; a redelivery re-announces idempotently.
		s.log.WarnContext(ctx, "remove spooled object", "object", objectName, "error", err)
	}
	s.log.InfoContext(ctx, "staged", "batch", b.GetBatchId(), "key", staged.GetStagingKey(), "bytes", b.GetSizeBytes())
	return nil
}
