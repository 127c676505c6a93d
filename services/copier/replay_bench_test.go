package copier

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"

	replayv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/replay/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// BenchmarkReplay measures a replay's delivery rate as a share of the same copier's live delivery rate,
// each end to end through a running copier on MinIO behind the STS gate: live is files staged and
// announced on batch.staged until the last is in the bucket (the lane, cfg.Workers files at a time);
// replay is the same number of files, the bucket emptied, from the replay's creation until it is done
// (one file at a time, at most 1/replayShare of the lane's rate, through the lane's limiter). A third
// phase measures live delivery again while a replay of an earlier day runs on the same destination: how
// much of its rate live delivery keeps. "default-rate" is the copier's default per-destination rate (20
// writes/s, burst 5), where a replay's share binds; "unthrottled" lifts it (1000/s), where only the one
// file at a time does. Each op stages files distinct from every earlier op's (a day of their own).
//
//	go test -run '^$' -bench BenchmarkReplay -benchtime 3x ./services/copier
func BenchmarkReplay(b *testing.B) {
	for _, tc := range []struct {
		name        string
		rate, burst int
		size, files int
	}{
		{"default-rate/64KB", 20, 5, 64 << 10, 40},
		{"unthrottled/1MB", 1000, 100, 1 << 20, 16},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b)
			bucket := "bench-replay"
			e.g.CreateBucket(b, bucket)
			const role = "arn:aws:iam::111111111111:role/bench-replay"
			e.customerRole(b, role, bucket, "")
			e.destination(b, "dest-bench-replay", "src-bench-replay", bucket, role, "us-east-1")
			cfg := e.config()
			cfg.S3Endpoint, cfg.STSEndpoint = e.g.MinIO.URL, e.g.URL // no recording proxy in the way
			cfg.Rate, cfg.Burst = tc.rate, tc.burst
			e.start(b, cfg)
			body := make([]byte, tc.size)
			rng := rand.New(rand.NewPCG(uint64(tc.size), 11))
			for i := range body {
				body[i] = byte(rng.Uint32())
			}
			var live, replay, during time.Duration
			var n, op int
			// stage puts count files of day into staging and returns a func announcing them: only the
			// announcement is timed, as only delivery is.
			stage := func(day int64, count int) func() {
				var files []*batchv1.BatchStaged
				for i := range count {
					files = append(files, e.putStaged(b, "src-bench-replay", day, fmt.Sprintf("d%d-f%d", day, i), 1, body))
				}
				return func() {
					for _, st := range files {
						e.announce(b, st)
					}
				}
			}
			waitDay := func(day int64, count int) {
				testenv.Eventually(b, 5*time.Minute, fmt.Sprintf("%d files of day %d", count, day), func() bool {
					out, err := e.g.RootS3().ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket),
						Prefix: aws.String(fmt.Sprintf("segment-logs/src-bench-replay/%d/", day))})
					return err == nil && len(out.Contents) >= count
				})
			}
			for b.Loop() {
				op++
				day := day1 + int64(op)*2*dayMs
				announce := stage(day, tc.files)
				start := time.Now()
				announce()
				waitDay(day, tc.files)
				live += time.Since(start)

				e.empty(b, bucket)
				start = time.Now()
				id := fmt.Sprintf("bench-%s-%d", sanitize(tc.name), op)
				e.replay(b, id, "dest-bench-replay", "src-bench-replay", day, day, false)
				if p := e.replayDone(b, id).GetProgress(); p.GetFilesWritten() != int64(tc.files) {
					b.Fatalf("the replay wrote %d files, want %d", p.GetFilesWritten(), tc.files)
				}
				replay += time.Since(start)

				// Live again, while a replay of this op's day (emptied once more) runs beside it.
				e.empty(b, bucket)
				next := day + dayMs
				announce = stage(next, tc.files)
				e.replay(b, id+"-beside", "dest-bench-replay", "src-bench-replay", day, day, false)
				testenv.Eventually(b, time.Minute, "a copier to take the replay", func() bool {
					rp, _, err := e.replays(b).Get(e.ctx, id+"-beside")
					return err == nil && rp.GetOwner() != ""
				})
				start = time.Now()
				announce()
				waitDay(next, tc.files)
				during += time.Since(start)
				rp := e.replayDone(b, id+"-beside")
				if rp.GetState() != replayv1.ReplayState_REPLAY_STATE_DONE {
					b.Fatalf("the replay beside live delivery ended %s", rp.GetState())
				}
				n += tc.files
			}
			mb := float64(n) * float64(tc.size) / 1e6
			b.ReportMetric(float64(n)/live.Seconds(), "live-files/s")
			b.ReportMetric(float64(n)/replay.Seconds(), "replay-files/s")
			b.ReportMetric(mb/live.Seconds(), "live-MB/s")
			b.ReportMetric(mb/replay.Seconds(), "replay-MB/s")
			b.ReportMetric(100*live.Seconds()/replay.Seconds(), "replay/live-%")
			b.ReportMetric(100*live.Seconds()/during.Seconds(), "live-beside-replay/live-%")
		})
	}
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c == '/' {
			out[i] = '-'
		}
	}
	return string(out)
}
