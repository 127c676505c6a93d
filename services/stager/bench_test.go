package stager

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// benchFile is a sealed file as the batcher writes it: gzip (level 3) NDJSON of ~1 KB track events, each
// with 128 random bytes in hex so that it compresses about 6:1 like real payloads rather than 20:1.
func benchFile(events int) (gz []byte, ndjson int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, 3)
	blob := make([]byte, 128)
	for i := range events {
		for j := range blob {
			blob[j] = byte(rng.Uint32())
		}
		line := fmt.Appendf(nil, `{"type":"track","userId":"user-%d","event":"Order Completed","messageId":"m-%d",`+
			`"receivedAt":"2026-11-24T12:00:%02d.%03dZ","context":{"library":{"name":"analytics-go","version":"3.3.0"},"ip":"203.0.113.%d"},`+
			`"properties":{"orderId":"%d","total":%d.99,"currency":"USD","token":"%s","note":"%0500d"}}`+"\n",
			i%5000, i, i%60, i%1000, i%250, i, i%977, hex.EncodeToString(blob), i)
		ndjson += int64(len(line))
		_, _ = zw.Write(line)
	}
	_ = zw.Close()
	return buf.Bytes(), ndjson
}

const (
	benchEvents       = 20_000 // per file: ~31 MB of NDJSON, ~5 MB of gzip
	benchFilesPerOp   = 4      // two stager workers, two files each
	benchStagerBucket = "staging-test"
)

// BenchmarkStager measures the stager (JetStream object store → MinIO, SSE, SHA-256 verified, then
// batch.staged) next to MinIO's own PutObject rate for the same bytes and the same concurrency, in the
// same run. CPU is this process's (stager, embedded NATS, benchmark) from getrusage, around the timed
// part only; MinIO runs in its own process and is not counted. Peak RSS is this process's high-water
// mark during the stage loop (object store, uploads, the benchmark's own copy of the file).
func BenchmarkStager(b *testing.B) {
	_, nc, js := testenv.NATS(b)
	m := testenv.MinIO(b)
	ctx := context.Background()
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		b.Fatal(err)
	}
	runStager(b, nc, js, m)
	file, ndjson := benchFile(benchEvents)
	sum := sha256.Sum256(file)
	size := int64(len(file))
	obs, err := js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		b.Fatal(err)
	}
	staged, err := js.OrderedConsumer(ctx, bus.StreamBatches, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.AllStaged}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, cpu float64) {
		n := float64(b.N * benchFilesPerOp)
		b.ReportMetric(float64(ndjson)*n/b.Elapsed().Seconds()/1e6, "ndjson-MB/s")
		b.ReportMetric(benchEvents*n/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(cpu/(float64(size)*n/1e9), "cpu-s/GB")
		b.ReportMetric(benchEvents*n/cpu, "events/cpu-s")
		b.ReportMetric(float64(ndjson)/float64(size), "ratio")
	}
	seq := 0
	b.Run("stage", func(b *testing.B) {
		b.SetBytes(size * benchFilesPerOp)
		peak := testenv.PeakRSS(b)
		cpu := 0.0
		for range b.N {
			// The batcher's part, untimed: the files in the object store, not yet announced.
			b.StopTimer()
			var sealed []*batchv1.BatchSealed
			for range benchFilesPerOp {
				seq++
				name := fmt.Sprintf("bench/0/%020d", seq)
				// In chunks of bus.ObjectChunk, as the batcher stores its files.
				if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: bus.ObjectChunk}}, bytes.NewReader(file)); err != nil {
					b.Fatal(err)
				}
				sealed = append(sealed, &batchv1.BatchSealed{ObjectName: name, Batch: &batchv1.Batch{
					BatchId: fmt.Sprintf("bench-%d", seq), SourceId: "bench", FirstSequence: uint64(seq), LastSequence: uint64(seq),
					EventCount: benchEvents, SizeBytes: size, UncompressedBytes: ndjson, Sha256: hex.EncodeToString(sum[:]),
					FileName: fmt.Sprintf("%d.gz", seq)}})
			}
			start := cpuSeconds(b)
			b.StartTimer()
			for _, s := range sealed {
				if _, err := bus.Publish(ctx, js, bus.SealedSubject("bench"), s, "sealed."+s.GetBatch().GetBatchId()); err != nil {
					b.Fatal(err)
				}
			}
			for range benchFilesPerOp {
				if _, err := staged.Next(jetstream.FetchMaxWait(time.Minute)); err != nil {
					b.Fatalf("waiting for batch.staged: %v", err)
				}
			}
			b.StopTimer()
			cpu += cpuSeconds(b) - start
			b.StartTimer()
		}
		report(b, cpu)
		b.ReportMetric(peak(), "peak-rss-MB")
	})
	b.Run("raw-minio-put", func(b *testing.B) {
		cli := testenvS3(m)
		b.SetBytes(size * benchFilesPerOp)
		start := cpuSeconds(b)
		for range b.N {
			var wg sync.WaitGroup
			errs := make(chan error, benchFilesPerOp)
			for range 2 { // the stager's two workers
				seq += 2
				wg.Go(func() {
					for j := range benchFilesPerOp / 2 {
						_, err := cli.PutObject(ctx, &s3.PutObjectInput{
							Bucket: aws.String(benchStagerBucket), Key: aws.String(fmt.Sprintf("raw/%d-%d.gz", seq, j)),
							Body: bytes.NewReader(file), ServerSideEncryption: types.ServerSideEncryptionAes256,
						})
						if err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		report(b, cpuSeconds(b)-start)
	})
}
