package cursor_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/cursor"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// A destination's status is its delivery history folded in stream order: a delivery counts its file
// and clears the day's last error, a failure sets it, a dead letter counts the file among the dead and
// sets it too; a file published twice counts once. Folding again after FLUSHALL, after losing only the
// position, or from another folder gives the same days; a fold after more history adds only that.
func TestTheStatusFoldedFromJetStreamIsTheSameAfterRedisLosesIt(t *testing.T) {
	if testing.Short() {
		t.Skip("needs embedded NATS and redis-server; run without -short")
	}
	_, _, js := testenv.NATS(t)
	_, rdb := testenv.Redis(t)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.DefaultStreamConfig(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	const dest, day1, day2 = "dest1", int64(1_764_547_200_000), int64(1_764_633_600_000)
	t0 := time.UnixMilli(1_764_600_000_000)
	file := func(id string, day, events int64) *batchv1.Batch {
		return &batchv1.Batch{BatchId: id, ReceivedDayMs: day, EventCount: events, SizeBytes: 100 * events, LastSequence: uint64(events)}
	}
	delivered := func(b *batchv1.Batch, at time.Time, msgID string) {
		t.Helper()
		if _, err := bus.Publish(ctx, js, bus.DeliveredSubject(dest), &batchv1.BatchDelivered{Batch: b, DestinationId: dest, DeliveredAt: timestamppb.New(at)}, msgID); err != nil {
			t.Fatal(err)
		}
	}
	failed := func(b *batchv1.Batch, at time.Time, msg string, dead bool) {
		t.Helper()
		if _, err := bus.Publish(ctx, js, bus.FailedSubject(dest), &batchv1.DeliveryFailed{Batch: b, DestinationId: dest, Message: msg, FailedAt: timestamppb.New(at), DeadLettered: dead}, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Another destination's history is not this one's.
	if _, err := bus.Publish(ctx, js, bus.DeliveredSubject("dest2"), &batchv1.BatchDelivered{Batch: file("o", day1, 99), DeliveredAt: timestamppb.New(t0)}, ""); err != nil {
		t.Fatal(err)
	}
	delivered(file("a", day1, 10), t0, "")
	failed(file("b", day1, 4), t0.Add(time.Minute), "Access Denied.", false)
	delivered(file("b", day1, 4), t0.Add(2*time.Minute), "")
	delivered(file("b", day1, 4), t0.Add(3*time.Minute), "") // published again past the duplicate window
	failed(file("c", day2, 7), t0.Add(4*time.Minute), "Access Denied.", false)
	failed(file("c", day2, 7), t0.Add(5*time.Minute), "A file was dropped: retention ended", true)
	failed(file("c", day2, 7), t0.Add(6*time.Minute), "A file was dropped: retention ended", true)

	store := cursor.New(rdb, time.Hour)
	want := []cursor.Day{
		{DayMs: day2, LastError: "A file was dropped: retention ended", ErrorAt: t0.Add(5 * time.Minute).UTC(), DeadFiles: 1, DeadEvents: 7},
		{DayMs: day1, Files: 2, Events: 14, Bytes: 1400, LastSeq: 4, LastAt: t0.Add(2 * time.Minute).UTC()},
	}
	check := func(when string, want []cursor.Day) {
		t.Helper()
		if err := cursor.NewFolder(store, js).CatchUp(ctx, dest); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		got, err := store.Days(ctx, cursor.Delivered, dest)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: days %+v, want %+v", when, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: day %d = %+v, want %+v", when, i, got[i], want[i])
			}
		}
	}
	check("first fold", want)
	check("a second fold with nothing new", want)
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	check("after FLUSHALL", want)
	if err := rdb.Del(ctx, "s3dest:status:position:"+dest).Err(); err != nil {
		t.Fatal(err)
	}
	check("after losing only the position", want)

	delivered(file("d", day2, 3), t0.Add(7*time.Minute), "")
	want[0] = cursor.Day{DayMs: day2, Files: 1, Events: 3, Bytes: 300, LastSeq: 3, LastAt: t0.Add(7 * time.Minute).UTC(), DeadFiles: 1, DeadEvents: 7}
	check("after one more delivery", want)
}
