package copier

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/cursor"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

const (
	testWorkspace    = "ws-copier-test"
	testIntermediate = "arn:aws:iam::000000000000:role/s3dest-intermediate"
	testStaging      = "s3dest-staging"
	testCredsKey     = "czNkZXN0LWNvcGllci10ZXN0LWtleS0zMi1ieXRlcyE=" // tests only
)

// env is the copier's world in a test: embedded JetStream, redis-server, MinIO behind the STS trust
// gate, a workspace, and two recording proxies we own: stsProxy in front of the gate counts AssumeRole
// calls and remembers every credential it hands out (so the logs can be searched for them); s3Router in
// front of MinIO records each write's ACL and can send one bucket's traffic through another address (a
// toxiproxy) or fail chosen requests.
type env struct {
	ctx      context.Context
	natsURL  string
	js       jetstream.JetStream
	g        *testenv.Gate
	redisURL string
	rdb      *redis.Client
	store    *configstore.Store
	logs     *lockedBuffer

	stsURL string
	s3URL  string
	// tel is the telemetry (metrics registry) of the last copier process started.
	tel *platform.Telemetry
	// replayStore is the REPLAYS bucket once a test used it (replays).
	replayStore *configstore.Replays

	mu       sync.Mutex
	assumes  map[string]int    // role ARN → AssumeRole calls that reached the gate
	secrets  []string          // every secret the gate handed out, and ours
	acls     map[string]string // /bucket/key → x-amz-acl of the write
	via      map[string]string // bucket → host:port its requests go through
	fault    func(r *http.Request) (status int, code string)
	regions  map[string]string // bucket → the region S3 says it is in (MinIO has one region for all)
	requests map[string]int    // "METHOD /bucket" → requests that reached the router
	// writes counts, per /bucket/key, the whole-object writes (PUT without a part number) by the status
	// they were answered: 200 stored the object, 412 was If-None-Match finding it there.
	writes map[string]map[int]int
	// body, when set, is asked about each write (PUT, POST); the function it returns, if any, sees the
	// bytes of the request's body read so far, and cuts the request there (a 502 to the client, a
	// truncated body to MinIO) when it returns true.
	body func(r *http.Request) func(read int64) (cut bool)
}

// watchedBody is a request body that a test watches, and may cut, as it is read.
type watchedBody struct {
	io.ReadCloser
	read  int64
	watch func(read int64) bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if b.watch(b.read) {
		return n, errors.New("cut by the test")
	}
	return n, err
}

func newEnv(t testing.TB) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs MinIO, redis-server and embedded NATS; run without -short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns, _, js := testenv.NATS(t)
	redisURL, rdb := testenv.Redis(t)
	g := testenv.StartGate(t)
	g.CreateBucket(t, testStaging)
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateWorkspace(ctx, &configv1.Workspace{Id: testWorkspace, Name: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: ctx, natsURL: ns.URL(), js: js, g: g, redisURL: redisURL, rdb: rdb, store: store, logs: &lockedBuffer{},
		assumes: map[string]int{}, acls: map[string]string{}, regions: map[string]string{}, via: map[string]string{}, requests: map[string]int{}, writes: map[string]map[int]int{},
		secrets: []string{g.MinIO.RootPassword, testCredsKey}}
	g.PutIntermediateRole(t, testIntermediate)

	sts := httptest.NewServer(e.stsHandler(g.URL))
	t.Cleanup(sts.Close)
	s3srv := httptest.NewServer(e.s3Handler(g.MinIO.URL))
	t.Cleanup(s3srv.Close)
	e.stsURL, e.s3URL = sts.URL, s3srv.URL
	return e
}

func mustPolicy(t testing.TB, doc string) localaws.Policy {
	t.Helper()
	p, err := localaws.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proxyTo forwards to target keeping the Host the client signed.
func proxyTo(target string) *httputil.ReverseProxy {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		host := r.Host
		director(r)
		r.Host = host
	}
	return rp
}

