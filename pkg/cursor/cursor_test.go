package cursor_test

import (
	"context"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/cursor"
	"github.com/s3dest/s3dest/pkg/testenv"
)

func TestAddCountsFilesAndListsTheirDaysNewestFirst(t *testing.T) {
	_, rdb := testenv.Redis(t)
	ctx := context.Background()
	s := cursor.New(rdb, time.Hour)
	const day = int64(1_764_547_200_000)
	at := time.UnixMilli(1_764_550_000_000)

	if err := s.Add(ctx, cursor.Sealed, "s1", day, 10, 1000, 7, at); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, cursor.Sealed, "s1", day, 5, 500, 9, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, cursor.Sealed, "s1", day+86_400_000, 1, 100, 10, at.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, cursor.Sealed, "s1", day)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	want := cursor.Day{DayMs: day, Files: 2, Events: 15, Bytes: 1500, LastSeq: 9, LastAt: at.Add(time.Second)}
	if got.Files != want.Files || got.Events != want.Events || got.Bytes != want.Bytes || got.LastSeq != want.LastSeq || !got.LastAt.Equal(want.LastAt) {
		t.Errorf("day = %+v, want %+v", got, want)
	}
	days, err := s.Days(ctx, cursor.Sealed, "s1")
	if err != nil || len(days) != 2 || days[0].DayMs != day+86_400_000 || days[1].DayMs != day {
		t.Errorf("days = %+v (%v), want the two days, newest first", days, err)
	}
}
