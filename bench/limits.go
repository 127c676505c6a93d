package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
)

// limits are the raw speeds of the components s3dest is built on, measured on the same machine in the
// same run, with the same payloads.
type limits struct {
	JetStreamPublishEventsPerS float64 `json:"jetstream_publish_events_per_s"`
	JetStreamPublishMBPerS     float64 `json:"jetstream_publish_mb_per_s"`
	GzipLevel                  int     `json:"gzip_level"`
	GzipMBPerS                 float64 `json:"gzip_mb_per_s"`
	GzipEventsPerS             float64 `json:"gzip_events_per_s"`
	GzipRatio                  float64 `json:"gzip_compression_ratio"`
	MinIOPutMBPerS             float64 `json:"minio_put_mb_per_s"`
	MinIOPutObjectMB           float64 `json:"minio_put_object_mb"`
}

// jetStreamPublish publishes /v1/batch bodies (eventsPerRequest events each, as ingest stores a whole
// request as one message) with async publish into a file-storage stream of the given replicas for d,
// and waits for every ack.
func jetStreamPublish(ctx context.Context, natsURL string, p *payloads, d time.Duration, replicas int) (eventsPerS, mbPerS float64, err error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256))
	if err != nil {
		return 0, 0, err
	}
	const stream = "BENCH_RAW_PUBLISH"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"benchraw.>"}, Storage: jetstream.FileStorage, Replicas: replicas}); err != nil {
		return 0, 0, fmt.Errorf("create stream %s: %w", stream, err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), stream) }()
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = p.body(nil, "raw", 0, i)
	}
	start := time.Now()
	var msgs, bytesSent int64
	for time.Since(start) < d && ctx.Err() == nil {
		b := bodies[msgs%int64(len(bodies))]
		// A full window waits for acks rather than failing: R3 acks come later than R1's.
		if _, err := js.PublishAsync("benchraw.src", b, jetstream.WithStallWait(10*time.Second)); err != nil {
			return 0, 0, fmt.Errorf("publish: %w", err)
		}
		msgs++
		bytesSent += int64(len(b))
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return 0, 0, fmt.Errorf("jetstream: %d publishes unacknowledged after 30s", js.PublishAsyncPending())
	}
	el := time.Since(start).Seconds()
	return float64(msgs*eventsPerRequest) / el, float64(bytesSent) / 1e6 / el, nil
}

// gzipSpeed compresses ndjson with the batcher's library and default level on one goroutine, repeating
// it for at least d.
func gzipSpeed(ndjson []byte, level int, d time.Duration) (mbPerS, ratio float64, err error) {
	if len(ndjson) == 0 {
		return 0, 0, fmt.Errorf("no NDJSON to compress")
	}
	var out countWriter
	start := time.Now()
	var in int64
	for time.Since(start) < d {
		zw, err := gzip.NewWriterLevel(&out, level)
		if err != nil {
			return 0, 0, err
		}
		if _, err := zw.Write(ndjson); err != nil {
			return 0, 0, err
		}
		if err := zw.Close(); err != nil {
			return 0, 0, err
		}
		in += int64(len(ndjson))
	}
	return float64(in) / 1e6 / time.Since(start).Seconds(), float64(in) / float64(out.n), nil
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// minioPut writes objects of size bytes (random, so nothing in the path can shrink them) with conc
// concurrent PutObject calls of MinIO's root user for d.
func minioPut(ctx context.Context, cli *s3.Client, size int, conc int, d time.Duration) (float64, error) {
	const bucket = "bench-raw-put"
	if _, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return 0, fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	data := make([]byte, size)
	_, _ = io.ReadFull(rand.Reader, data)
	start := time.Now()
	var mu sync.Mutex
	var total int64
	var firstErr error
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < d; i++ {
				_, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("obj-%d-%d", w, i)),
					Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(size))})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					total += int64(size)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("put object: %w", firstErr)
	}
	return float64(total) / 1e6 / time.Since(start).Seconds(), nil
}

// eventsStreamBytes is what the EVENTS streams (EVENTS, or EVENTS-0 … EVENTS-{N-1} with partitions)
// store now, in bytes: messages with their subjects and headers, as JetStream accounts them. The
// streams keep messages for the retention, so the difference across a phase is what the phase wrote.
func eventsStreamBytes(ctx context.Context, natsURL string) (uint64, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	var total uint64
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		if name := info.Config.Name; name == bus.StreamEvents || strings.HasPrefix(name, bus.StreamEvents+"-") {
			total += info.State.Bytes
		}
	}
	if err := streams.Err(); err != nil {
		return 0, fmt.Errorf("list streams: %w", err)
	}
	return total, nil
}
