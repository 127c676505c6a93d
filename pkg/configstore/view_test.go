package configstore

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

func TestARetiringWriteKeyStopsAtItsExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded NATS server: skipped under -short")
	}
	_, _, js := testenv.NATS(t)
	ctx := context.Background()
	store, err := Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(time.Hour)
	src := &configv1.Source{Id: "src1", Enabled: true, WriteKeys: []string{"current"},
		RetiringWriteKeys: []*configv1.RetiringWriteKey{{WriteKey: "retiring", ExpiresAt: timestamppb.New(expiry)}}}
	if err := store.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	view, err := store.Watch(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := expiry.Add(-time.Second)
	view.now = func() time.Time { return now }
	for key, want := range map[string]bool{"current": true, "retiring": true, "unknown": false} {
		if _, ok := view.SourceByWriteKey(key); ok != want {
			t.Errorf("a second before expiry, key %q works = %v, want %v", key, ok, want)
		}
	}
	now = expiry
	for key, want := range map[string]bool{"current": true, "retiring": false} {
		if _, ok := view.SourceByWriteKey(key); ok != want {
			t.Errorf("at expiry, key %q works = %v, want %v", key, ok, want)
		}
	}

	// Removing the keys from the source (a revocation) takes effect through the watch.
	src.WriteKeys, src.RetiringWriteKeys = nil, nil
	now = expiry.Add(-time.Second)
	if err := store.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the revocation to reach the view", func() bool {
		_, a := view.SourceByWriteKey("current")
		_, b := view.SourceByWriteKey("retiring")
		return !a && !b
	})
}

// BenchmarkAChangeReachesAWatchingView measures how long a config write (a destination disabled, a key
// revoked) takes to reach every service's View: the "without a restart" latency.
func BenchmarkAChangeReachesAWatchingView(b *testing.B) {
	_, _, js := testenv.NATS(b)
	ctx := context.Background()
	store, err := Own(ctx, js, 1)
	if err != nil {
		b.Fatal(err)
	}
	view, err := store.Watch(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	d := &configv1.Destination{Id: "d1", SourceId: "s1"}
	b.ResetTimer()
	for i := range b.N {
		d.Name = strconv.Itoa(i)
		if err := store.PutDestination(ctx, d); err != nil {
			b.Fatal(err)
		}
		for {
			if got, ok := view.Destination("d1"); ok && got.GetName() == d.Name {
				break
			}
			runtime.Gosched()
		}
	}
}

func TestAViewWhoseWatchEndsStartsItAgainAndMissesNoRevocation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded NATS server: skipped under -short")
	}
	_, _, js := testenv.NATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	src := &configv1.Source{Id: "src1", Enabled: true, WriteKeys: []string{"leaked"}}
	if err := store.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	view, err := store.watch(ctx, slog.New(slog.DiscardHandler), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	view.endWatch <- struct{}{} // the watch ends, as on a broken subscription
	src.WriteKeys = nil         // and the key is revoked meanwhile
	if err := store.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the revocation to reach the restarted view", func() bool {
		_, ok := view.SourceByWriteKey("leaked")
		return !ok
	})
	if err := view.Fresh(); err != nil {
		t.Fatalf("a restarted view is not fresh: %v", err)
	}
}

func TestAViewThatCannotConfirmItIsCurrentSaysItIsStale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded NATS server: skipped under -short")
	}
	ns, _, js := testenv.NATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	view, err := store.watch(ctx, slog.New(slog.DiscardHandler), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "a probe to confirm the view", func() bool { return view.Fresh() == nil })
	ns.Shutdown()
	ns.WaitForShutdown()
	testenv.Eventually(t, 10*time.Second, "the view to call itself stale", func() bool { return view.Fresh() != nil })
	if err := view.Fresh(); !strings.Contains(err.Error(), "last confirmed current") {
		t.Fatalf("stale view says %v", err)
	}
}
