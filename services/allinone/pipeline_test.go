package allinone

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/configstore"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/pkg/testenv"
	"github.com/s3dest/s3dest/services/admin"
)

// aclRecorder is a reverse proxy in front of MinIO that remembers the x-amz-acl header of every write:
// MinIO ignores ACLs, so this is how the test sees that the copier sends bucket-owner-full-control.
type aclRecorder struct {
	mu   sync.Mutex
	acls map[string]string // path → x-amz-acl of the write that created it
}

func (a *aclRecorder) handler(target string) http.Handler {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		host := r.Host // SigV4 signed the proxy's host: keep it
		director(r)
		r.Host = host
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || (r.Method == http.MethodPost && r.URL.Query().Has("uploads")) {
			a.mu.Lock()
			a.acls[r.URL.Path] = r.Header.Get("X-Amz-Acl")
			a.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})
}

func policyOf(t *testing.T, doc string) localaws.Policy {
	t.Helper()
	p, err := localaws.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// minioPipeline is every service of the pipeline in this process, against embedded NATS, redis-server and
// MinIO behind the STS trust gate, with a workspace and our intermediate role; run starts it.
type minioPipeline struct {
	g     *testenv.Gate
	store *configstore.Store
	ws    *configv1.Workspace
	plan  *pipeline
	log   *slog.Logger
	spans *tracetest.SpanRecorder
}

// intermediateRole is the role the pipelines of these tests assume first.
const intermediateRole = "arn:aws:iam::000000000000:role/s3dest-intermediate"

// newMinIOPipeline builds the pipeline; s3Endpoint, when set, turns MinIO's URL into the one the services
// use (a recording proxy in front of it).
func newMinIOPipeline(t *testing.T, ctx context.Context, workspaceID string, s3Endpoint func(minioURL string) string) *minioPipeline {
	t.Helper()
	ns, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	g := testenv.StartGate(t)
	g.PutIntermediateRole(t, intermediateRole)
	endpoint := g.MinIO.URL
	if s3Endpoint != nil {
		endpoint = s3Endpoint(endpoint)
	}
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := admin.EnsureWorkspace(ctx, store, workspaceID)
	if err != nil {
		t.Fatal(err)
	}
	tel, err := platform.NewTelemetry(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tel.Tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := &platform.Process{Log: log, Telemetry: tel, NATS: nc, JS: js}
	key := make([]byte, 32)
	sec := secrets{AdminToken: "test-admin-token-0123456789", ValidatorToken: "test-validator-token-0123456789", CredentialsKey: base64.StdEncoding.EncodeToString(key)}
	awsCfg := awsclient.Config{Region: "us-east-1", STSEndpoint: g.URL, S3Endpoint: endpoint, PathStyle: true,
		AccessKeyID: g.MinIO.RootUser, SecretAccessKey: g.MinIO.RootPassword, IntermediateRoleARN: intermediateRole}
	plan, err := newPipeline(ctx, devConfig(t, t.TempDir()), sec, p, store, awsCfg, ns.URL(), redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plan.close)
	return &minioPipeline{g: g, store: store, ws: ws, plan: plan, log: log, spans: spans}
}

// customerRole creates a role trusting our intermediate role with the workspace as External ID and
// allowed to write under bucketPath/segment-logs/.
func (m *minioPipeline) customerRole(t *testing.T, arn, bucket, bucketPath string) {
	t.Helper()
	m.g.Dir.PutRole(localaws.Role{ARN: arn,
		TrustPolicy:        policyOf(t, trustPolicy(intermediateRole, m.ws.GetId())),
		PermissionPolicies: []localaws.Policy{policyOf(t, strings.ReplaceAll(permissionPolicy(bucket), bucket+"/segment-logs/*", bucketPath+"/segment-logs/*"))}})
}

// run starts every service until ctx ends; the channel gets Run's result.
func (m *minioPipeline) run(t *testing.T, ctx context.Context) <-chan error {
	t.Helper()
	group := service.NewGroup(m.log, m.plan.services...)
	done := make(chan error, 1)
	go func() { done <- group.Run(ctx) }()
	testenv.Eventually(t, 30*time.Second, "the pipeline to start", group.Ready)
	return done
}

func TestThePipelineDeliversIntoMinIOThroughTheSTSGate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &aclRecorder{acls: map[string]string{}}
	mp := newMinIOPipeline(t, ctx, "ws-minio-e2e", func(minioURL string) string {
		proxy := httptest.NewServer(rec.handler(minioURL))
		t.Cleanup(proxy.Close)
		return proxy.URL
	})
	g, plan, spans := mp.g, mp.plan, mp.spans
	g.CreateBucket(t, "cust")
	const customer = "arn:aws:iam::111111111111:role/acme-s3dest"
	mp.customerRole(t, customer, "cust", "cust/acme/logs")

	src, err := plan.admin.CreateSource(ctx, &adminv1.CreateSourceRequest{Slug: "acme-web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.admin.CreateDestination(ctx, &adminv1.CreateDestinationRequest{
		SourceId: src.GetData().GetSource().GetId(), MetadataId: layout.AWSS3MetadataID,
		Settings: &configv1.DestinationSettings{Region: "us-east-1", S3Bucket: "cust/acme/logs", IamRoleArn: customer},
	}); err != nil {
		t.Fatal(err)
	}

	done := mp.run(t, ctx)
	lc, err := g.RootS3().GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(stagingBucket)})
	// The retention (7 days) plus the margin, in whole days: staged files outlive the copier's decision.
	if err != nil || len(lc.Rules) != 1 || aws.ToInt32(lc.Rules[0].Expiration.Days) != 8 {
		t.Fatalf("staging retention: %v %+v, want one rule expiring staging/ after 8 days", err, lc)
	}

	sum := Summary{TrackingURL: "http://" + plan.ingest.Addr(), WriteKey: src.GetData().GetSource().GetWriteKeys()[0]}
	batch := `{"batch":[
		{"type":"track","userId":"u1","event":"Signed Up","messageId":"m-1"},
		{"type":"identify","userId":"u1","traits":{"plan":"pro"},"messageId":"m-2"},
		{"type":"page","anonymousId":"a1","name":"Home","messageId":"m-3"}]}`
	req, _ := http.NewRequest(http.MethodPost, sum.TrackingURL+"/v1/batch", strings.NewReader(batch))
	req.SetBasicAuth(sum.WriteKey, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/batch = %d", resp.StatusCode)
	}

	cli := g.RootS3()
	keys := waitForObjects(t, cli, "cust", "", 1)
	if len(keys) != 1 {
		t.Fatalf("bucket holds %v, want one file", keys)
	}
	m := keyRE.FindStringSubmatch(keys[0])
	if m == nil || m[1] != "acme/logs/" || m[2] != src.GetData().GetSource().GetId() {
		t.Fatalf("key %q is not acme/logs/segment-logs/{sourceId}/{day}/{file}.gz", keys[0])
	}
	ids := map[string]bool{}
	for _, line := range readLines(t, cli, "cust", keys[0]) {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		ids[ev["messageId"].(string)] = true
	}
	if len(ids) != 3 || !ids["m-1"] || !ids["m-2"] || !ids["m-3"] {
		t.Fatalf("delivered messageIds %v, want m-1, m-2, m-3 once each", ids)
	}
	rec.mu.Lock()
	acl := rec.acls["/cust/"+keys[0]]
	rec.mu.Unlock()
	if acl != "bucket-owner-full-control" {
		t.Fatalf("the copier wrote %s with x-amz-acl %q, want bucket-owner-full-control", keys[0], acl)
	}

	// One trace follows the request: HTTP → events.<src> → seal → stage → copy → the S3 calls.
	testenv.Eventually(t, 10*time.Second, "the copy spans to end", func() bool { return len(spansNamed(spans, "copier.copy")) > 0 })
	httpSpans := spansNamed(spans, "tracking /v1/batch")
	if len(httpSpans) != 1 {
		var names []string
		for _, sp := range spans.Ended() {
			names = append(names, sp.Name())
		}
		t.Fatalf("got %d tracking spans, want 1; spans: %v", len(httpSpans), names)
	}
	traceID := httpSpans[0].SpanContext().TraceID()
	for _, name := range []string{"batcher.seal", "stager.stage", "copier.copy", "S3.PutObject", "STS.AssumeRole"} {
		found := false
		for _, sp := range spansNamed(spans, name) {
			found = found || sp.SpanContext().TraceID() == traceID
		}
		if !found {
			t.Errorf("no %s span in the request's trace %s", name, traceID)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("pipeline did not stop cleanly: %v", err)
	}
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == name {
			out = append(out, sp)
		}
	}
	return out
}

// testWriter sends log lines to the test log, shown when the test fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lockedBuffer collects a process's output safely.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
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
