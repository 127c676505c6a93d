package admin

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/cursor"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// The admin service owns the retention: it writes it where every service reads it and applies the
// streams with the margin; a shorter one shrinks the streams only once the margin has passed, so the
// copiers decide for the files it ends before the streams drop them.
func TestAdminOwnsTheRetentionAndShrinksTheStreamsOnlyAfterTheMargin(t *testing.T) {
	if testing.Short() {
		t.Skip("needs embedded NATS; run without -short")
	}
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	maxAge := func() time.Duration {
		s, err := js.Stream(ctx, bus.StreamBatches)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.MaxAge
	}
	sc := bus.DefaultStreamConfig()
	sc.Retention = 72 * time.Hour
	t0 := time.Now()
	if again, err := OwnRetention(ctx, js, store, sc, t0, log); err != nil || !again.IsZero() {
		t.Fatalf("OwnRetention: %v, again at %v", err, again)
	}
	if st, _ := store.StreamConfig(ctx, bus.DefaultStreamConfig()); st.Retention != 72*time.Hour || maxAge() != 73*time.Hour {
		t.Fatalf("stored retention %s, BATCHES max age %s; want 72h and 73h", st.Retention, maxAge())
	}

	sc.Retention = 24 * time.Hour
	again, err := OwnRetention(ctx, js, store, sc, t0.Add(time.Minute), log)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := store.StreamConfig(ctx, bus.DefaultStreamConfig()); st.Retention != 24*time.Hour {
		t.Fatalf("stored retention %s, want the new 24h at once", st.Retention)
	}
	if maxAge() != 73*time.Hour || again.Sub(t0.Add(time.Minute)) != bus.RetentionMargin {
		t.Fatalf("BATCHES max age %s, next apply at +%s; want the old 73h kept for the margin", maxAge(), again.Sub(t0))
	}
	if again, err = OwnRetention(ctx, js, store, sc, again, log); err != nil || !again.IsZero() || maxAge() != 25*time.Hour {
		t.Fatalf("after the margin: %v, max age %s, again %v; want 25h", err, maxAge(), again)
	}
}

