package copier

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"

	"github.com/s3dest/s3dest/pkg/awsclient"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/s3put"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// BenchmarkCopy measures the copier's delivery rate next to MinIO's raw PutObject rate, in the same run
// on the same MinIO, both with as many files in flight as a destination's lane has workers (the default
// --copier-workers, 2). A delivery is the copier's whole job for one file: the marker check, the role's
// credentials from the Redis cache, a GET from staging streamed into a PutObject (ACL, SHA-256 checksum,
// If-None-Match), then the delivered message, the cursor and the marker. Raw is a PutObject of the same
// bytes from memory with the same request (objectOptions: the same checksum, ACL and If-None-Match), so the
// difference is what copying adds; the SDK's default PutObject (its own checksum and payload hash, no
// condition) is reported beside it, and so is the least any copier must do: the staged file's GET
// streamed into that PutObject, with the role's credentials and nothing else. The metrics are each
// one's MB/s over the run.
//
//	go test -run '^$' -bench BenchmarkCopy -benchtime 3x ./services/copier
func BenchmarkCopy(b *testing.B) {
	e := newEnv(b)
	e.g.CreateBucket(b, "bench")
	const role = "arn:aws:iam::111111111111:role/bench"
	e.customerRole(b, role, "bench", "")
	d := e.destination(b, "dest-bench", "src-bench", "bench", role, "us-east-1")
	cfg := e.config()
	cfg.S3Endpoint, cfg.STSEndpoint = e.g.MinIO.URL, e.g.URL // no recording proxy in the way
	cfg.Rate, cfg.Burst = 1000, 100
	workers := cfg.Workers
	c, err := New(cfg, e.process(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(e.ctx); err != nil {
		b.Fatal(err)
	}
	root := e.g.RootS3()
	seq := atomic.Int64{} // keys stay distinct across -count runs: a key written before would be skipped as existing
	// Each op is rounds of files per side in turn, so that all three see the same machine.
	for _, c0 := range []struct{ size, files, rounds int }{{1 << 20, 8, 5}, {100 << 20, 2, 2}} {
		size := c0.size
		body := make([]byte, size)
		rng := rand.New(rand.NewPCG(uint64(size), 7))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("%dMB", size>>20)
		staged := e.stageBytes(b, "src-bench", day1, "bench-"+name, 1, body)
		sum := staged.GetBatch().GetSha256()
		b.Run(name, func(b *testing.B) {
			var raw, sdk, stream, copied time.Duration
			timed := func(f func() error) time.Duration {
				d, err := inFlight(workers, c0.files, f)
				if err != nil {
					b.Fatal(err)
				}
				return d
			}
			n := 0
			for b.Loop() {
				for range c0.rounds {
					n += c0.files
					raw += timed(func() error {
						_, err := s3put.Upload(e.ctx, root, bytes.NewReader(body), objectOptions("bench", fmt.Sprintf("raw/%s/%d", name, seq.Add(1)), staged.GetBatch()))
						return err
					})
					sdk += timed(func() error {
						_, err := root.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String(fmt.Sprintf("sdk/%s/%d", name, seq.Add(1))),
							Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(size))})
						return err
					})
					copied += timed(func() error {
						id := fmt.Sprintf("%s-%d", name, seq.Add(1))
						st := &batchv1.BatchStaged{Batch: &batchv1.Batch{BatchId: id, SourceId: "src-bench", ReceivedDayMs: day1,
							EventCount: 1, SizeBytes: int64(size), FileName: id + ".gz", Sha256: sum},
							StagingBucket: staged.GetStagingBucket(), StagingKey: staged.GetStagingKey()}
						return c.deliver(e.ctx, st, d, testWorkspace, nil)
					})
					stream += timed(func() error {
						creds, err := c.creds.get(e.ctx, d, testWorkspace)
						if err != nil {
							return err
						}
						key := layout.ObjectKey("", "src-bench", day1, fmt.Sprintf("stream-%d.gz", seq.Add(1)))
						_, err = c.copyOnce(e.ctx, staged, c.clients.S3(creds, "us-east-1"), objectOptions("bench", key, staged.GetBatch()))
						return err
					})
				}
			}
			mb := float64(n) * float64(size) / 1e6
			b.ReportMetric(mb/stream.Seconds(), "GetObject→PutObject-MB/s")
			b.ReportMetric(mb/raw.Seconds(), "raw-PutObject-MB/s")
			b.ReportMetric(mb/sdk.Seconds(), "sdk-PutObject-MB/s")
			b.ReportMetric(mb/copied.Seconds(), "copier-MB/s")
			b.ReportMetric(100*raw.Seconds()/copied.Seconds(), "copier/raw-%")
		})
	}
}

