package ingest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// BenchmarkHostileRequestMemory sends the requests of a caller who wants to exhaust memory and reports
// the process's peak RSS above what it held idle (MB-above-idle), one request at a time and sixteen at
// once. The process holds the embedded JetStream server too, so the figure is an upper bound for
// ingest alone. The bound to hold: under 64 MB for one request (issue 13).
//
//   - amplified-467KB: a 30 KB batch-level context merged into each of ~11,000 tiny events (the shape
//     that grew s3dest dev by 825 MB before MaxMergedBytes);
//   - amplified-500KB: the same at the request limit;
//   - merged-near-cap: a 3 KB context and 2,600 events, ~7.9 MB once merged: accepted, published as
//     eight 1 MB messages one after another.
func BenchmarkHostileRequestMemory(b *testing.B) {
	h := start(b, func(c *Config) { c.PublishTimeout = 30 * time.Second }) // 128 MB at once on 2 cores takes a while

	var nearCap strings.Builder
	nearCap.WriteString(`{"context":{"pad":"` + strings.Repeat("c", 3000) + `"},"batch":[`)
	for i := range 2600 {
		if i > 0 {
			nearCap.WriteByte(',')
		}
		fmt.Fprintf(&nearCap, `{"type":"track","userId":"u","event":"E","messageId":"near-%%d-%d"}`, i)
	}
	nearCap.WriteString("]}")
	cases := []struct {
		name   string
		body   func(op int) string
		status int
	}{
		{"amplified-467KB", func(int) string { return amplifiedBatch(30_000, 467_000) }, 400},
		{"amplified-500KB", func(int) string { return amplifiedBatch(30_000, MaxBatchBytes-100) }, 400},
		{"merged-near-cap", func(op int) string { return strings.ReplaceAll(nearCap.String(), "%d", fmt.Sprint(op)) }, 200},
	}
	op := 0
	for _, c := range cases {
		for _, parallel := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/x%d", c.name, parallel), func(b *testing.B) {
				bodies := make([]string, parallel)
				runtime.GC()
				debug.FreeOSMemory()
				idle, err := testenv.ProcessMemoryMB(os.Getpid(), "VmRSS")
				if err != nil {
					b.Skipf("needs /proc to read RSS: %v", err)
				}
				peak := testenv.PeakRSS(b)
				for b.Loop() {
					for i := range bodies {
						op++
						bodies[i] = c.body(op)
					}
					var wg sync.WaitGroup
					for _, body := range bodies {
						wg.Go(func() {
							req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/batch", strings.NewReader(body))
							req.SetBasicAuth(writeKey, "")
							resp, err := http.DefaultClient.Do(req)
							if err != nil {
								b.Error(err)
								return
							}
							msg, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							if resp.StatusCode != c.status {
								b.Errorf("got %d %s, want %d", resp.StatusCode, msg, c.status)
							}
						})
					}
					wg.Wait()
				}
				b.ReportMetric(peak()-idle, "MB-above-idle")
			})
		}
	}
}
