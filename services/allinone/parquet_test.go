package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/testenv"
	"github.com/s3dest/s3dest/services/copier"
)

// variedBatch is one /v1/batch body with every kind of Segment event and the fields each carries,
// including the ones Parquet keeps in extra (integrations, groupId, previousId, version, channel), the
// time forms ingest accepts (no zone, an offset without a colon) and a time in nanoseconds, which a
// TIMESTAMP(MICROS) column cannot hold.
const variedBatch = `{"batch":[
	{"type":"track","userId":"u1","event":"Order Completed","messageId":"pq-1","timestamp":"2026-12-02T10:00:00.123Z",
	 "sentAt":"2026-12-02T10:00:01Z","properties":{"total":12.5,"currency":"USD","products":[{"sku":"A-1","quantity":2}]},
	 "context":{"ip":"203.0.113.7","library":{"name":"analytics-go","version":"3.3.0"}},"integrations":{"All":false,"Mixpanel":true}},
	{"type":"identify","userId":"u1","traits":{"email":"u1@example.com","plan":"pro"},"messageId":"pq-2","timestamp":"2026-12-02T10:00:00.123456789Z"},
	{"type":"page","anonymousId":"a1","name":"Home","properties":{"path":"/","title":"Home <b>&</b>"},"messageId":"pq-3"},
	{"type":"screen","userId":"u2","name":"Settings","messageId":"pq-4","channel":"mobile","timestamp":"2026-12-02T10:00:00"},
	{"type":"group","userId":"u2","groupId":"g1","traits":{"name":"Acme"},"messageId":"pq-5","version":2},
	{"type":"alias","userId":"u3","previousId":"a1","messageId":"pq-6","originalTimestamp":"2026-12-02T09:59:59+0100"}]}`

// deliveredDirEnv names a directory where the test below leaves copies of the files it read out of MinIO,
// under their keys: docs/querytest runs the queries of docs/querying.md on them.
const deliveredDirEnv = "S3DEST_DELIVERED_DIR"

