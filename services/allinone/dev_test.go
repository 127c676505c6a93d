package allinone

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// keyRE is the documented object layout: segment-logs/{sourceId}/{receivedDayMs}/{file}.gz.
var keyRE = regexp.MustCompile(`^(.*/)?segment-logs/([^/]+)/([0-9]+)/([^/]+)\.gz$`)

func devConfig(t *testing.T, dataDir string) DevConfig {
	t.Helper()
	return DevConfig{
		DataDir: dataDir, SummaryFile: filepath.Join(dataDir, "summary.json"), LogLevel: "warn",
		IntermediateRoleARN: "arn:aws:iam::000000000000:role/s3dest-intermediate",
		FlushInterval:       300 * time.Millisecond, MaxFileBytes: 99_000_000, Region: "us-east-1", Retention: 7 * 24 * time.Hour,
		EnableLegacyS3: true, // the flag's default in dev: the migration rehearsal needs it
		TrackingAddr:   "127.0.0.1:0", AdminAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", S3Addr: "127.0.0.1:0",
		STSAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", RedisAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
	}
}

// runDev starts `s3dest dev` and returns its summary and a function that stops it and checks it stopped cleanly.
func runDev(t *testing.T, cfg DevConfig) (Summary, func()) {
	t.Helper()
	os.Remove(cfg.SummaryFile)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Dev(ctx, cfg, io.Discard) }()
	var sum Summary
	testenv.Eventually(t, 60*time.Second, "the summary file", func() bool {
		select {
		case err := <-done:
			t.Fatalf("dev stopped before it was ready: %v", err)
		default:
		}
		data, err := os.ReadFile(cfg.SummaryFile)
		return err == nil && json.Unmarshal(data, &sum) == nil
	})
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev did not stop cleanly: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("dev did not stop within 60s")
		}
	}
	t.Cleanup(stop)
	return sum, stop
}

