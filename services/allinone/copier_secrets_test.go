package allinone

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

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

// issuedSecrets is a proxy in front of the STS gate that remembers every credential it hands out.
type issuedSecrets struct {
	mu      sync.Mutex
	secrets []string
}

func (s *issuedSecrets) handler(target string) http.Handler {
	rp := (&aclRecorder{}).handler(target) // a plain reverse proxy keeping the signed Host
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		var c struct {
			AccessKeyID     string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
			SecretAccessKey string `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
			SessionToken    string `xml:"AssumeRoleResult>Credentials>SessionToken"`
		}
		if xml.Unmarshal(rec.Body.Bytes(), &c) == nil && c.SecretAccessKey != "" {
			s.mu.Lock()
			s.secrets = append(s.secrets, c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
			s.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = io.Copy(w, rec.Body)
	})
}

// A full run at debug level, through MinIO and the STS gate, including a destination whose role is
// refused and one whose writes are refused: no credential of ours, the customers' or the gate's appears in
// any service's log lines.
func TestTheLogsOfAFullRunHoldNoSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO, redis-server and embedded NATS; run without -short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	g := testenv.StartGate(t)
	g.CreateBucket(t, "cust")
	g.CreateBucket(t, "denied")
	issued := &issuedSecrets{}
	sts := httptest.NewServer(issued.handler(g.URL))
	t.Cleanup(sts.Close)
	acl := &aclRecorder{acls: map[string]string{}}
	s3proxy := httptest.NewServer(acl.handler(g.MinIO.URL))
	t.Cleanup(s3proxy.Close)

	const intermediate = "arn:aws:iam::000000000000:role/s3dest-intermediate"
	g.PutIntermediateRole(t, intermediate)
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := admin.EnsureWorkspace(ctx, store, "ws-secrets")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{ // role → bucket it may write
		"arn:aws:iam::111111111111:role/ok":      "cust",
		"arn:aws:iam::222222222222:role/nowrite": "elsewhere",
	}
	for arn, bucket := range roles {
		g.Dir.PutRole(localaws.Role{ARN: arn, TrustPolicy: policyOf(t, trustPolicy(intermediate, ws.GetId())),
			PermissionPolicies: []localaws.Policy{policyOf(t, permissionPolicy(bucket))}})
	}
	g.Dir.PutRole(localaws.Role{ARN: "arn:aws:iam::333333333333:role/untrusting", TrustPolicy: policyOf(t, trustPolicy(intermediate, "not-our-workspace"))})

	logs := &lockedBuffer{}
	tel, err := platform.NewTelemetry(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := &platform.Process{Log: log, Telemetry: tel, NATS: nc, JS: js}
	key := bytes.Repeat([]byte{7}, 32)
	sec := secrets{AdminToken: "test-admin-token-secret-0123456789", ValidatorToken: "test-validator-token-secret-0123456789", CredentialsKey: base64.StdEncoding.EncodeToString(key)}
	awsCfg := awsclient.Config{Region: "us-east-1", STSEndpoint: sts.URL, S3Endpoint: s3proxy.URL, PathStyle: true,
		AccessKeyID: g.MinIO.RootUser, SecretAccessKey: g.MinIO.RootPassword, IntermediateRoleARN: intermediate}
	plan, err := newPipeline(ctx, devConfig(t, t.TempDir()), sec, p, store, awsCfg, ns.URL(), redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plan.close)
	var writeKeys []string
	for i, d := range []struct{ bucket, role string }{
		{"cust", "arn:aws:iam::111111111111:role/ok"},
		{"denied", "arn:aws:iam::222222222222:role/nowrite"},
		{"denied", "arn:aws:iam::333333333333:role/untrusting"},
	} {
		src, err := plan.admin.CreateSource(ctx, &adminv1.CreateSourceRequest{Slug: fmt.Sprintf("src-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		writeKeys = append(writeKeys, src.GetData().GetSource().GetWriteKeys()...)
		if _, err := plan.admin.CreateDestination(ctx, &adminv1.CreateDestinationRequest{
			SourceId: src.GetData().GetSource().GetId(), MetadataId: layout.AWSS3MetadataID,
			Settings: &configv1.DestinationSettings{Region: "us-east-1", S3Bucket: d.bucket, IamRoleArn: d.role},
		}); err != nil {
			t.Fatal(err)
		}
	}

	group := service.NewGroup(log, plan.services...)
	done := make(chan error, 1)
	go func() { done <- group.Run(ctx) }()
	testenv.Eventually(t, 30*time.Second, "the pipeline to start", group.Ready)
	trackingURL := "http://" + plan.ingest.Addr()
	for _, wk := range writeKeys {
		req, _ := http.NewRequest(http.MethodPost, trackingURL+"/v1/track", strings.NewReader(`{"userId":"u1","event":"Signed Up"}`))
		req.SetBasicAuth(wk, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST /v1/track = %d", resp.StatusCode)
		}
	}
	waitForObjects(t, g.RootS3(), "cust", "", 1)
	testenv.Eventually(t, 30*time.Second, "both refusals to be logged", func() bool {
		l := logs.String()
		return strings.Contains(l, "AccessDenied") && strings.Count(l, "destination failing") >= 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("pipeline did not stop cleanly: %v", err)
	}

	issued.mu.Lock()
	all := append([]string{g.MinIO.RootPassword, sec.AdminToken, sec.ValidatorToken, sec.CredentialsKey}, issued.secrets...)
	issued.mu.Unlock()
	all = append(all, writeKeys...)
	if len(issued.secrets) < 6 {
		t.Fatalf("the gate handed out %d secrets: the run assumed too few roles for the scan to mean anything", len(issued.secrets))
	}
	text := logs.String()
	for _, s := range all {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the logs hold a secret (%d characters, starting %q)", len(s), s[:4])
		}
	}
}
