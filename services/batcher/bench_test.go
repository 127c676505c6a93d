package batcher

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// benchLines is NDJSON like ingest writes: ~1 KB track events that differ in ids and numbers.
func benchLines(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"type":"track","userId":"user-%d","event":"Order Completed","messageId":"m-%d-%x",`+
			`"receivedAt":"2026-11-24T12:00:%02d.%03dZ","timestamp":"2026-11-24T12:00:%02d.000Z","projectId":"src1",`+
			`"context":{"library":{"name":"analytics-go","version":"3.3.0"},"ip":"203.0.113.%d"},`+
			`"properties":{"orderId":"%d","total":%d.99,"currency":"USD","products":[{"sku":"SKU-%d","name":"%s","price":64.99,"quantity":2}],"note":"%s"}}`,
			i%5000, i, i*2654435761, i%60, i%1000, i%60, i%250, i, i%977, i%50, strings.Repeat("p", 40), strings.Repeat("n", 560))
	}
	return out
}

// BenchmarkBatcherFile measures the batcher's hot path: NDJSON lines through gzip into the JetStream
// object store (file storage) until the file is sealed, 20 MB of input per operation.
func BenchmarkBatcherFile(b *testing.B) {
	_, _, js := testenv.NATS(b)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		b.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		b.Fatal(err)
	}
	lines := benchLines(20_000)
	var size int64
	for _, l := range lines {
		size += int64(len(l) + 1)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	var compressed int64
	for i := range b.N {
		f, err := openFile(ctx, obs, partition{source: "src1", dayMs: int64(i)}, 1, 3, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range lines {
			if err := f.write(l); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.close(); err != nil {
			b.Fatal(err)
		}
		compressed = f.compressed
		b.StopTimer()
		_ = obs.Delete(ctx, f.objectName)
		b.StartTimer()
	}
	b.ReportMetric(float64(size)/float64(compressed), "ratio")
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawGzip is the physical limit next to BenchmarkBatcherFile: the same NDJSON through the same
// gzip level into nothing, on one core.
func BenchmarkRawGzip(b *testing.B) {
	for _, level := range []int{1, 3, 6} {
		b.Run(fmt.Sprintf("level-%d", level), func(b *testing.B) {
			lines := benchLines(20_000)
			data := bytes.Join(lines, []byte("\n"))
			b.SetBytes(int64(len(data)))
			var out int64
			for range b.N {
				cw := &countWriter{}
				zw, _ := gzip.NewWriterLevel(cw, level)
				_, _ = zw.Write(data)
				_ = zw.Close()
				out = cw.n
			}
			b.ReportMetric(float64(len(data))/float64(out), "ratio")
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
