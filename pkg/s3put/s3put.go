// Package s3put streams an object into S3 with bounded memory. An object whose length and SHA-256 are
// known and that fits in one part goes straight from the reader into one PutObject, with that SHA-256
// as its checksum (nothing buffered, the bytes hashed by nobody but the store); otherwise a small object
// is one buffered PutObject and a large one a multipart upload of PartSize parts, up to Concurrency of
// them in flight while the next is read (Concurrency buffers). With NoMultipart, an object of any size
// up to 5 GiB whose length and SHA-256 are known is one streamed PutObject, so nothing partial is ever
// left in the bucket. Every request carries a SHA-256 checksum
// the store verifies (x-amz-checksum-sha256, a signed header) and is signed UNSIGNED-PAYLOAD, so the
// store hashes the body once rather than twice (see unsignedPayload); a conditional write
// (If-None-Match: *) that finds the object already there counts as done, which is what makes retries
// idempotent.
package s3put

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/failpoint"
)

// DefaultPartSize is the part size of multipart uploads: large enough that a 100 MB file takes 13
// requests, small enough to keep memory flat.
const DefaultPartSize = 8 << 20

// MaxPutSize is the largest object one PutObject may carry (S3's limit).
const MaxPutSize = 5 << 30

// DefaultConcurrency parts in flight keep a store busy while one is acknowledged and the next read.
const DefaultConcurrency = 3

// Options describe the object to write.
type Options struct {
	Bucket, Key string
	ContentType string
	// ACL is a canned ACL such as bucket-owner-full-control; empty sends none.
	ACL types.ObjectCannedACL
	// SSE requests server-side encryption; empty requests none.
	SSE types.ServerSideEncryption
	// IfNoneMatch writes only if the key does not exist; an existing object is reported as Existed.
	IfNoneMatch bool
	// PartSize defaults to DefaultPartSize (minimum 5 MiB, S3's rule).
	PartSize int64
	// Size and SHA256 (hex), when both known, let an object of at most PartSize stream without a buffer.
	// Such a PutObject cannot be retried by the SDK (a stream does not rewind): the caller retries it
	// (see Retryable).
	Size   int64
	SHA256 string
	// NoMultipart writes the object with one streamed PutObject whatever its size (up to MaxPutSize);
	// Size and SHA256 must then be known. A PutObject is all or nothing: a failure or a SIGKILL
	// mid-write leaves nothing in the bucket. A multipart upload that is never completed keeps its parts,
	// billed to the bucket's owner, until someone with s3:AbortMultipartUpload aborts it, which a
	// customer's role that has only the reference's policy (s3:PutObject, s3:PutObjectAcl) cannot do.
	NoMultipart bool
	// Concurrency is how many parts of a multipart upload are sent at once (default
	// DefaultConcurrency); each holds a PartSize buffer.
	Concurrency int
	// Limiter, when set, is waited on before each write request (PutObject, each part, the completion),
	// so a caller can hold one bucket to a rate with small bursts.
	Limiter Limiter
}

// Limiter paces requests; *rate.Limiter of golang.org/x/time/rate is one.
type Limiter interface {
	Wait(ctx context.Context) error
}

func (o Options) concurrency() int {
	if o.Concurrency < 1 {
		return DefaultConcurrency
	}
	return o.Concurrency
}

func (o Options) wait(ctx context.Context) error {
	if o.Limiter == nil {
		return nil
	}
	if err := o.Limiter.Wait(ctx); err != nil {
		return fmt.Errorf("wait for the rate limit of s3://%s: %w", o.Bucket, err)
	}
	return nil
}

// Result describes what happened.
type Result struct {
	Size int64
	// Existed is true when IfNoneMatch found the object already written (by an earlier attempt).
	Existed bool
}

