package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// Two ingest replicas behind the same subjects keep the exactly-once rules: the same request (the same
// messageIds) sent to both at once, as a client's retry may reach another replica, is stored once in
// EVENTS; and messages on ingest.<sourceId>, published twice with the same Nats-Msg-Id and taken by
// both replicas from their shared consumer, are each stored once.
func TestTwoIngestsGivenTheSameMessageIdsStoreEachRequestOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an embedded JetStream server: skipped under -short")
	}
	ns, _, _ := testenv.NATS(t)
	replicas := []*harness{startOn(t, ns, nil), startOn(t, ns, nil)}
	ctx := context.Background()

	const requests = 100
	for i := range requests {
		body := fmt.Sprintf(`{"batch":[{"type":"track","userId":"u","event":"A","messageId":"twin-%d-a"},{"type":"identify","userId":"u","messageId":"twin-%d-b"}]}`, i, i)
		codes := make([]int, len(replicas))
		var wg sync.WaitGroup
		for r, h := range replicas {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/batch", strings.NewReader(body))
				req.SetBasicAuth(writeKey, "")
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				codes[r] = resp.StatusCode
			})
		}
		wg.Wait()
		if codes[0] != 200 || codes[1] != 200 {
			t.Fatalf("request %d answered %v by the two replicas, want 200 from both", i, codes)
		}
	}
	events, err := replicas[0].js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if n := storedMessages(t, events); n != requests {
		t.Fatalf("EVENTS holds %d messages after %d requests each sent to both replicas, want %d", n, requests, requests)
	}

	// The JetStream entry: each message published twice with one Nats-Msg-Id, both replicas consuming.
	for i := range requests {
		data := fmt.Appendf(nil, `{"type":"track","userId":"u","event":"From JetStream","messageId":"js-twin-%d"}`, i)
		for range 2 {
			if _, err := replicas[i%2].js.Publish(ctx, bus.IngestSubject(sourceID), data, jetstream.WithMsgID(fmt.Sprintf("js-twin-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Eventually(t, 30*time.Second, "the JetStream entry's messages to be stored", func() bool {
		return storedMessages(t, events) >= 2*requests
	})
	seen := map[string]int{}
	for _, b := range replicas[1].batches(2 * requests) {
		for _, ev := range b.GetEvents() {
			seen[ev.GetMessageId()]++
		}
	}
	for i := range requests {
		for _, id := range []string{fmt.Sprintf("twin-%d-a", i), fmt.Sprintf("twin-%d-b", i), fmt.Sprintf("js-twin-%d", i)} {
			if seen[id] != 1 {
				t.Errorf("%s is stored %d times in EVENTS, want once", id, seen[id])
			}
		}
	}
	if len(seen) != 3*requests {
		t.Errorf("EVENTS holds %d distinct messageIds, want %d", len(seen), 3*requests)
	}
	if n := storedMessages(t, events); n != 2*requests {
		t.Errorf("EVENTS holds %d messages, want %d", n, 2*requests)
	}
}

func storedMessages(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
