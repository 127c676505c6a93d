package allinone

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// hostileBatch is a batch whose batch-level context of contextBytes is merged into each of its tiny
// track events, as many as fit in bodyBytes: 467 KB of it once grew s3dest dev by 825 MB.
func hostileBatch(tag string, contextBytes, bodyBytes int) string {
	var b strings.Builder
	b.WriteString(`{"context":{"pad":"` + strings.Repeat("c", contextBytes) + `"},"batch":[`)
	for i := 0; b.Len() < bodyBytes-80; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","userId":"u","event":"E","messageId":"%s-%d"}`, tag, i)
	}
	b.WriteString("]}")
	return b.String()
}

func TestSixteenHostileRequestsAtOnceKeepTheWholeDevProcessUnder512MB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs s3dest dev in a process of its own")
	}
	p := startDevProcess(t, buildS3dest(t), t.TempDir(), nil)
	rounds := []struct {
		name   string
		body   func(i int) string
		status int
	}{
		{"a 30 KB context merged into the tiny events of 467 KB", func(i int) string { return hostileBatch(fmt.Sprint("a", i), 30_000, 467_000) }, 400},
		{"the same at 500 KB", func(i int) string { return hostileBatch(fmt.Sprint("b", i), 30_000, 500*1024-100) }, 400},
		{"a 3 KB context merged into 2,500 events, just under the merged limit", func(i int) string { return hostileBatch(fmt.Sprint("c", i), 3_000, 150_000) }, 200},
	}
	for n, r := range rounds {
		var wg sync.WaitGroup
		for i := range 16 {
			body := r.body(i)
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, p.sum.TrackingURL+"/v1/batch", strings.NewReader(body))
				req.SetBasicAuth(p.sum.WriteKey, "")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != r.status {
					t.Errorf("%s: got %d %s, want %d", r.name, resp.StatusCode, msg, r.status)
				}
			})
		}
		wg.Wait()
		peak, err := testenv.ProcessMemoryMB(p.cmd.Process.Pid, "VmHWM")
		if err != nil {
			t.Skipf("needs /proc to read the process's peak RSS: %v", err)
		}
		t.Logf("after %s, 16 at once: s3dest dev's peak RSS is %.0f MB", r.name, peak)
		// The bound is for the requests that are refused; the last round is accepted, and its 128 MB of
		// merged events then flow through JetStream and the batcher, whose memory is measured by make bench.
		if n < 2 && peak > 512 {
			t.Fatalf("s3dest dev peaked at %.0f MB, over the 512 MB bound", peak)
		}
	}
}
