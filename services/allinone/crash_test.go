package allinone

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// buildS3dest builds bin/s3dest into dir.
func buildS3dest(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "s3dest")
	build := exec.Command("go", "build", "-o", exe, "./services/allinone/cmd/s3dest")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build s3dest: %v\n%s", err, out)
	}
	return exe
}

// devProcess is `s3dest dev` in a process of its own.
type devProcess struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan error
	sum    Summary
}

// startDevProcess runs `s3dest dev` on free ports, with flags after the defaults (a later flag wins) and
// env added to the environment, and waits for its summary. Its log is shown if the test fails.
func startDevProcess(t *testing.T, exe, dataDir string, env []string, flags ...string) *devProcess {
	t.Helper()
	summary := filepath.Join(dataDir, "summary.json")
	os.Remove(summary)
	args := append([]string{"dev", "--data-dir", dataDir, "--summary-file", summary, "--log-level", "warn",
		"--tracking-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--admin-grpc-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0",
		"--sts-addr", "127.0.0.1:0", "--nats-addr", "127.0.0.1:0", "--redis-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"}, flags...)
	cmd := exec.Command(exe, args...)
	// The machine's CLI stays logged in where it was (dev logs it in by default).
	cmd.Env = append(append(os.Environ(), "S3DEST_CLI_LOGIN=false"), env...)
	p := &devProcess{cmd: cmd, out: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("s3dest dev log:\n%s", p.out.String())
		}
	})
	testenv.Eventually(t, 60*time.Second, "the dev summary", func() bool {
		select {
		case err := <-p.exited:
			t.Fatalf("s3dest dev exited before it was ready: %v\n%s", err, p.out.String())
		default:
		}
		data, err := os.ReadFile(summary)
		return err == nil && json.Unmarshal(data, &p.sum) == nil
	})
	return p
}

// sendBatches sends requests of perRequest events and returns how many were answered 200; it stops at
// the first request that fails, as a client would when the server died under it.
func sendBatches(t *testing.T, sum Summary, prefix string, requests, perRequest int) int {
	t.Helper()
	for r := range requests {
		var events []string
		for i := range perRequest {
			events = append(events, fmt.Sprintf(`{"type":"track","userId":"u","event":"E","messageId":"%s-%d-%d"}`, prefix, r, i))
		}
		req, _ := http.NewRequest(http.MethodPost, sum.TrackingURL+"/v1/batch", strings.NewReader(`{"batch":[`+strings.Join(events, ",")+`]}`))
		req.SetBasicAuth(sum.WriteKey, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return r // the process died mid-request: this request may or may not have been stored
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", r, resp.StatusCode)
		}
	}
	return requests
}

// Each failpoint kills `s3dest dev` with SIGKILL at one step of the pipeline; after a restart every
// accepted event is in the customer's bucket exactly once.
func TestEveryEventArrivesOnceWhateverStepACrashHits(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills s3dest dev processes: skipped under -short")
	}
	exe := buildS3dest(t)
	for _, fp := range []string{"batcher.mid-file:2", "batcher.after-store", "batcher.after-sealed", "stager.mid-upload", "stager.after-upload", "copier.mid-upload"} {
		t.Run(fp, func(t *testing.T) {
			dataDir := t.TempDir()
			first := startDevProcess(t, exe, dataDir, []string{"S3DEST_FAILPOINT=" + fp, "S3DEST_ACK_WAIT=2s"}, "--flush-interval", "300ms")
			accepted := sendBatches(t, first.sum, "e", 3, 100)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("accepted %d requests; first run's log:\n%s", accepted, first.out.String())
				}
			})
			select {
			case err := <-first.exited:
				if err == nil || !strings.Contains(err.Error(), "killed") {
					t.Fatalf("want the failpoint's SIGKILL, got %v\n%s", err, first.out.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("failpoint %s never fired", fp)
			}

			second := startDevProcess(t, exe, dataDir, []string{"S3DEST_ACK_WAIT=2s"}, "--flush-interval", "300ms")
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("second run's log:\n%s", second.out.String())
				}
			})
			// Accepted requests must arrive exactly once; the request in flight at the crash at most once.
			counts := deliveredUntil(t, second.sum, "every accepted event", func(counts map[string]int, _ int) bool {
				for r := range accepted {
					for i := range 100 {
						if counts[fmt.Sprintf("e-%d-%d", r, i)] == 0 {
							return false
						}
					}
				}
				return true
			})
			total := 0
			for r := range 3 {
				for i := range 100 {
					n := counts[fmt.Sprintf("e-%d-%d", r, i)]
					total += n
					if (r < accepted && n != 1) || n > 1 {
						t.Fatalf("event e-%d-%d delivered %d times", r, i, n)
					}
				}
			}
			// Nothing more arrives later: the count holds while redeliveries (ack wait 2s) would happen.
			cli := rootS3(second.sum)
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				lines := 0
				for _, key := range listKeys(t, cli, second.sum.Bucket, "segment-logs/") {
					lines += len(readLines(t, cli, second.sum.Bucket, key))
				}
				if lines != total {
					t.Fatalf("bucket later holds %d lines, want %d", lines, total)
				}
			}
		})
	}
}