// Upload writes everything r yields to o.Bucket/o.Key.
func Upload(ctx context.Context, c *s3.Client, r io.Reader, o Options) (Result, error) {
	size := o.PartSize
	if size == 0 {
		size = DefaultPartSize
	}
	if size < 5<<20 {
		return Result{}, fmt.Errorf("upload %s: part size must be at least 5 MiB", o.Key)
	}
	if o.NoMultipart {
		if o.Size <= 0 || o.SHA256 == "" || o.Size > MaxPutSize {
			return Result{}, fmt.Errorf("upload %s: without multipart, Size (1 to %d bytes, got %d) and SHA256 must be known", o.Key, int64(MaxPutSize), o.Size)
		}
		return putStreamed(ctx, c, r, o)
	}
	if o.Size > 0 && o.Size <= size && o.SHA256 != "" {
		return putStreamed(ctx, c, r, o)
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return putSingle(ctx, c, buf[:n], o)
	}
	if err != nil {
		return Result{}, fmt.Errorf("read %s: %w", o.Key, err)
	}
	return putMultipart(ctx, c, r, buf, o)
}

func putSingle(ctx context.Context, c *s3.Client, body []byte, o Options) (Result, error) {
	sum := sha256.Sum256(body)
	in := &s3.PutObjectInput{
		Bucket:               aws.String(o.Bucket),
		Key:                  aws.String(o.Key),
		Body:                 bytes.NewReader(body),
		ContentLength:        aws.Int64(int64(len(body))),
		ChecksumSHA256:       aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ACL:                  o.ACL,
		ServerSideEncryption: o.SSE,
	}
	if o.ContentType != "" {
		in.ContentType = aws.String(o.ContentType)
	}
	if o.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if err := o.wait(ctx); err != nil {
		return Result{}, err
	}
	_, err := c.PutObject(ctx, in, unsignedPayload)
	if o.IfNoneMatch && isPreconditionFailed(err) {
		return Result{Size: int64(len(body)), Existed: true}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("put s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	return Result{Size: int64(len(body))}, nil
}

func putStreamed(ctx context.Context, c *s3.Client, r io.Reader, o Options) (Result, error) {
	sum, err := hex.DecodeString(o.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return Result{}, fmt.Errorf("upload %s: SHA256 must be 64 hex digits, got %q", o.Key, o.SHA256)
	}
	in := &s3.PutObjectInput{
		Bucket:               aws.String(o.Bucket),
		Key:                  aws.String(o.Key),
		Body:                 io.LimitReader(r, o.Size),
		ContentLength:        aws.Int64(o.Size),
		ChecksumSHA256:       aws.String(base64.StdEncoding.EncodeToString(sum)),
		ACL:                  o.ACL,
		ServerSideEncryption: o.SSE,
	}
	if o.ContentType != "" {
		in.ContentType = aws.String(o.ContentType)
	}
	if o.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if err := o.wait(ctx); err != nil {
		return Result{}, err
	}
	_, err = c.PutObject(ctx, in, unsignedPayload, func(so *s3.Options) { so.Retryer = aws.NopRetryer{} })
	if o.IfNoneMatch && isPreconditionFailed(err) {
		return Result{Size: o.Size, Existed: true}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("put s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	return Result{Size: o.Size}, nil
}

// unsignedPayload signs a request with UNSIGNED-PAYLOAD instead of the body's SHA-256. Every request
// here carries x-amz-checksum-sha256, which is signed and which the store checks against the body, so
// integrity and authenticity are the same; but a store given both a signed payload hash and a checksum
// hashes the body twice (MinIO: ~20% fewer 1 MB PutObjects per second at two in flight), and the SDK
// would read the body once more to compute the hash.
func unsignedPayload(so *s3.Options) {
	so.APIOptions = append(so.APIOptions, func(st *middleware.Stack) error {
		return st.Build.Add(middleware.BuildMiddlewareFunc("s3put.UnsignedPayload", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			return next.HandleBuild(v4.SetPayloadHash(ctx, "UNSIGNED-PAYLOAD"), in)
		}), middleware.After)
	})
}

// retryables are the SDK's own: throttling (SlowDown, ...), 5xx, timeouts and broken connections.
var retryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// Retryable reports an error worth another attempt (what the SDK's standard retryer would retry).
func Retryable(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled) && retryables.IsErrorRetryable(err) == aws.TrueTernary
}

func putMultipart(ctx context.Context, c *s3.Client, r io.Reader, buf []byte, o Options) (res Result, err error) {
	create := &s3.CreateMultipartUploadInput{
		Bucket:               aws.String(o.Bucket),
		Key:                  aws.String(o.Key),
		ChecksumAlgorithm:    types.ChecksumAlgorithmSha256,
		ACL:                  o.ACL,
		ServerSideEncryption: o.SSE,
	}
	if o.ContentType != "" {
		create.ContentType = aws.String(o.ContentType)
	}
	if err := o.wait(ctx); err != nil {
		return Result{}, err
	}
	up, err := c.CreateMultipartUpload(ctx, create)
	if err != nil {
		return Result{}, fmt.Errorf("start upload of s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	defer func() {
		if err != nil {
			// Best effort on a fresh context: the caller's may be what failed.
			_, _ = c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
				Bucket: aws.String(o.Bucket), Key: aws.String(o.Key), UploadId: up.UploadId,
			})
		}
	}()

	// Up to Concurrency parts upload at once, each from a buffer of its own, while this goroutine reads
	// the next part into a free buffer: memory is Concurrency × PartSize whatever the object's size.
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		parts   []types.CompletedPart
		failed  error
		running sync.WaitGroup
	)
	fail := func(e error) {
		mu.Lock()
		if failed == nil {
			failed = e
		}
		mu.Unlock()
		cancel()
	}
	free := make(chan []byte, o.concurrency())
	for range o.concurrency() - 1 {
		free <- make([]byte, len(buf))
	}
	cur := buf
	for part := int32(1); ; part++ {
		if err := o.wait(uctx); err != nil {
			fail(err)
			break
		}
		running.Add(1)
		go func(part int32, b []byte) {
			defer running.Done()
			defer func() { free <- b[:cap(b)] }()
			out, err := uploadPart(uctx, c, o, up.UploadId, part, b)
			if err != nil {
				fail(err)
				return
			}
			failpoint.Hit("s3put.after-part") // crash tests: killed with parts uploaded, the upload incomplete
			mu.Lock()
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(part), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
			res.Size += int64(len(b))
			mu.Unlock()
		}(part, cur)

		var next []byte
		select {
		case next = <-free:
		case <-uctx.Done():
		}
		if next == nil {
			break
		}
		n, rerr := io.ReadFull(r, next)
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			fail(fmt.Errorf("read %s: %w", o.Key, rerr))
			break
		}
		if n == 0 {
			break
		}
		cur = next[:n]
	}
	running.Wait()
	if failed != nil {
		return Result{}, failed
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	complete := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(o.Bucket),
		Key:             aws.String(o.Key),
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if o.IfNoneMatch {
		complete.IfNoneMatch = aws.String("*")
	}
	if err = o.wait(ctx); err != nil {
		return Result{}, err
	}
	_, err = c.CompleteMultipartUpload(ctx, complete)
	if o.IfNoneMatch && isPreconditionFailed(err) {
		return Result{Size: res.Size, Existed: true}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("complete upload of s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	return res, nil
}

// uploadPart sends one part with its SHA-256 as checksum.
func uploadPart(ctx context.Context, c *s3.Client, o Options, uploadID *string, part int32, b []byte) (*s3.UploadPartOutput, error) {
	sum := sha256.Sum256(b)
	out, err := c.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:         aws.String(o.Bucket),
		Key:            aws.String(o.Key),
		UploadId:       uploadID,
		PartNumber:     aws.Int32(part),
		Body:           bytes.NewReader(b),
		ContentLength:  aws.Int64(int64(len(b))),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}, unsignedPayload)
	if err != nil {
		return nil, fmt.Errorf("upload part %d of s3://%s/%s: %w", part, o.Bucket, o.Key, err)
	}
	return out, nil
}

func isPreconditionFailed(err error) bool {
	return err != nil && (awsclient.ErrorCode(err) == "PreconditionFailed" || awsclient.HTTPStatus(err) == 412)
}