func TestDevDeliversATrackedEventToTheDemoBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	cfg := devConfig(t, t.TempDir())
	sum, stop := runDev(t, cfg)
	for _, v := range []string{sum.TrackingURL, sum.AdminURL, sum.AdminToken, sum.GRPCAddr, sum.S3Endpoint, sum.S3AccessKey,
		sum.S3SecretKey, sum.STSEndpoint, sum.WorkspaceID, sum.IntermediateRoleARN, sum.SourceID, sum.WriteKey,
		sum.Region, sum.Bucket, sum.RoleARN, sum.DestinationID} {
		if v == "" {
			t.Fatalf("summary has an empty field: %+v", sum)
		}
	}

	sent := `{"userId":"user-1","event":"Order Completed","messageId":"m-e2e-1","properties":{"total":12.5,"items":["a","b"]}}`
	before := time.Now().UTC()
	track(t, sum, sent)

	cli := rootS3(sum)
	objects := waitForObjects(t, cli, sum.Bucket, "segment-logs/", 1)
	key := objects[0]
	m := keyRE.FindStringSubmatch(key)
	if m == nil || m[1] != "" || m[2] != sum.SourceID {
		t.Fatalf("key %q does not follow segment-logs/{sourceId}/{receivedDayMs}/{file}.gz", key)
	}
	if want := before.Truncate(24 * time.Hour).UnixMilli(); m[3] != itoa(want) {
		t.Fatalf("received day in key = %s, want %d", m[3], want)
	}
	lines := readLines(t, cli, sum.Bucket, key)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1", len(lines))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	_ = json.Unmarshal([]byte(sent), &want)
	for k, v := range want {
		if b1, _ := json.Marshal(got[k]); string(b1) != mustJSON(v) {
			t.Errorf("%s = %s, want %s", k, b1, mustJSON(v))
		}
	}
	if got["receivedAt"] == nil || got["messageId"] != "m-e2e-1" || got["type"] != "track" {
		t.Errorf("line lacks what ingest adds: %s", lines[0])
	}
	acl, err := cli.GetObjectAcl(context.Background(), &s3.GetObjectAclInput{Bucket: aws.String(sum.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get object ACL: %v", err)
	}
	if !hasFullControlForOwner(acl) {
		t.Errorf("object was not written with ACL bucket-owner-full-control: %+v", acl.Grants)
	}

	// The admin API reports the delivery, per received day.
	var status struct {
		Data struct {
			Status struct {
				Days []struct {
					ReceivedDayMs string `json:"receivedDayMs"`
					Files, Events string
				} `json:"days"`
			} `json:"status"`
		} `json:"data"`
	}
	testenv.Eventually(t, 10*time.Second, "the delivery status", func() bool {
		req, _ := http.NewRequest(http.MethodGet, sum.AdminURL+"/destinations/"+sum.DestinationID+"/status", nil)
		req.Header.Set("Authorization", "Bearer "+sum.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET status = %d %s", resp.StatusCode, body)
		}
		_ = json.NewDecoder(resp.Body).Decode(&status)
		return len(status.Data.Status.Days) == 1 && status.Data.Status.Days[0].Events == "1"
	})
	if d := status.Data.Status.Days[0]; d.Files != "1" || d.ReceivedDayMs != m[3] {
		t.Fatalf("status day = %+v, want 1 file on day %s", d, m[3])
	}

	// `s3dest validate` walks the reference's steps for the demo destination.
	var out strings.Builder
	if err := Validate(context.Background(), ValidateConfig{AdminURL: sum.AdminURL, Token: sum.AdminToken}, sum.DestinationID, &out); err != nil {
		t.Fatalf("validate the demo destination: %v\n%s", err, out.String())
	}
	if got := out.String(); strings.Count(got, "[ok  ]") != 4 || !strings.Contains(got, "VALIDATION_CODE_OK") {
		t.Fatalf("validate printed:\n%s", got)
	}

	// A restart keeps everything: the same workspace, source, write key, and the delivered object.
	stop()
	again, _ := runDev(t, cfg)
	if again.WorkspaceID != sum.WorkspaceID || again.SourceID != sum.SourceID || again.WriteKey != sum.WriteKey || again.DestinationID != sum.DestinationID {
		t.Fatalf("restart changed the demo setup:\nbefore %+v\nafter  %+v", sum, again)
	}
	if objs := listKeys(t, rootS3(again), again.Bucket, "segment-logs/"); len(objs) != 1 || objs[0] != key {
		t.Fatalf("after restart the bucket holds %v, want [%s]", objs, key)
	}
}

func track(t *testing.T, sum Summary, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, sum.TrackingURL+"/v1/track", strings.NewReader(body))
	req.SetBasicAuth(sum.WriteKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(out) != `{"success":true}` {
		t.Fatalf("POST /v1/track = %d %s", resp.StatusCode, out)
	}
}

func rootS3(sum Summary) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(sum.S3Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(sum.S3AccessKey, sum.S3SecretKey, ""),
		HTTPClient:  awshttp.NewBuildableClient(),
	})
}

func listKeys(t *testing.T, cli *s3.Client, bucket, prefix string) []string {
	t.Helper()
	return listKeysEnding(t, cli, bucket, prefix, ".gz")
}

// listKeysEnding lists the keys under prefix whose names end in suffix.
func listKeysEnding(t *testing.T, cli *s3.Client, bucket, prefix, suffix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(cli, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if strings.HasSuffix(aws.ToString(o.Key), suffix) {
				keys = append(keys, aws.ToString(o.Key))
			}
		}
	}
	return keys
}

func waitForObjects(t *testing.T, cli *s3.Client, bucket, prefix string, n int) []string {
	t.Helper()
	var keys []string
	testenv.Eventually(t, 30*time.Second, "objects in the bucket", func() bool {
		keys = listKeys(t, cli, bucket, prefix)
		return len(keys) >= n
	})
	return keys
}

func readLines(t *testing.T, cli *s3.Client, bucket, key string) []string {
	t.Helper()
	obj, err := cli.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer obj.Body.Close()
	raw, _ := io.ReadAll(obj.Body)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s is not gzip: %v", key, err)
	}
	var lines []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return lines
}

// hasFullControlForOwner reports the grants of the canned ACL bucket-owner-full-control: the writer's
// and the bucket owner's FULL_CONTROL (the local S3 lists both even when they are one account).
func hasFullControlForOwner(acl *s3.GetObjectAclOutput) bool {
	full := 0
	for _, g := range acl.Grants {
		if g.Permission == "FULL_CONTROL" {
			full++
		}
	}
	return full == 2
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