// inFlight runs n calls of f, workers at a time, and returns how long they took or the first error.
func inFlight(workers, n int, f func() error) (time.Duration, error) {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := f(); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// BenchmarkSTSCallsPerDestinationPerHour runs 4 copiers' credential caches on one Redis against a
// local STS whose sessions are scaled down 600 times (one hour lasts 6 s, the 10-minute refresh margin 1
// s): every simulated minute each copier asks for the credentials of each of 10 destinations. It reports
// the AssumeRole calls per destination per simulated hour (target: at most 2) and our intermediate
// role's calls per copier per hour.
func BenchmarkSTSCallsPerDestinationPerHour(b *testing.B) {
	if testing.Short() {
		b.Skip("needs redis-server; run without -short")
	}
	const (
		scale        = 600
		copiers      = 4
		destinations = 10
		hours        = 3
		principalKey = "AKIABENCHPRINCIPAL00"
		principalSec = "bench-principal-secret"
	)
	redisURL, _ := testenv.Redis(b)
	dir := localaws.NewDirectory()
	principal := "arn:aws:iam::000000000000:user/s3dest"
	dir.AddIdentity(localaws.Identity{AccessKeyID: principalKey, SecretAccessKey: principalSec, PrincipalARN: principal})
	dir.PutRole(localaws.Role{ARN: testIntermediate,
		TrustPolicy:        mustPolicy(b, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole"}]}`, principal)),
		PermissionPolicies: []localaws.Policy{mustPolicy(b, `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`)}})
	var dests []*configv1.Destination
	for i := range destinations {
		arn := fmt.Sprintf("arn:aws:iam::11111111111%d:role/r", i)
		dir.PutRole(localaws.Role{ARN: arn, TrustPolicy: mustPolicy(b, fmt.Sprintf(
			`{"Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":%q}}}]}`, testIntermediate, testWorkspace))})
		dests = append(dests, &configv1.Destination{Id: fmt.Sprintf("d%d", i), Settings: &configv1.DestinationSettings{IamRoleArn: arn, S3Bucket: "b", Region: "us-east-1"}})
	}
	srv, err := localaws.NewSTSServer(dir, localaws.STSConfig{Region: "us-east-1", Issuer: scaledIssuer{scale}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[string]int{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if f, err := url.ParseQuery(string(body)); err == nil && f.Get("Action") == "AssumeRole" {
			mu.Lock()
			calls[f.Get("RoleArn")]++
			mu.Unlock()
		}
		srv.ServeHTTP(w, r)
	}))
	b.Cleanup(ts.Close)

	ctx := context.Background()
	opts, _ := redis.ParseURL(redisURL)
	var caches []*credCache
	for range copiers {
		rdb := redis.NewClient(opts)
		b.Cleanup(func() { rdb.Close() })
		cl, err := awsclient.New(ctx, awsclient.Config{Region: "us-east-1", STSEndpoint: ts.URL, AccessKeyID: principalKey, SecretAccessKey: principalSec, IntermediateRoleARN: testIntermediate}, nil)
		if err != nil {
			b.Fatal(err)
		}
		cc, err := newCredCache(rdb, testCredsKey, cl, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		cc.refresh = refreshBefore / scale
		caches = append(caches, cc)
	}
	minute := time.Minute / scale
	var failures atomic.Int64
	for b.Loop() {
		mu.Lock()
		clear(calls)
		mu.Unlock()
		t := time.NewTicker(minute)
		for range hours * 60 {
			var wg sync.WaitGroup
			for _, cc := range caches {
				for _, d := range dests {
					wg.Go(func() {
						if _, err := cc.get(ctx, d, testWorkspace); err != nil {
							failures.Add(1)
						}
					})
				}
			}
			wg.Wait()
			<-t.C
		}
		t.Stop()
	}
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d credential requests failed", n)
	}
	mu.Lock()
	defer mu.Unlock()
	customer := 0
	for _, d := range dests {
		customer += calls[d.GetSettings().GetIamRoleArn()]
	}
	b.ReportMetric(float64(customer)/destinations/hours, "AssumeRole/destination/hour")
	b.ReportMetric(float64(calls[testIntermediate])/copiers/hours, "intermediate/copier/hour")
}

// scaledIssuer mints local credentials whose lifetime is the requested one divided by scale.
type scaledIssuer struct{ scale int }

func (s scaledIssuer) Issue(ctx context.Context, r localaws.Role, session string, d time.Duration) (localaws.Identity, error) {
	id, err := localaws.LocalIssuer{}.Issue(ctx, r, session, d)
	id.Expires = time.Now().Add(d / time.Duration(s.scale))
	return id, err
}