// An operator sees where a failing destination stands (its waiting files, the deadline of the oldest,
// the files dead-lettered) and extends its retention through the API; bad requests name the field.
func TestTheStatusShowsAFailingDestinationsRetentionAndTheOperatorExtendsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("needs embedded NATS and redis-server; run without -short")
	}
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	_, rdb := testenv.Redis(t)
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	sc := bus.DefaultStreamConfig()
	sc.Retention = 2 * time.Hour
	if _, err := OwnRetention(ctx, js, store, sc, time.Now(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureWorkspace(ctx, store, "ws-admin-retention"); err != nil {
		t.Fatal(err)
	}
	view, err := store.Watch(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cursors := cursor.New(rdb, time.Hour)
	srv := NewServer(store, view, nil, cursors, slog.New(slog.DiscardHandler), WithJetStream(js))
	h, err := RESTHandler(ctx, srv, token)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	a := &api{t: t, url: hs.URL}
	src := a.ok("POST", "/sources", `{"slug":"ret"}`)["source"].(map[string]any)["id"].(string)
	dest := a.ok("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"60be92c8dabdd561bf6c9130",
		"settings":{"region":"us-east-1","s3Bucket":"ret-bucket","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)["destination"].(map[string]any)["id"].(string)

	// What the copier leaves: its lane with one waiting file, and one file dead-lettered earlier.
	if _, err := js.CreateConsumer(ctx, bus.StreamBatches, jetstream.ConsumerConfig{Durable: bus.CopierConsumer(dest),
		FilterSubjects: []string{bus.StagedSubject(src), bus.CarriedSubject(dest)}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	const day = int64(1767225600000)
	staged := &batchv1.BatchStaged{Batch: &batchv1.Batch{BatchId: "b1", SourceId: src, ReceivedDayMs: day, EventCount: 4}, StagingKey: "staging/x/b1.gz"}
	ack, err := bus.Publish(ctx, js, bus.StagedSubject(src), staged, "")
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := js.Stream(ctx, bus.StreamBatches)
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	dead := &batchv1.DeliveryFailed{Batch: &batchv1.Batch{BatchId: "b0", SourceId: src, ReceivedDayMs: day, EventCount: 5}, DestinationId: dest,
		Message: "A file was dropped: retention ended: …", FailedAt: timestamppb.Now(), DeadLettered: true}
	if _, err := bus.Publish(ctx, js, bus.FailedSubject(dest), dead, ""); err != nil {
		t.Fatal(err)
	}

	st := a.ok("GET", "/destinations/"+dest+"/status", "")["status"].(map[string]any)
	r := st["retention"].(map[string]any)
	deadline, _ := time.Parse(time.RFC3339Nano, r["oldestWaitingDeadline"].(string))
	if r["retention"] != "7200s" || r["waitingFiles"] != "1" || r["deadLetteredFiles"] != "1" || r["deadLetteredEvents"] != "5" ||
		!deadline.Equal(msg.Time.Add(2*time.Hour)) || r["extendedUntil"] != nil {
		t.Fatalf("retention status %v; want 7200s, 1 waiting due at %s, 1 file and 5 events dead-lettered, no extension", r, msg.Time.Add(2*time.Hour))
	}
	if d := st["days"].([]any)[0].(map[string]any); d["deadLetteredFiles"] != "1" || d["deadLetteredEvents"] != "5" {
		t.Fatalf("day status %v; want 1 file and 5 events dead-lettered", d)
	}

	before := time.Now()
	got := a.ok("POST", "/destinations/"+dest+"/retention:extend", `{"extendBy":"259200s"}`)["destination"].(map[string]any)
	until, _ := time.Parse(time.RFC3339Nano, got["retentionExtendedUntil"].(string))
	if until.Before(before.Add(72*time.Hour)) || until.After(time.Now().Add(72*time.Hour)) {
		t.Fatalf("extended until %s, want now + 72h", until)
	}
	// A shorter extension never cuts a longer one short.
	if again := a.ok("POST", "/destinations/"+dest+"/retention:extend", `{"extendBy":"60s"}`)["destination"].(map[string]any); again["retentionExtendedUntil"] != got["retentionExtendedUntil"] {
		t.Fatalf("a 60s extension moved the end to %v", again["retentionExtendedUntil"])
	}
	if r := a.ok("GET", "/destinations/"+dest+"/status", "")["status"].(map[string]any)["retention"].(map[string]any); r["extendedUntil"] != got["retentionExtendedUntil"] {
		t.Fatalf("status extendedUntil %v, want %v", r["extendedUntil"], got["retentionExtendedUntil"])
	}
	if ended := a.ok("POST", "/destinations/"+dest+"/retention:extend", `{"end":true}`)["destination"].(map[string]any); ended["retentionExtendedUntil"] != nil {
		t.Fatalf("after end: extended until %v", ended["retentionExtendedUntil"])
	}

	for body, want := range map[string]string{
		`{}`:                                 "extendBy: required",
		`{"extendBy":"0s"}`:                  "extendBy: must be more than 0s and at most 2160h0m0s",
		`{"extendBy":"7776001s"}`:            "extendBy: must be more than 0s and at most 2160h0m0s",
		`{"extendBy":"60s","end":true}`:      "extendBy and end: give one of them",
		`{"extendBy":"soon"}`:                "invalid google.protobuf.Duration",
		`{"extendBy":"60s","until":"later"}`: "until",
	} {
		code, out := a.call("POST", "/destinations/"+dest+"/retention:extend", body, "Bearer "+token)
		if _, msg := errorOf(t, out); code != 422 || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %q, want 422 naming %q", body, code, msg, want)
		}
	}
	if code, _ := a.call("POST", "/destinations/nope/retention:extend", `{"extendBy":"60s"}`, "Bearer "+token); code != 404 {
		t.Errorf("extend of a missing destination: %d, want 404", code)
	}
}
