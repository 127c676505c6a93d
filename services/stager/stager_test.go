package stager

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

func runStager(t testing.TB, nc *nats.Conn, js jetstream.JetStream, m *testenv.MinIOServer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tel, err := platform.NewTelemetry(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Common: platform.Common{Replicas: 1, AckWait: 5 * time.Second},
		Config: awsclient.Config{Region: "us-east-1", S3Endpoint: m.URL, PathStyle: true, AccessKeyID: m.RootUser, SecretAccessKey: m.RootPassword},
		Bucket: "staging-test", Workers: 2,
	}
	s, err := New(cfg, &platform.Process{Log: slog.New(slog.DiscardHandler), Telemetry: tel, NATS: nc, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// seal puts a sealed file in the object store and announces it, as the batcher does.
func seal(t *testing.T, js jetstream.JetStream, i int, size int) *batchv1.Batch {
	t.Helper()
	ctx := context.Background()
	obs, err := js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	name := fmt.Sprintf("src/0/%020d", i)
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	b := &batchv1.Batch{BatchId: fmt.Sprintf("batch-%d", i), SourceId: "src", FirstSequence: uint64(i), LastSequence: uint64(i),
		SizeBytes: int64(size), Sha256: hex.EncodeToString(sum[:]), FileName: fmt.Sprintf("%d.gz", i)}
	if _, err := bus.Publish(ctx, js, bus.SealedSubject("src"), &batchv1.BatchSealed{Batch: b, ObjectName: name}, "sealed."+b.GetBatchId()); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTwoStagersStageEveryFileOnceWithItsBytesVerified(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	m := testenv.MinIO(t)
	if err := bus.ApplyStreams(context.Background(), js, bus.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	runStager(t, nc, js, m)
	runStager(t, nc, js, m)
	const files = 12
	for i := range files {
		seal(t, js, i, 100_000+i*700_000) // up to ~8 MB: single PUTs and multipart uploads
	}
	cons, err := js.OrderedConsumer(context.Background(), bus.StreamBatches, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.AllStaged}})
	if err != nil {
		t.Fatal(err)
	}
	staged := map[string]int{}
	for range files {
		msg, err := cons.Next(jetstream.FetchMaxWait(60 * time.Second))
		if err != nil {
			t.Fatalf("after %d staged: %v", len(staged), err)
		}
		var st batchv1.BatchStaged
		if err := proto.Unmarshal(msg.Data(), &st); err != nil {
			t.Fatal(err)
		}
		staged[st.GetBatch().GetBatchId()]++
		head, err := testenvS3(m).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("staging-test"), Key: aws.String(st.GetStagingKey())})
		if err != nil || aws.ToInt64(head.ContentLength) != st.GetBatch().GetSizeBytes() {
			t.Fatalf("staged object %s: %v, %d bytes", st.GetStagingKey(), err, aws.ToInt64(head.ContentLength))
		}
		if head.ServerSideEncryption != "AES256" {
			t.Fatalf("staged object %s not encrypted at rest: %q", st.GetStagingKey(), head.ServerSideEncryption)
		}
	}
	if len(staged) != files {
		t.Fatalf("staged %d distinct files, want %d: %v", len(staged), files, staged)
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second)); err == nil {
		t.Fatal("a file was announced twice")
	}
}

func testenvS3(m *testenv.MinIOServer) *s3.Client {
	return (&testenv.Gate{MinIO: m}).RootS3()
}

// The batcher announces a file whose every event was a retry (nothing stored) with a sealed message
// without an object name: it only moves the source's cursor. The stager acknowledges it and stages
// nothing for it.
func TestASealedMessageWithoutAnObjectIsAcknowledgedAndNothingIsStaged(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	m := testenv.MinIO(t)
	ctx := context.Background()
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	runStager(t, nc, js, m)
	marker := &batchv1.BatchSealed{Batch: &batchv1.Batch{BatchId: "only-retries", SourceId: "src", FirstSequence: 1, LastSequence: 1}, SealedThrough: 1}
	if _, err := bus.Publish(ctx, js, bus.SealedSubject("src"), marker, "sealed.only-retries"); err != nil {
		t.Fatal(err)
	}
	real := seal(t, js, 2, 1000)
	cons, err := js.OrderedConsumer(ctx, bus.StreamBatches, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.AllStaged}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var st batchv1.BatchStaged
	if err := proto.Unmarshal(msg.Data(), &st); err != nil {
		t.Fatal(err)
	}
	if st.GetBatch().GetBatchId() != real.GetBatchId() {
		t.Fatalf("staged %s, want only %s", st.GetBatch().GetBatchId(), real.GetBatchId())
	}
	stager, err := js.Consumer(ctx, bus.StreamBatches, "stager")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "both sealed messages acknowledged", func() bool {
		info, err := stager.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
	if _, err := cons.Next(jetstream.FetchMaxWait(time.Second)); err == nil {
		t.Fatal("something else was staged")
	}
}
