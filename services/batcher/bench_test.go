package batcher

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go/jetstream"

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

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkBatcherFile measures the batcher's hot path next to its physical limit, in the same loop so
// that both see the same machine: each op gzips ~20 MB of NDJSON on one core into nothing (raw gzip at the
// default level), then writes the same lines through the batcher's file into the JetStream object store
// (file storage) until it is sealed. Both for very regular NDJSON and for NDJSON that compresses like real
// payloads. CPU is this process's (compression, the embedded NATS server storing the object) from
// getrusage, around each side only; cpu-efficiency-% is raw gzip's CPU per GB over the batcher's, the
// per-core speed of the batcher as a share of gzip's.
func BenchmarkBatcherFile(b *testing.B) {
	_, _, js := testenv.NATS(b)
	ctx := context.Background()
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		b.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		b.Fatal(err)
	}
	for _, data := range []struct {
		name  string
		lines [][]byte
	}{{"regular", benchLines(20_000)}, {"mixed", mixedLines(20_000)}} {
		b.Run(data.name, func(b *testing.B) { benchFile(b, obs, data.lines) })
	}
}

func benchFile(b *testing.B, obs jetstream.ObjectStore, lines [][]byte) {
	const level = 2 // the default
	ctx := context.Background()
	joined := append(bytes.Join(lines, []byte("\n")), '\n')
	size := float64(len(joined))
	b.ReportAllocs()
	var compressed int64
	var rawCPU, fileCPU float64
	var rawWall, fileWall time.Duration
	n := 0
	for b.Loop() {
		n++
		t0, c0 := time.Now(), cpuSeconds(b)
		zw, _ := gzip.NewWriterLevel(&countWriter{}, level)
		_, _ = zw.Write(joined)
		_ = zw.Close()
		t1, c1 := time.Now(), cpuSeconds(b)
		f, err := openFile(ctx, obs, partition{source: "src1", dayMs: int64(n)}, streamIdentity{name: bus.StreamEvents}, "bench", 1, level, bus.ObjectChunk, time.Now())
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
		rawWall, rawCPU = rawWall+t1.Sub(t0), rawCPU+c1-c0
		fileWall, fileCPU = fileWall+time.Since(t1), fileCPU+cpuSeconds(b)-c1
		compressed = f.compressed
		_ = obs.Delete(ctx, f.objectName)
	}
	gb := size * float64(n) / 1e9
	b.ReportMetric(size/float64(compressed), "ratio")
	b.ReportMetric(float64(len(lines)*n)/fileWall.Seconds(), "events/s")
	b.ReportMetric(gb*1e3/fileWall.Seconds(), "batcher-MB/s")
	b.ReportMetric(gb*1e3/rawWall.Seconds(), "raw-gzip-MB/s")
	b.ReportMetric(100*rawWall.Seconds()/fileWall.Seconds(), "batcher/raw-%")
	b.ReportMetric(fileCPU/gb, "batcher-cpu-s/GB")
	b.ReportMetric(rawCPU/gb, "raw-cpu-s/GB")
	b.ReportMetric(100*rawCPU/fileCPU, "cpu-efficiency-%")
}

// mixedLines is NDJSON that compresses like real payloads (about 6:1 rather than benchLines' 23:1):
// the same shape of event with 128 random bytes in hex in each.
func mixedLines(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	blob := make([]byte, 128)
	for i := range out {
		for j := range blob {
			blob[j] = byte(rng.Uint32())
		}
		out[i] = fmt.Appendf(nil, `{"type":"track","userId":"user-%d","event":"Order Completed","messageId":"m-%d",`+
			`"receivedAt":"2026-11-24T12:00:%02d.%03dZ","context":{"library":{"name":"analytics-go","version":"3.3.0"},"ip":"203.0.113.%d"},`+
			`"properties":{"orderId":"%d","total":%d.99,"currency":"USD","token":"%s","note":"%0500d"}}`,
			i%5000, i, i%60, i%1000, i%250, i, i%977, hex.EncodeToString(blob), i)
	}
	return out
}

// BenchmarkRawGzip is the physical limit next to BenchmarkBatcherFile: the same NDJSON through gzip
// into nothing, on one core, at the levels worth considering, for very regular data and for data that
// compresses like real payloads. cpu-s/GB is steadier than MB/s when other work shares the machine.
func BenchmarkRawGzip(b *testing.B) {
	for _, data := range []struct {
		name  string
		lines [][]byte
	}{{"regular", benchLines(20_000)}, {"mixed", mixedLines(20_000)}} {
		joined := bytes.Join(data.lines, []byte("\n"))
		for _, level := range []int{1, 2, 3, 6} {
			b.Run(fmt.Sprintf("%s/level-%d", data.name, level), func(b *testing.B) {
				b.SetBytes(int64(len(joined)))
				var out int64
				start := cpuSeconds(b)
				for range b.N {
					cw := &countWriter{}
					zw, _ := gzip.NewWriterLevel(cw, level)
					_, _ = zw.Write(joined)
					_ = zw.Close()
					out = cw.n
				}
				b.ReportMetric((cpuSeconds(b)-start)/(float64(len(joined))*float64(b.N)/1e9), "cpu-s/GB")
				b.ReportMetric(float64(len(joined))/float64(out), "ratio")
			})
		}
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
