package bus_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// Partitions.Subject is, for every source ID and partition count, the subject that a NATS server's own
// mapping events.* → events.{{partition(N,1)}}.{{wildcard(1)}} makes of events.<sourceId>: the partition
// ingest computes is the server's partition().
func TestPartitionsAreWhatTheServersSubjectMappingComputes(t *testing.T) {
	ns, nc, _ := testenv.NATS(t)
	counts := []int{2, 3, 7, 16, 256}
	ids := sourceIDs(2000)
	for _, n := range counts {
		// One mapped prefix a count: events.* itself is mapped for one count only.
		src := fmt.Sprintf("map%d.*", n)
		if err := ns.GlobalAccount().AddMapping(src, fmt.Sprintf("events.{{partition(%d,1)}}.{{wildcard(1)}}", n)); err != nil {
			t.Fatalf("add mapping for %d partitions: %v", n, err)
		}
	}
	got := make(chan string, len(ids))
	sub, err := nc.Subscribe("events.*.*", func(m *nats.Msg) { got <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, n := range counts {
		parts := bus.Partitions(n)
		used := map[int]bool{}
		for _, id := range ids {
			if err := nc.Publish(fmt.Sprintf("map%d.%s", n, id), nil); err != nil {
				t.Fatal(err)
			}
			var subject string
			select {
			case subject = <-got:
			case <-time.After(10 * time.Second):
				t.Fatalf("the server delivered nothing for map%d.%s", n, id)
			}
			if want := parts.Subject(id); subject != want {
				t.Fatalf("with %d partitions the server maps %s to %s, Partitions.Subject says %s", n, id, subject, want)
			}
			used[parts.Of(id)] = true
		}
		if len(used) != n {
			t.Errorf("%d source IDs used %d of %d partitions", len(ids), len(used), n)
		}
	}
}

// sourceIDs returns n IDs shaped like the ones admin makes, and a few of other shapes.
func sourceIDs(n int) []string {
	ids := []string{"a", "src1", "0", "demo", "Source-With-Dashes_and_underscores", strings.Repeat("x", 200)}
	for i := len(ids); i < n; i++ {
		ids = append(ids, fmt.Sprintf("src_%x%07d", i*2654435761, i))
	}
	return ids
}

// A single partition keeps the names streams had before partitions existed.
func TestOnePartitionIsTheOneStreamEventsOfBefore(t *testing.T) {
	for _, n := range []bus.Partitions{0, 1} {
		if got := n.Streams(); len(got) != 1 || got[0] != bus.StreamEvents || n.Subject("s1") != "events.s1" || n.Wildcard(0) != "events.*" {
			t.Errorf("Partitions(%d) names streams %v, subject %s, wildcard %s; want EVENTS, events.s1, events.*", n, got, n.Subject("s1"), n.Wildcard(0))
		}
	}
	if got := bus.Partitions(3).Streams(); strings.Join(got, ",") != "EVENTS-0,EVENTS-1,EVENTS-2" {
		t.Errorf("Partitions(3) names streams %v", got)
	}
}

// Services whose partitions differ from the EVENTS streams on the server refuse to start, with an error
// that names the setting and the streams found; the same setting starts again.
func TestADifferentPartitionsSettingIsRefused(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ctx := context.Background()
	three := bus.DefaultStreamConfig()
	three.Partitions = 3
	if err := bus.EnsureStreams(ctx, js, three, slog.Default()); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, three, slog.Default()); err != nil {
		t.Fatalf("the same setting again: %v", err)
	}
	for _, n := range []bus.Partitions{1, 2, 4} {
		c := bus.DefaultStreamConfig()
		c.Partitions = n
		err := bus.EnsureStreams(ctx, js, c, slog.Default())
		if err == nil {
			t.Fatalf("partitions %d started against the streams of 3", n)
		}
		for _, want := range []string{fmt.Sprintf("partitions: this service is set to %d", n), "S3DEST_PARTITIONS", "EVENTS-0, EVENTS-1, EVENTS-2", "created for partitions 3"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("partitions %d: error %q does not say %q", n, err, want)
			}
		}
	}
	if _, err := js.Stream(ctx, bus.StreamEvents); err == nil {
		t.Error("a refused service created EVENTS")
	}
	if err := (bus.Partitions(0)).Validate(); err == nil || !strings.Contains(err.Error(), "partitions: must be between 1 and 256") {
		t.Errorf("Partitions(0).Validate() = %v", err)
	}
}
