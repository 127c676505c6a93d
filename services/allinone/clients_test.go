package allinone

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/s3dest/s3dest/pkg/testenv"
)

const clientEvents = 1000

// deliveredIDs waits until the demo bucket holds want lines and returns how often each messageId appears.
func deliveredIDs(t *testing.T, sum Summary, want int) map[string]int {
	t.Helper()
	return deliveredUntil(t, sum, fmt.Sprintf("%d lines in the bucket", want), func(_ map[string]int, lines int) bool { return lines >= want })
}

// deliveredUntil reads the demo bucket until done says so and returns how often each messageId appears.
func deliveredUntil(t *testing.T, sum Summary, what string, done func(counts map[string]int, lines int) bool) map[string]int {
	t.Helper()
	cli := rootS3(sum)
	counts := map[string]int{}
	lines := 0
	testenv.Eventually(t, 60*time.Second, what, func() bool {
		counts, lines = map[string]int{}, 0
		for _, key := range listKeys(t, cli, sum.Bucket, "segment-logs/") {
			for _, line := range readLines(t, cli, sum.Bucket, key) {
				var ev struct {
					MessageID string `json:"messageId"`
				}
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("line is not JSON: %s", line)
				}
				counts[ev.MessageID]++
				lines++
			}
		}
		return done(counts, lines)
	})
	return counts
}

func checkExactlyOnce(t *testing.T, counts map[string]int, prefix string) {
	t.Helper()
	for i := range clientEvents {
		if n := counts[prefix+strconv.Itoa(i)]; n != 1 {
			t.Fatalf("event %s%d delivered %d times, want once", prefix, i, n)
		}
	}
}

func TestSegmentsGoClientDeliversEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	sum, _ := runDev(t, devConfig(t, t.TempDir()))
	client, err := analytics.NewWithConfig(sum.WriteKey, analytics.Config{Endpoint: sum.TrackingURL, BatchSize: 100, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range clientEvents {
		if err := client.Enqueue(analytics.Track{MessageId: "go-" + strconv.Itoa(i), UserId: "go-user", Event: "Go Event",
			Properties: analytics.NewProperties().Set("seq", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, deliveredIDs(t, sum, clientEvents), "go-")
}

func TestSegmentsNodeClientDeliversEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack and Node.js: skipped under -short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("needs node (Node.js 18+) for the official Node client")
		}
		t.Skip("needs node (Node.js 18+) for the official Node client")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "send.js"} {
		data, err := os.ReadFile(filepath.Join("testdata", "node-client", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci @segment/analytics-node: %v\n%s", err, out)
	}
	sum, _ := runDev(t, devConfig(t, t.TempDir()))
	send := exec.Command(node, "send.js", sum.TrackingURL, sum.WriteKey, strconv.Itoa(clientEvents))
	send.Dir = dir
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	checkExactlyOnce(t, deliveredIDs(t, sum, clientEvents), "node-")
}
