package copier

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// Two copiers share one destination's lane (its durable consumer): under a few hundred staged files,
// each file is written to the customer's bucket exactly once (one 200 PUT per key at the bucket), both
// copiers deliver some of them, and nothing is left pending.
func TestTwoCopiersSharingALaneWriteEachFileOnce(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "shared")
	const role = "arn:aws:iam::111111111111:role/shared"
	e.customerRole(t, role, "shared", "")
	e.destination(t, "dest-shared", "src-shared", "shared", role, "us-east-1")
	cfg := e.config()
	cfg.Workers, cfg.Rate, cfg.Burst = 4, 1000, 100
	logs := [2]*lockedBuffer{{}, {}}
	for i := range logs {
		p := e.process(t)
		p.Log = slog.New(slog.NewJSONHandler(io.MultiWriter(e.logs, logs[i]), &slog.HandlerOptions{Level: slog.LevelDebug}))
		e.startWith(t, cfg, p)
	}

	const files = 300
	for i := range files {
		e.stage(t, "src-shared", day1, fmt.Sprintf("f-%03d", i), fmt.Sprintf(`{"messageId":"m-%d"}`, i))
	}
	keys := e.waitKeys(t, "shared", files)
	testenv.Eventually(t, 30*time.Second, "the shared lane to have nothing pending", func() bool { return e.laneIdle("dest-shared") })
	if len(keys) != files {
		t.Fatalf("the bucket holds %d files, want %d", len(keys), files)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	refused := 0
	for _, k := range keys {
		w := e.writes["/shared/"+k]
		if w[http.StatusOK] != 1 {
			t.Errorf("%s was written %d times (answers %v), want once", k, w[http.StatusOK], w)
		}
		refused += w[http.StatusPreconditionFailed]
	}
	delivered := [2]int{}
	for i, l := range logs {
		delivered[i] = strings.Count(l.String(), `"msg":"delivered"`)
		if delivered[i] == 0 {
			t.Errorf("copier %d delivered nothing: the lane was not shared, the test proves nothing", i+1)
		}
	}
	t.Logf("%d files: copier 1 delivered %d, copier 2 %d; %d second writes refused by If-None-Match", files, delivered[0], delivered[1], refused)
}
