package admin

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
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
	if st, _ := store.StreamConfig(ctx, 1); st.Retention != 72*time.Hour || maxAge() != 73*time.Hour {
		t.Fatalf("stored retention %s, BATCHES max age %s; want 72h and 73h", st.Retention, maxAge())
	}

	sc.Retention = 24 * time.Hour
	again, err := OwnRetention(ctx, js, store, sc, t0.Add(time.Minute), log)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := store.StreamConfig(ctx, 1); st.Retention != 24*time.Hour {
		t.Fatalf("stored retention %s, want the new 24h at once", st.Retention)
	}
	if maxAge() != 73*time.Hour || again.Sub(t0.Add(time.Minute)) != bus.RetentionMargin {
		t.Fatalf("BATCHES max age %s, next apply at +%s; want the old 73h kept for the margin", maxAge(), again.Sub(t0))
	}
	if again, err = OwnRetention(ctx, js, store, sc, again, log); err != nil || !again.IsZero() || maxAge() != 25*time.Hour {
		t.Fatalf("after the margin: %v, max age %s, again %v; want 25h", err, maxAge(), again)
	}
}
