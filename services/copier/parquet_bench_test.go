package copier

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// The two event sets of the Parquet numbers (bench/results/parquet.md).
//
// benchEvent is the shape bench/load.go sends: a ~1 KB track event with a varied properties block
// (order, three products, a note of random words), plus the fields ingest stamps (receivedAt, sentAt).
// variedEvent cycles through every Segment call (track, identify, page, screen, group, alias) with the
// fields each carries (traits, integrations, groupId, previousId, version, channel, a full context), so
// the extra column and every typed column are exercised.
var benchWords = strings.Fields(`order checkout cart product viewed added removed coupon applied shipping billing address
	mobile desktop tablet campaign email newsletter search results category electronics apparel shoes garden
	kitchen sports outdoor premium basic annual monthly trial upgrade downgrade referral partner organic paid`)

type eventSet func(dst []byte, r *rand.Rand, i int, at time.Time) []byte

func benchEvent(dst []byte, r *rand.Rand, i int, at time.Time) []byte {
	ts := at.Format(time.RFC3339Nano)
	dst = fmt.Appendf(dst, `{"type":"track","messageId":"bench-0-%d-%d","userId":"user-%d","event":"Order Completed","timestamp":"%s",`,
		i/100, i%100, i%50_000, ts)
	dst = fmt.Appendf(dst, `"context":{"library":{"name":"analytics-go","version":"3.3.0"},"ip":"203.0.113.%d","userAgent":"Mozilla/5.0 (X11; Linux x86_64) s3dest-bench"},`, i%250)
	dst = appendProperties(dst, r)
	return fmt.Appendf(dst, `,"sentAt":"%s","receivedAt":"%s"}`, ts, at.Add(time.Millisecond).Format(time.RFC3339Nano))
}

func appendProperties(dst []byte, r *rand.Rand) []byte {
	dst = fmt.Appendf(dst, `"properties":{"orderId":"%016x","total":%d.%02d,"currency":"USD","coupon":"%s-%d","products":[`,
		r.Uint64(), r.IntN(900)+10, r.IntN(100), benchWords[r.IntN(len(benchWords))], r.IntN(100))
	for j := range 3 {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = fmt.Appendf(dst, `{"sku":"SKU-%06d","name":"%s %s","price":%d.99,"quantity":%d}`,
			r.IntN(1_000_000), benchWords[r.IntN(len(benchWords))], benchWords[r.IntN(len(benchWords))], r.IntN(200), r.IntN(5)+1)
	}
	dst = append(dst, `],"note":"`...)
	for n := 0; n < 300; {
		w := benchWords[r.IntN(len(benchWords))]
		dst = append(dst, w...)
		dst = append(dst, ' ')
		n += len(w) + 1
	}
	return append(dst[:len(dst)-1], `"}`...)
}

func variedEvent(dst []byte, r *rand.Rand, i int, at time.Time) []byte {
	ts := at.Format(time.RFC3339Nano)
	user := "user-" + strconv.Itoa(r.IntN(20_000))
	anon := fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1))
	ctx := fmt.Sprintf(`"context":{"ip":"198.51.100.%d","locale":"en-US","library":{"name":"analytics.js","version":"5.2.%d"},`+
		`"page":{"path":"/p/%d","url":"https://shop.example.com/p/%d","referrer":"https://www.google.com/"},`+
		`"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_%d) AppleWebKit/605.1.15 Safari/605.1.15","campaign":{"source":"%s","medium":"%s"}}`,
		r.IntN(250), r.IntN(10), r.IntN(5000), r.IntN(5000), r.IntN(8), benchWords[r.IntN(len(benchWords))], benchWords[r.IntN(len(benchWords))])
	common := fmt.Sprintf(`"messageId":"ajs-%016x","anonymousId":"%s","timestamp":"%s","sentAt":"%s","originalTimestamp":"%s","receivedAt":"%s",`+
		`"integrations":{"All":true,"Mixpanel":%t},"channel":"client","version":2,`,
		r.Uint64(), anon, ts, ts, ts, at.Add(20*time.Millisecond).Format(time.RFC3339Nano), r.IntN(2) == 0)
	switch i % 6 {
	case 0, 1: // track is most of the traffic
		dst = fmt.Appendf(dst, `{"type":"track","event":"%s %s","userId":"%s",%s%s,`, strings.Title(benchWords[r.IntN(len(benchWords))]), "Clicked", user, common, ctx)
		dst = appendProperties(dst, r)
		return append(dst, '}')
	case 2:
		return fmt.Appendf(dst, `{"type":"page","name":"%s","userId":"%s",%s%s,"properties":{"path":"/p/%d","title":"%s","search":""}}`,
			benchWords[r.IntN(len(benchWords))], user, common, ctx, r.IntN(5000), benchWords[r.IntN(len(benchWords))])
	case 3:
		return fmt.Appendf(dst, `{"type":"identify","userId":"%s",%s%s,"traits":{"email":"%s@example.com","plan":"%s","createdAt":"%s","logins":%d}}`,
			user, common, ctx, user, benchWords[r.IntN(len(benchWords))], ts, r.IntN(400))
	case 4:
		return fmt.Appendf(dst, `{"type":"screen","name":"%s","userId":"%s",%s%s,"properties":{"variation":"%s"}}`,
			benchWords[r.IntN(len(benchWords))], user, common, ctx, benchWords[r.IntN(len(benchWords))])
	}
	if r.IntN(2) == 0 {
		return fmt.Appendf(dst, `{"type":"group","groupId":"org-%d","userId":"%s",%s%s,"traits":{"name":"%s Inc","employees":%d}}`,
			r.IntN(3000), user, common, ctx, benchWords[r.IntN(len(benchWords))], r.IntN(5000))
	}
	return fmt.Appendf(dst, `{"type":"alias","previousId":"%s","userId":"%s",%s%s}`, anon, user, common, ctx)
}

