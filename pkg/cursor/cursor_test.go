package cursor_test

import (
	"context"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/cursor"
	"github.com/s3dest/s3dest/pkg/testenv"
)

func TestAddCountsFilesAndAddOnceSetsItsMarkerInTheSameStep(t *testing.T) {
	_, rdb := testenv.Redis(t)
	ctx := context.Background()
	s := cursor.New(rdb, time.Hour)
	const day = int64(1_764_547_200_000)
	at := time.UnixMilli(1_764_550_000_000)

	if err := s.Add(ctx, cursor.Delivered, "d1", day, 10, 1000, 7, at); err != nil {
		t.Fatal(err)
	}
	if err := s.Fail(ctx, cursor.Delivered, "d1", day, "Access Denied.", at); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOnce(ctx, cursor.Delivered, "d1", day, 5, 500, 9, at.Add(time.Second), "marker:f2", time.Minute); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, cursor.Delivered, "d1", day)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	want := cursor.Day{DayMs: day, Files: 2, Events: 15, Bytes: 1500, LastSeq: 9, LastAt: at.Add(time.Second)}
	if got.Files != want.Files || got.Events != want.Events || got.Bytes != want.Bytes || got.LastSeq != want.LastSeq ||
		!got.LastAt.Equal(want.LastAt) || got.LastError != "" {
		t.Errorf("day = %+v, want %+v (a delivery clears the last error)", got, want)
	}
	ttl, err := rdb.TTL(ctx, "marker:f2").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("marker TTL = %v (%v), want set and at most a minute", ttl, err)
	}
	days, err := s.Days(ctx, cursor.Delivered, "d1")
	if err != nil || len(days) != 1 || days[0].DayMs != day {
		t.Errorf("days = %+v (%v), want the one day", days, err)
	}
}
