package batcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// BenchmarkBatcherMemory writes one file of each size through gzip into the object store (embedded
// JetStream in this process) and reports the process's peak RSS: it must not grow with the file size,
// because the file streams and is never held in memory.
func BenchmarkBatcherMemory(b *testing.B) {
	_, _, js := testenv.NATS(b)
	ctx := context.Background()
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		b.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		b.Fatal(err)
	}
	// Random hex lines barely compress (ratio ~2), so 100 MB of gzip takes ~200 MB of input.
	lines := make([][]byte, 4096)
	for i := range lines {
		raw := make([]byte, 400)
		_, _ = rand.Read(raw)
		lines[i] = fmt.Appendf(nil, `{"type":"track","messageId":"m%d","blob":"%s"}`, i, hex.EncodeToString(raw))
	}
	for _, target := range []int64{1_000_000, 99_000_000} {
		b.Run(fmt.Sprintf("file-%dMB", target/1_000_000), func(b *testing.B) {
			for i := range b.N {
				peak := testenv.PeakRSS(b)
				f, err := openFile(ctx, obs, partition{source: "mem", dayMs: int64(i)}, streamIdentity{name: bus.StreamEvents}, "mem", uint64(target), 3, bus.ObjectChunk, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; ; n++ {
					fits, err := f.fits(int64(len(lines[n%len(lines)])+1), target)
					if err != nil {
						b.Fatal(err)
					}
					if !fits {
						break
					}
					if err := f.write(lines[n%len(lines)]); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.close(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(peak(), "peak-rss-MB")
				b.ReportMetric(float64(f.compressed)/1e6, "file-MB")
				b.StopTimer()
				_ = obs.Delete(ctx, f.objectName)
				b.StartTimer()
			}
		})
	}
}
