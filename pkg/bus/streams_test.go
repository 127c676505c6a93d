package bus_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// The margin by which the streams outlive the retention covers the longest a copier can be late to its
// decision at a file's deadline: a nak's redelivery, many times over.
func TestTheRetentionMarginIsFarLongerThanTheLongestRedeliveryBackoff(t *testing.T) {
	longest := time.Duration(0)
	for attempt := uint64(1); attempt < 64; attempt++ {
		longest = max(longest, bus.Backoff(attempt))
	}
	if bus.RetentionMargin < 10*longest {
		t.Fatalf("RetentionMargin %s is less than ten times the longest backoff %s", bus.RetentionMargin, longest)
	}
}

// The owner applies the retention (plus the margin) to every stream and the object store; a service
// that only ensures the streams exist, configured otherwise, changes nothing and says which field
// differs and both values.
func TestOnlyTheOwnerChangesTheStreamsAndAnyOtherServiceReportsADifferenceWithoutApplyingIt(t *testing.T) {
	if testing.Short() {
		t.Skip("needs embedded NATS; run without -short")
	}
	ctx := context.Background()
	_, _, js := testenv.NATS(t)
	owned := bus.DefaultStreamConfig()
	owned.Retention = 48 * time.Hour
	if err := bus.ApplyStreams(ctx, js, owned); err != nil {
		t.Fatal(err)
	}
	other := bus.DefaultStreamConfig() // 7 days: what a service that never read the owner's setting has
	var logs bytes.Buffer
	if err := bus.EnsureStreams(ctx, js, other, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{bus.StreamIngest, bus.StreamEvents, bus.StreamBatches, bus.StreamDeadLetter} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxAge; got != 49*time.Hour {
			t.Errorf("stream %s: MaxAge %s, want the owner's retention plus the margin, 49h", name, got)
		}
		if line := "stream=" + name + " field=maxAge has=49h0m0s configured=169h0m0s"; !strings.Contains(logs.String(), line) {
			t.Errorf("the logs do not report %q:\n%s", line, logs.String())
		}
	}
	obs, err := js.ObjectStore(ctx, bus.ObjectBatches)
	if err != nil {
		t.Fatal(err)
	}
	st, err := obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 49*time.Hour || !strings.Contains(logs.String(), "objectStore=BATCHES field=ttl has=49h0m0s configured=169h0m0s") {
		t.Errorf("object store TTL %s (want 49h), logs:\n%s", st.TTL(), logs.String())
	}

	// Where they agree, nothing is reported.
	logs.Reset()
	if err := bus.EnsureStreams(ctx, js, owned, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("streams as configured, yet: %s", logs.String())
	}
}
