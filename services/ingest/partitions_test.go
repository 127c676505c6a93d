package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// With three partitions, each source's events are stored in the one EVENTS stream its ID hashes to, on
// that partition's subject, and nowhere else; an ingest set to another partition count refuses to start
// against those streams, naming the setting.
func TestWithThreePartitionsEachSourceIsStoredInItsOwnPartition(t *testing.T) {
	h := start(t, func(c *Config) { c.Partitions = 3 })
	parts := bus.Partitions(3)
	// Two sources in every partition.
	perPartition := map[int][]string{}
	for i := 0; len(perPartition[0]) < 2 || len(perPartition[1]) < 2 || len(perPartition[2]) < 2; i++ {
		id := fmt.Sprintf("part-src-%d", i)
		if p := parts.Of(id); len(perPartition[p]) < 2 {
			perPartition[p] = append(perPartition[p], id)
		}
	}
	ctx := context.Background()
	var sources []string
	for _, ids := range perPartition {
		for _, id := range ids {
			if err := h.store.PutSource(ctx, &configv1.Source{Id: id, Enabled: true, WriteKeys: []string{"wk-" + id + "-0123456789"}}); err != nil {
				t.Fatal(err)
			}
			sources = append(sources, id)
		}
	}
	for _, id := range sources {
		body := fmt.Sprintf(`{"userId":"u","event":"A","messageId":"m-%s"}`, id)
		// The write key is served once ingest's view of the config has it; the same messageId is stored once.
		testenv.Eventually(t, 10*time.Second, "a 200 for "+id, func() bool {
			resp, _ := h.post("/v1/track", body, func(r *http.Request) { r.SetBasicAuth("wk-"+id+"-0123456789", "") })
			return resp.StatusCode == http.StatusOK
		})
	}
	for p, name := range parts.Streams() {
		s, err := h.js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.Partitions(3).Wildcard(p)))
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 2 || len(info.State.Subjects) != 2 {
			t.Errorf("%s holds %d messages on %v, want one for each of %v", name, info.State.Msgs, info.State.Subjects, perPartition[p])
		}
		for _, id := range perPartition[p] {
			if info.State.Subjects[parts.Subject(id)] != 1 {
				t.Errorf("%s has no message on %s", name, parts.Subject(id))
			}
		}
	}
	if _, err := h.js.Stream(ctx, bus.StreamEvents); err == nil {
		t.Error("a stream EVENTS exists besides the three partitions")
	}

	tel, err := platform.NewTelemetry(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	one := Config{Common: platform.Common{Replicas: 1, AckWait: 30 * time.Second, Partitions: 1}, HTTPAddr: "127.0.0.1:0", PublishTimeout: time.Second,
		Workers: 2, MaxMessageBytes: 1 << 20, MaxInflightBytes: 64 << 20, EventsEncoding: "s2"}
	in, err := New(one, &platform.Process{Log: slog.New(slog.DiscardHandler), Telemetry: tel, NATS: h.nc, JS: h.js})
	if err != nil {
		t.Fatal(err)
	}
	err = in.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "partitions: this service is set to 1") || !strings.Contains(err.Error(), "partitions 3") {
		t.Fatalf("an ingest with partitions 1 started against three partitions: %v", err)
	}
}