type stsCreds struct {
	AccessKeyID     string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
	SecretAccessKey string `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
	SessionToken    string `xml:"AssumeRoleResult>Credentials>SessionToken"`
}

func (e *env) stsHandler(target string) http.Handler {
	rp := proxyTo(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var c stsCreds
		if xml.Unmarshal(body, &c) == nil && c.SecretAccessKey != "" {
			e.mu.Lock()
			e.secrets = append(e.secrets, c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
			e.mu.Unlock()
		}
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") == "AssumeRole" {
			e.mu.Lock()
			e.assumes[form.Get("RoleArn")]++
			e.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})
}

func (e *env) s3Handler(target string) http.Handler {
	direct := proxyTo(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		e.mu.Lock()
		e.requests[r.Method+" /"+bucket]++
		if r.Method == http.MethodPut || (r.Method == http.MethodPost && r.URL.Query().Has("uploads")) {
			e.acls[r.URL.Path] = r.Header.Get("X-Amz-Acl")
		}
		via, fault, region, body := e.via[bucket], e.fault, e.regions[bucket], e.body
		e.mu.Unlock()
		if body != nil && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			if watch := body(r); watch != nil {
				r.Body = &watchedBody{ReadCloser: r.Body, watch: watch}
			}
		}
		if m := signingRegion.FindStringSubmatch(r.Header.Get("Authorization")); region != "" && m != nil && m[1] != region {
			// What S3 answers a request signed for another region than the bucket's.
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Amz-Bucket-Region", region)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region '%s' is wrong; expecting '%s'</Message><Region>%s</Region></Error>`, m[1], region, region)
			return
		}
		if fault != nil {
			if status, code := fault(r); status != 0 {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test</Message></Error>`, code)
				return
			}
		}
		if r.Method == http.MethodPut && !r.URL.Query().Has("partNumber") {
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			defer func() {
				e.mu.Lock()
				if e.writes[r.URL.Path] == nil {
					e.writes[r.URL.Path] = map[int]int{}
				}
				e.writes[r.URL.Path][rec.status]++
				e.mu.Unlock()
			}()
			w = rec
		}
		if via != "" {
			proxyTo("http://"+via).ServeHTTP(w, r)
			return
		}
		direct.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the real writer (the reverse proxy flushes through it).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

var signingRegion = regexp.MustCompile(`Credential=[^/]+/[0-9]+/([^/]+)/s3/`)

func (e *env) assumeCalls(role string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.assumes[role]
}

// customerRole creates (or replaces) a customer role trusting our intermediate role with the workspace
// as External ID (externalID overrides it: a wrong one breaks the trust), allowed to write under
// bucket/{prefix/}segment-logs/.
func (e *env) customerRole(t testing.TB, arn, bucketSetting, externalID string) {
	t.Helper()
	if externalID == "" {
		externalID = testWorkspace
	}
	bucket, prefix, err := layout.SplitBucket(bucketSetting)
	if err != nil {
		t.Fatal(err)
	}
	e.g.Dir.PutRole(localaws.Role{ARN: arn,
		TrustPolicy: mustPolicy(t, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":%q}}}]}`,
			testIntermediate, externalID)),
		PermissionPolicies: []localaws.Policy{mustPolicy(t, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:PutObjectAcl","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::%s/%ssegment-logs/*"}]}`, bucket, prefix))}})
}

// referenceRole creates a customer role with exactly the reference's documents: the trust policy with
// our intermediate role as Principal and the workspace as External ID, and the PutObjectsInBucket
// permission policy (s3:PutObject and s3:PutObjectAcl on bucket/segment-logs/*, nothing else: no
// s3:AbortMultipartUpload).
func (e *env) referenceRole(t testing.TB, arn, bucket string) {
	t.Helper()
	e.g.Dir.PutRole(localaws.Role{ARN: arn,
		TrustPolicy: mustPolicy(t, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":%q}}}]}`,
			testIntermediate, testWorkspace)),
		PermissionPolicies: []localaws.Policy{mustPolicy(t, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"PutObjectsInBucket","Effect":"Allow","Action":["s3:PutObject","s3:PutObjectAcl"],"Resource":"arn:aws:s3:::%s/segment-logs/*"}]}`, bucket))}})
}

// destination stores an enabled AWS S3 destination of source.
func (e *env) destination(t testing.TB, id, source, bucketSetting, role, region string) *configv1.Destination {
	t.Helper()
	d := &configv1.Destination{Id: id, Name: id, Enabled: true, SourceId: source,
		Metadata:  &configv1.DestinationMetadata{Id: layout.AWSS3MetadataID, Slug: "aws-s3"},
		Settings:  &configv1.DestinationSettings{Region: region, S3Bucket: bucketSetting, IamRoleArn: role},
		CreatedAt: timestamppb.New(time.Now().Add(-time.Second))}
	if err := e.store.PutDestination(e.ctx, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) putDestination(t *testing.T, d *configv1.Destination) {
	t.Helper()
	if err := e.store.PutDestination(e.ctx, d); err != nil {
		t.Fatal(err)
	}
}

// stage writes a gzip file of the given NDJSON lines into staging and announces it, as the stager does.
func (e *env) stage(t testing.TB, source string, day int64, name string, lines ...string) *batchv1.BatchStaged {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, l := range lines {
		fmt.Fprintln(zw, l)
	}
	_ = zw.Close()
	return e.stageBytes(t, source, day, name, int64(len(lines)), buf.Bytes())
}

func (e *env) stageBytes(t testing.TB, source string, day int64, name string, events int64, body []byte) *batchv1.BatchStaged {
	t.Helper()
	st := e.putStaged(t, source, day, name, events, body)
	e.announce(t, st)
	return st
}

// putStaged writes a file into staging, not yet announced (announce does).
func (e *env) putStaged(t testing.TB, source string, day int64, name string, events int64, body []byte) *batchv1.BatchStaged {
	t.Helper()
	key := fmt.Sprintf("staging/%s/%d/%s.gz", source, day, name)
	if _, err := e.g.RootS3().PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(testStaging), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}); err != nil {
		t.Fatal(err)
	}
	st := &batchv1.BatchStaged{
		Batch: &batchv1.Batch{BatchId: name, SourceId: source, ReceivedDayMs: day, EventCount: events,
			SizeBytes: int64(len(body)), FileName: name + ".gz", SealedAt: timestamppb.Now(),
			Sha256: fmt.Sprintf("%x", sha256.Sum256(body))},
		StagingBucket: testStaging, StagingKey: key,
	}
	return st
}

// announce publishes a staged file on batch.staged, as the stager does once it is in staging.
func (e *env) announce(t testing.TB, st *batchv1.BatchStaged) {
	t.Helper()
	b := st.GetBatch()
	if _, err := bus.Publish(e.ctx, e.js, bus.StagedSubject(b.GetSourceId()), st, "staged."+b.GetSourceId()+"."+b.GetBatchId()); err != nil {
		t.Fatal(err)
	}
}

// config is the copier's configuration for this env.
func (e *env) config() Config {
	return Config{
		Common: platform.Common{NATSURL: e.natsURL, LogLevel: "debug", Replicas: 1, AckWait: 5 * time.Second},
		Config: awsclient.Config{Region: "us-east-1", STSEndpoint: e.stsURL, S3Endpoint: e.s3URL, PathStyle: true,
			AccessKeyID: e.g.MinIO.RootUser, SecretAccessKey: e.g.MinIO.RootPassword, IntermediateRoleARN: testIntermediate,
			ResponseTimeout: 10 * time.Second},
		RedisURL: e.redisURL, StagingBucket: testStaging, CredentialsKey: testCredsKey,
		Workers: 2, Rate: 50, Burst: 10, FailingRetry: time.Second, ReplayLease: 5 * time.Second,
	}
}

// process is what platform.Main hands a service: its debug logs go to e.logs.
func (e *env) process(t testing.TB) *platform.Process {
	t.Helper()
	tel, err := platform.NewTelemetry(e.ctx, "copier-test")
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.tel = tel
	e.mu.Unlock()
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	js, err := jetstream.New(mustConnect(t, e.natsURL))
	if err != nil {
		t.Fatal(err)
	}
	return &platform.Process{Log: log, Telemetry: tel, JS: js}
}

// start runs a copier until the test ends.
func (e *env) start(t testing.TB, cfg Config) *Copier {
	t.Helper()
	return e.startWith(t, cfg, e.process(t))
}

// startWith runs a copier on p until the test ends.
func (e *env) startWith(t testing.TB, cfg Config, p *platform.Process) *Copier {
	t.Helper()
	c, err := New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("copier stopped with %v", err)
		}
	})
	return c
}

// keys lists a bucket's keys.
func (e *env) keys(t testing.TB, bucket string) []string {
	t.Helper()
	out, err := e.g.RootS3().ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list %s: %v", bucket, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func (e *env) waitKeys(t testing.TB, bucket string, n int) []string {
	t.Helper()
	var keys []string
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("%d files in %s", n, bucket), func() bool {
		keys = e.keys(t, bucket)
		return len(keys) >= n
	})
	return keys
}

// laneIdle reports whether a destination's lane has passed at least one file and has nothing pending:
// every staged file of its source is delivered (or skipped) and acknowledged.
func (e *env) laneIdle(destinationID string) bool {
	s, err := e.js.Stream(e.ctx, "BATCHES")
	if err != nil {
		return false
	}
	c, err := s.Consumer(e.ctx, bus.CopierConsumer(destinationID))
	if err != nil {
		return false
	}
	ci, err := c.Info(e.ctx)
	return err == nil && ci.AckFloor.Stream > 0 && ci.NumPending == 0 && ci.NumAckPending == 0
}

// lastError is what the admin status API shows for (destination, day).
func (e *env) lastError(t testing.TB, dest string, day int64) string {
	t.Helper()
	d, _, err := cursor.New(e.rdb, time.Hour).Get(e.ctx, cursor.Delivered, dest, day)
	if err != nil {
		t.Fatal(err)
	}
	return d.LastError
}

// scanForSecrets fails the test if the logs hold any credential the run used or handed out.
func (e *env) scanForSecrets(t *testing.T) {
	t.Helper()
	logs := e.logs.String()
	e.mu.Lock()
	secrets := append([]string(nil), e.secrets...)
	e.mu.Unlock()
	if len(secrets) < 5 {
		t.Fatalf("only %d secrets collected: the run assumed no role, so the scan proves nothing", len(secrets))
	}
	if !strings.Contains(logs, `"msg":"delivered"`) {
		t.Fatal("the logs hold no delivery: the scan proves nothing")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the copier's logs hold a secret (%d chars starting %q)", len(s), s[:4])
		}
	}
}

func mustConnect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// lockedBuffer collects log lines from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const day1 = int64(1767225600000) // 2026-01-01T00:00:00Z
