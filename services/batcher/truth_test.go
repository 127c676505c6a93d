package batcher

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// sealedIDs reads every sealed file announced so far (by sequence, without a consumer: tests that poll
// would otherwise pile up consumers) and counts each messageId in them.
func (r *rig) sealedIDs() (map[string]int, map[*batchv1.Batch][]string) {
	r.t.Helper()
	ctx := context.Background()
	s, err := r.js.Stream(ctx, bus.StreamBatches)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	obs, err := r.js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		r.t.Fatal(err)
	}
	seen, files := map[string]int{}, map[*batchv1.Batch][]string{}
	for seq := max(info.State.FirstSeq, 1); info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && !strings.HasPrefix(m.Subject, "batch.sealed.") {
			continue
		}
		if err != nil {
			r.t.Fatal(err)
		}
		var sealed batchv1.BatchSealed
		if err := proto.Unmarshal(m.Data, &sealed); err != nil {
			r.t.Fatal(err)
		}
		if sealed.GetObjectName() == "" {
			continue // only moves the cursor
		}
		data, err := obs.GetBytes(ctx, sealed.GetObjectName())
		if err != nil {
			r.t.Fatalf("sealed object %s: %v", sealed.GetObjectName(), err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			r.t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			var ev struct {
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				r.t.Fatalf("sealed line %q: %v", sc.Text(), err)
			}
			seen[ev.MessageID]++
			lines = append(lines, sc.Text())
		}
		if int64(len(lines)) != sealed.GetBatch().GetEventCount() {
			r.t.Fatalf("file says %d events, holds %d", sealed.GetBatch().GetEventCount(), len(lines))
		}
		files[sealed.GetBatch()] = lines
	}
	return seen, files
}

// waitSealedOnce waits until every id is sealed, then fails if any is sealed twice or anything else is.
func (r *rig) waitSealedOnce(what string, ids []string) map[*batchv1.Batch][]string {
	r.t.Helper()
	var seen map[string]int
	var files map[*batchv1.Batch][]string
	testenv.Eventually(r.t, 20*time.Second, what, func() bool {
		seen, files = r.sealedIDs()
		for _, id := range ids {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if seen[id] != 1 {
			r.t.Errorf("%s sealed %d times, want once", id, seen[id])
		}
	}
	if len(seen) != len(ids) {
		r.t.Errorf("sealed %d distinct events, want %d: %v", len(seen), len(ids), seen)
	}
	return files
}

func TestACursorInRedisAheadOfJetStreamMakesTheBatcherSkipNoEvent(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, rdb := testenv.Redis(t)
	putSources(t, js, "a")
	// A Redis restored from another deployment's snapshot, or one that outlived the streams: it claims
	// the source is sealed far beyond anything JetStream holds.
	if err := rdb.Set(context.Background(), "s3dest:sealed-through:a", 1_000_000, 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, js: js}
	runBatcher(t, defaults(), nc, js, redisURL)
	now := time.Now()
	r.publish("a", now, "m1", "m2")
	r.publish("a", now, "m3")
	r.waitSealedOnce("every event sealed despite the stale cursor", []string{"m1", "m2", "m3"})
}

func TestAFlushedRedisMidRunLosesNoEventAndDuplicatesNone(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, rdb := testenv.Redis(t)
	ctx := context.Background()
	putSources(t, js, "a", "b")
	r := &rig{t: t, js: js}
	cfg := defaults()
	cfg.FlushInterval = time.Second // files are open when Redis is flushed
	stop := runBatcher(t, cfg, nc, js, redisURL)
	var ids []string
	send := func(round string) {
		now := time.Now()
		for i := range 5 {
			for _, src := range []string{"a", "b"} {
				x, y := fmt.Sprintf("%s-%s-%d-x", round, src, i), fmt.Sprintf("%s-%s-%d-y", round, src, i)
				r.publish(src, now, x, y)
				ids = append(ids, x, y)
			}
		}
	}
	send("before")
	r.waitSealedOnce("the first events sealed", ids)
	send("open")
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	send("after-flush")
	r.waitSealedOnce("the events around the flush sealed", ids)
	// A restart with an empty Redis: everything sealed stays sealed once, and new events go on.
	send("before-restart")
	stop()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	runBatcher(t, cfg, nc, js, redisURL)
	send("after-restart")
	r.waitSealedOnce("every event sealed once after a restart on an empty Redis", ids)
}

func TestARecreatedEventsStreamGetsNewBatchIDsAndNoEventIsSkipped(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	ctx := context.Background()
	putSources(t, js, "a")
	r := &rig{t: t, js: js}
	stop := runBatcher(t, defaults(), nc, js, redisURL)
	now := time.Now()
	r.publish("a", now, "old-1", "old-2")
	r.publish("a", now, "old-3")
	old := r.waitSealedOnce("the first stream's events sealed", []string{"old-1", "old-2", "old-3"})
	stop()

	// The operator deletes EVENTS; a service creates it again: its sequences start at 1 again.
	if err := js.DeleteStream(ctx, bus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	r.publish("a", now, "new-1", "new-2")
	r.publish("a", now, "new-3")
	runBatcher(t, defaults(), nc, js, redisURL)
	all := r.waitSealedOnce("the new stream's events sealed", []string{"old-1", "old-2", "old-3", "new-1", "new-2", "new-3"})

	oldIDs, oldNames := map[string]bool{}, map[string]bool{}
	for b := range old {
		oldIDs[b.GetBatchId()], oldNames[b.GetFileName()] = true, true
	}
	newFiles := 0
	for b, lines := range all {
		isNew := false
		for _, l := range lines {
			var ev struct {
				MessageID string `json:"messageId"`
			}
			_ = json.Unmarshal([]byte(l), &ev)
			isNew = isNew || strings.HasPrefix(ev.MessageID, "new-")
		}
		if !isNew {
			continue
		}
		newFiles++
		if oldIDs[b.GetBatchId()] || oldNames[b.GetFileName()] {
			t.Errorf("batch %s (%s, sequences %d-%d) reuses an old stream's batch ID or file name", b.GetBatchId(), b.GetFileName(), b.GetFirstSequence(), b.GetLastSequence())
		}
		if b.GetEventsStream() == "" {
			t.Errorf("batch %s does not say which EVENTS stream its sequences count in", b.GetBatchId())
		}
	}
	if newFiles == 0 {
		t.Fatal("no file holds the new stream's events")
	}
}

func TestAnEventsStreamRecreatedWhileTheBatcherRunsIsFollowedAndNoEventIsSkipped(t *testing.T) {
	_, nc, js := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	ctx := context.Background()
	putSources(t, js, "a")
	r := &rig{t: t, js: js}
	runBatcher(t, defaults(), nc, js, redisURL)
	now := time.Now()
	r.publish("a", now, "old-1", "old-2")
	r.publish("a", now, "old-3")
	r.waitSealedOnce("the first stream's events sealed", []string{"old-1", "old-2", "old-3"})

	if err := js.DeleteStream(ctx, bus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if err := bus.ApplyStreams(ctx, js, bus.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	r.publish("a", now, "new-1", "new-2")
	r.publish("a", now, "new-3")
	r.publish("a", now, "new-4")
	r.waitSealedOnce("the new stream's events sealed by the running batcher",
		[]string{"old-1", "old-2", "old-3", "new-1", "new-2", "new-3", "new-4"})
}