// stagedGzipLevel is the batcher's default --gzip-level (klauspost/compress, as the batcher uses).
const stagedGzipLevel = 2

// writeStaged writes events of set as a staged file (gzipped NDJSON, the batcher's level) into w until
// the compressed size reaches gzBytes (or events lines are written, whichever is set), and returns the
// events and the NDJSON bytes written.
func writeStaged(w io.Writer, set eventSet, gzBytes, events int64) (int64, int64, error) {
	counted := &countingWriter{}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(w, counted), stagedGzipLevel)
	if err != nil {
		return 0, 0, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var line []byte
	var n, raw int64
	for ; (gzBytes == 0 || counted.n < gzBytes) && (events == 0 || n < events); n++ {
		line = append(set(line[:0], r, int(n), at.Add(time.Duration(n)*time.Millisecond)), '\n')
		if _, err := zw.Write(line); err != nil {
			return n, raw, err
		}
		raw += int64(len(line))
	}
	return n, raw, zw.Close()
}

// BenchmarkParquetAgainstGzip compares, per set of events, the gzip NDJSON file the batcher writes and
// the Parquet file the copier makes of it: bytes per event of each, and the CPU time per event of each
// step (the batcher's gzip of the NDJSON, klauspost/compress at its default level 2; the copier's
// conversion, which reads the gzip file), from the
// process's user+system time (getrusage), not the wall clock, which a shared machine stretches.
// CPU-s per million events is cpu-ns/event ÷ 1000.
//
//	go test -run '^$' -bench BenchmarkParquetAgainstGzip -benchtime 3x ./services/copier
func BenchmarkParquetAgainstGzip(b *testing.B) {
	const events = 50_000
	for _, set := range []struct {
		name string
		gen  eventSet
	}{{"bench-events", benchEvent}, {"varied-events", variedEvent}} {
		var ndjson, staged bytes.Buffer
		r := rand.New(rand.NewPCG(1, 2))
		at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
		for i := range events {
			ndjson.Write(append(set.gen(nil, r, i, at.Add(time.Duration(i)*time.Millisecond)), '\n'))
		}
		zw, _ := gzip.NewWriterLevel(&staged, stagedGzipLevel)
		zw.Write(ndjson.Bytes())
		zw.Close()
		b.Run(set.name+"/gzip-ndjson", func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				zw, _ := gzip.NewWriterLevel(io.Discard, stagedGzipLevel)
				if _, err := zw.Write(ndjson.Bytes()); err != nil {
					b.Fatal(err)
				}
				zw.Close()
			}
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*events), "cpu-ns/event")
			b.ReportMetric(float64(staged.Len())/events, "bytes/event")
			b.ReportMetric(float64(ndjson.Len())/events, "ndjson-bytes/event")
		})
		b.Run(set.name+"/parquet", func(b *testing.B) {
			var out countingWriter
			cpu := cpuTime()
			for b.Loop() {
				out.n = 0
				if _, err := WriteParquet(&out, bytes.NewReader(staged.Bytes())); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*events), "cpu-ns/event")
			b.ReportMetric(float64(out.n)/events, "bytes/event")
			b.ReportMetric(float64(out.n)/float64(staged.Len()), "size-vs-gzip")
		})
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParquetMemoryIsFlat converts staged files of 10 MB and 100 MB (gzip; the batcher's cap is
// 99 MB) as the copier does, from a stream into a temporary file, next to the json path (the staged
// file streamed through, as copyOnce hands it to the PutObject), and reports the peak of the Go heap in
// use during each: it must not grow with the file.
//
//	go test -run '^$' -bench BenchmarkParquetMemoryIsFlat -benchtime 1x ./services/copier
func BenchmarkParquetMemoryIsFlat(b *testing.B) {
	for _, mb := range []int64{10, 100} {
		for _, path := range []string{"json", "parquet"} {
			b.Run(fmt.Sprintf("%dMB/%s", mb, path), func(b *testing.B) {
				for b.Loop() {
					pr, pw := io.Pipe()
					go func() {
						_, _, err := writeStaged(pw, benchEvent, mb*1_000_000, 0)
						pw.CloseWithError(err)
					}()
					peak := watchHeap()
					var err error
					if path == "json" {
						_, err = io.Copy(io.Discard, pr)
					} else {
						err = convertToTemp(pr)
					}
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(peak())/1e6, "peak-heap-MB")
				}
			})
		}
	}
}

// convertToTemp is convertStaged without the checksum of a sealed file: the conversion into a
// temporary file, then its removal.
func convertToTemp(r io.Reader) error {
	f, err := os.CreateTemp("", "s3dest-bench-*.parquet")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	_, err = WriteParquet(f, r)
	return err
}

// watchHeap samples the heap in use until the returned function is called, which reports the peak.
func watchHeap() func() uint64 {
	runtime.GC()
	var mu sync.Mutex
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
