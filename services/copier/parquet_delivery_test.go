package copier

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// getObject reads an object's bytes and content type as its bucket's owner.
func getObject(t testing.TB, e *env, bucket, key string) ([]byte, string) {
	t.Helper()
	out, err := e.g.RootS3().GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, aws.ToString(out.ContentType)
}

func TestOneStagedFileReachesAJSONDestinationUnchangedAndAParquetOneConvertedOnce(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "json-bucket")
	e.g.CreateBucket(t, "parquet-bucket")
	e.customerRole(t, "arn:aws:iam::111111111111:role/j", "json-bucket", "")
	e.customerRole(t, "arn:aws:iam::222222222222:role/p", "parquet-bucket/pq", "")
	e.destination(t, "dest-json", "src-1", "json-bucket", "arn:aws:iam::111111111111:role/j", "us-east-1")
	pd := e.destination(t, "dest-parquet", "src-1", "parquet-bucket/pq", "arn:aws:iam::222222222222:role/p", "us-east-1")
	pd.Settings.Format = layout.FormatParquet
	e.putDestination(t, pd)
	e.start(t, e.config())

	lines := []string{
		`{"type":"track","event":"Signed Up","userId":"u1","messageId":"m-1","timestamp":"2026-12-02T10:00:00.5Z","receivedAt":"2026-12-02T10:00:01Z","properties":{"plan":"pro"},"context":{"ip":"203.0.113.9"},"integrations":{"All":true}}`,
		`{"type":"identify","userId":"u1","messageId":"m-2","traits":{"email":"u1@example.com"},"receivedAt":"2026-12-02T10:00:01Z","timestamp":"not a time"}`,
		`{"type":"alias","previousId":"a1","userId":"u1","messageId":"m-3","receivedAt":"2026-12-02T10:00:01Z","version":2}`,
	}
	staged := gzipLines(t, lines...)
	st := e.stageBytes(t, "src-1", day1, "f1", int64(len(lines)), staged)

	jsonKey := fmt.Sprintf("segment-logs/src-1/%d/f1.gz", day1)
	pqKey := fmt.Sprintf("pq/segment-logs/src-1/%d/f1.parquet", day1)
	if keys := e.waitKeys(t, "json-bucket", 1); len(keys) != 1 || keys[0] != jsonKey {
		t.Fatalf("json-bucket holds %v, want only %s", keys, jsonKey)
	}
	if keys := e.waitKeys(t, "parquet-bucket", 1); len(keys) != 1 || keys[0] != pqKey {
		t.Fatalf("parquet-bucket holds %v, want only %s", keys, pqKey)
	}
	got, ct := getObject(t, e, "json-bucket", jsonKey)
	if !bytes.Equal(got, staged) || ct != ContentType {
		t.Fatalf("the json destination got %d bytes (%s), want the staged file's %d bytes unchanged (%s)", len(got), ct, len(staged), ContentType)
	}
	pq, ct := getObject(t, e, "parquet-bucket", pqKey)
	if ct != ParquetContentType {
		t.Errorf("%s has Content-Type %q, want %q", pqKey, ct, ParquetContentType)
	}
	rows := readParquet(t, pq)
	if len(rows) != len(lines) {
		t.Fatalf("the Parquet file holds %d rows, want %d", len(rows), len(lines))
	}
	for i, line := range lines {
		if diffs := DiffEvent(rows[i], []byte(line)); len(diffs) > 0 {
			t.Errorf("row %d differs from its NDJSON line: %s", i+1, strings.Join(diffs, "; "))
		}
	}
	e.mu.Lock()
	acl := e.acls["/parquet-bucket/"+pqKey]
	e.mu.Unlock()
	if acl != "bucket-owner-full-control" {
		t.Errorf("%s was written with x-amz-acl %q, want bucket-owner-full-control", pqKey, acl)
	}

	// The same staged file again (a redelivery after a crash): converted to the same key, refused by
	// If-None-Match, nothing written twice.
	testenv.Eventually(t, 30*time.Second, "both lanes to finish the file", func() bool { return e.laneIdle("dest-json") && e.laneIdle("dest-parquet") })
	if _, err := bus.Publish(e.ctx, e.js, bus.StagedSubject("src-1"), st, "staged.src-1.f1.again"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the redelivered file to reach both buckets' writes", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return sum(e.writes["/json-bucket/"+jsonKey]) == 2 && sum(e.writes["/parquet-bucket/"+pqKey]) == 2
	})
	e.mu.Lock()
	jw, pw := e.writes["/json-bucket/"+jsonKey][200], e.writes["/parquet-bucket/"+pqKey][200]
	e.mu.Unlock()
	if jw != 1 || pw != 1 {
		t.Errorf("successful writes: %d of the .gz and %d of the .parquet, want 1 each (the second refused by If-None-Match)", jw, pw)
	}
	if again, _ := getObject(t, e, "parquet-bucket", pqKey); !bytes.Equal(again, pq) {
		t.Error("the Parquet object changed after the redelivery")
	}
}

func sum(byStatus map[int]int) int {
	n := 0
	for _, c := range byStatus {
		n += c
	}
	return n
}