func TestTheSameEventsDeliveredAsJSONAndAsParquetReadBackEqual(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newMinIOPipeline(t, ctx, "ws-parquet-e2e", nil)
	m.g.CreateBucket(t, "cust-json")
	m.g.CreateBucket(t, "cust-parquet")
	const jsonRole, parquetRole = "arn:aws:iam::111111111111:role/json", "arn:aws:iam::222222222222:role/parquet"
	m.customerRole(t, jsonRole, "cust-json", "cust-json")
	m.customerRole(t, parquetRole, "cust-parquet", "cust-parquet")
	src, err := m.plan.admin.CreateSource(ctx, &adminv1.CreateSourceRequest{Slug: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	sourceID := src.GetData().GetSource().GetId()
	if _, err := m.plan.admin.CreateDestination(ctx, &adminv1.CreateDestinationRequest{SourceId: sourceID, MetadataId: layout.AWSS3MetadataID,
		Settings: &configv1.DestinationSettings{Region: "us-east-1", S3Bucket: "cust-json", IamRoleArn: jsonRole}}); err != nil {
		t.Fatal(err)
	}
	// Admin allows one AWS S3 destination per source (Segment's rule), so the Parquet twin goes straight
	// into the config store: the copier serves every destination of a source, whatever wrote it.
	now := timestamppb.Now()
	if err := m.store.PutDestination(ctx, &configv1.Destination{Id: "dest-parquet-twin", Name: "Parquet", Enabled: true, SourceId: sourceID,
		Metadata:  &configv1.DestinationMetadata{Id: layout.AWSS3MetadataID, Slug: layout.AWSS3Slug, Name: "AWS S3"},
		Settings:  &configv1.DestinationSettings{Region: "us-east-1", S3Bucket: "cust-parquet", IamRoleArn: parquetRole, Format: layout.FormatParquet},
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	done := m.run(t, ctx)

	req, _ := http.NewRequest(http.MethodPost, "http://"+m.plan.ingest.Addr()+"/v1/batch", strings.NewReader(variedBatch))
	req.SetBasicAuth(src.GetData().GetSource().GetWriteKeys()[0], "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/batch = %d %s", resp.StatusCode, body)
	}

	cli := m.g.RootS3()
	lines := map[string]string{}             // messageId → NDJSON line of the .gz files
	rows := map[string]copier.ParquetEvent{} // messageId → row of the .parquet files
	var jsonKeys, parquetKeys []string
	testenv.Eventually(t, 60*time.Second, "all six events in both buckets", func() bool {
		jsonKeys = listKeysEnding(t, cli, "cust-json", "", ".gz")
		parquetKeys = listKeysEnding(t, cli, "cust-parquet", "", ".parquet")
		clear(lines)
		clear(rows)
		for _, k := range jsonKeys {
			for _, l := range readLines(t, cli, "cust-json", k) {
				var ev struct{ MessageID string }
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				lines[ev.MessageID] = l
			}
		}
		for _, k := range parquetKeys {
			for _, r := range readParquetObject(t, cli, "cust-parquet", k) {
				rows[*r.MessageID] = r
			}
		}
		return len(lines) == 6 && len(rows) == 6
	})
	if len(jsonKeys) != len(parquetKeys) {
		t.Fatalf("%d .gz files and %d .parquet files: %v / %v", len(jsonKeys), len(parquetKeys), jsonKeys, parquetKeys)
	}
	for i, k := range jsonKeys {
		if want := strings.TrimSuffix(k, ".gz") + ".parquet"; parquetKeys[i] != want {
			t.Errorf("the Parquet twin of %s is %s, want %s", k, parquetKeys[i], want)
		}
	}
	for id, line := range lines {
		row, ok := rows[id]
		if !ok {
			t.Errorf("%s is in the .gz files, not in the .parquet files", id)
			continue
		}
		if diffs := copier.DiffEvent(row, []byte(line)); len(diffs) > 0 {
			t.Errorf("%s reads back differently from Parquet: %s", id, strings.Join(diffs, "; "))
		}
	}
	if r := rows["pq-2"]; r.Timestamp != nil || r.Extra == nil || !strings.Contains(*r.Extra, `"timestamp":"2026-12-02T10:00:00.123456789Z"`) {
		t.Errorf("a time in nanoseconds: column %v, extra %v; want a null column and the value in extra", r.Timestamp, r.Extra)
	}
	if r := rows["pq-4"]; r.Timestamp == nil || !r.Timestamp.Equal(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("a time without a zone: column %v, want it read as UTC, as ingest reads it", r.Timestamp)
	}
	if r := rows["pq-1"]; r.ReceivedAt == nil || r.ReceivedAt.Location() != time.UTC {
		t.Errorf("receivedAt of pq-1 = %v, want ingest's stamp as a UTC timestamp", r.ReceivedAt)
	}
	if dir := os.Getenv(deliveredDirEnv); dir != "" {
		copyOut(t, cli, "cust-json", jsonKeys, dir)
		copyOut(t, cli, "cust-parquet", parquetKeys, dir)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("pipeline did not stop cleanly: %v", err)
	}
}

func getBytes(t *testing.T, cli *s3.Client, bucket, key string) []byte {
	t.Helper()
	obj, err := cli.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Body.Close()
	data, err := io.ReadAll(obj.Body)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return data
}

// readParquetObject reads every row of a delivered Parquet file with the library.
func readParquetObject(t *testing.T, cli *s3.Client, bucket, key string) []copier.ParquetEvent {
	t.Helper()
	r := parquet.NewGenericReader[copier.ParquetEvent](bytes.NewReader(getBytes(t, cli, bucket, key)))
	defer r.Close()
	rows := make([]copier.ParquetEvent, r.NumRows())
	n, err := r.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read %s as Parquet: %v", key, err)
	}
	return rows[:n]
}

// copyOut writes each object to dir/key.
func copyOut(t *testing.T, cli *s3.Client, bucket string, keys []string, dir string) {
	t.Helper()
	for _, k := range keys {
		path := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, getBytes(t, cli, bucket, k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
