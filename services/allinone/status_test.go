package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// destinationStatus is GET /destinations/{id}/status's data.status, as the API answers it.
func destinationStatus(t *testing.T, api *apiClient, id string) map[string]any {
	t.Helper()
	var out struct {
		Status map[string]any `json:"status"`
	}
	must(t, api, http.MethodGet, "/destinations/"+id+"/status", nil, &out)
	return out.Status
}

// A destination's delivery status (per received day: files, events, bytes, last delivery, last error,
// dead letters; its validation and its last delivered file) lives in JetStream: after a restart of
// s3dest dev on the same data directory and a FLUSHALL of its Redis, the status API answers every field
// as before. A working destination gets files, a broken one (its role does not exist) a last error and a
// failed validation; the broken one is then disabled, so that nothing changes its status meanwhile.
func TestDeliveryStatusSurvivesARestartOfDevAndAFlushOfItsRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack twice with redis-server: skipped under -short")
	}
	redisURL, rdb := testenv.Redis(t)
	cfg := devConfig(t, t.TempDir())
	cfg.RedisURL = redisURL
	sum, stop := runDev(t, cfg)
	api := testClient(t, sum)

	bs := createSource(t, api, "status-broken")
	brokenRole := sum.RoleARN[:strings.LastIndex(sum.RoleARN, "/")+1] + "s3dest-no-such-role"
	var created destAndValidation
	must(t, api, http.MethodPost, "/destinations", map[string]any{"sourceId": bs.ID, "metadataId": layout.AWSS3MetadataID,
		"name": "Broken", "settings": map[string]any{"region": sum.Region, "s3Bucket": sum.Bucket, "iamRoleArn": brokenRole}}, &created)
	broken := created.Destination.ID
	for i, n := range []int{10, 10, 5} {
		if code := postTracking(t, sum, "/v1/batch", sum.WriteKey, batchBody(fmt.Sprintf("status%d", i), n)); code != http.StatusOK {
			t.Fatalf("demo batch %d = %d", i, code)
		}
	}
	if code := postTracking(t, sum, "/v1/batch", bs.WriteKeys[0], batchBody("status-broken", 3)); code != http.StatusOK {
		t.Fatalf("broken batch = %d", code)
	}

	events := func(st map[string]any) (n int) {
		days, _ := st["days"].([]any)
		for _, d := range days {
			var e int
			fmt.Sscan(fmt.Sprint(d.(map[string]any)["events"]), &e)
			n += e
		}
		return n
	}
	lastError := func(st map[string]any) string {
		days, _ := st["days"].([]any)
		if len(days) == 0 {
			return ""
		}
		s, _ := days[0].(map[string]any)["lastError"].(string)
		return s
	}
	testenv.Eventually(t, 60*time.Second, "the demo destination's 25 events delivered and the broken one's last error and validation", func() bool {
		demo, bst := destinationStatus(t, api, sum.DestinationID), destinationStatus(t, api, broken)
		return events(demo) == 25 && demo["lastDelivery"] != nil && lastError(bst) != "" && bst["validation"] != nil
	})
	// Disabled, it is tried no more (its lane drops its waiting file at the next look, here after the restart).
	must(t, api, http.MethodPatch, "/destinations/"+broken, map[string]any{"enabled": false}, nil)
	before := map[string]map[string]any{sum.DestinationID: destinationStatus(t, api, sum.DestinationID), broken: destinationStatus(t, api, broken)}
	for id, st := range before {
		js, _ := json.Marshal(st)
		t.Logf("before the restart, %s: %s", id, js)
	}

	// The files waiting in the lanes are the lanes' state, not the delivery history: the disabled
	// destination's lane drops its file when the copier looks at it again.
	for _, st := range before {
		if r, ok := st["retention"].(map[string]any); ok {
			for _, f := range []string{"waitingFiles", "oldestWaitingStagedAt", "oldestWaitingDeadline"} {
				delete(r, f)
			}
		}
	}
	stop()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Fatalf("Redis holds %d keys after FLUSHALL (%v)", n, err)
	}
	sum, _ = runDev(t, cfg)
	api = testClient(t, sum)
	for id, want := range before {
		got := destinationStatus(t, api, id)
		if r, ok := got["retention"].(map[string]any); ok {
			for _, f := range []string{"waitingFiles", "oldestWaitingStagedAt", "oldestWaitingDeadline"} {
				delete(r, f)
			}
		}
		for _, field := range []string{"destinationId", "enabled", "days", "validation", "lastDelivery", "retention"} {
			if !reflect.DeepEqual(got[field], want[field]) {
				g, _ := json.Marshal(got[field])
				w, _ := json.Marshal(want[field])
				t.Errorf("destination %s: %s after the restart and FLUSHALL = %s, want %s", id, field, g, w)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("destination %s: status after the restart and FLUSHALL differs:\n got %v\nwant %v", id, got, want)
		}
	}
	if events(before[sum.DestinationID]) != 25 || lastError(before[broken]) == "" || before[broken]["validation"] == nil {
		t.Fatalf("the statuses compared lack what the traffic implies: %v", before)
	}
}
