package allinone

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
	"github.com/s3dest/s3dest/services/admin"
)

// cli runs one s3dest client command against the dev stack and returns what it printed.
func cli(t *testing.T, sum Summary, args ...string) string {
	t.Helper()
	var out strings.Builder
	args = append(args, "--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken)
	if err := RunCLI(context.Background(), args, strings.NewReader(""), &out); err != nil {
		t.Fatalf("s3dest %s: %v\n%s", strings.Join(args[:len(args)-4], " "), err, out.String())
	}
	return out.String()
}

// cliJSON runs a client command with --json and decodes what it printed.
func cliJSON(t *testing.T, sum Summary, out any, args ...string) {
	t.Helper()
	if err := json.Unmarshal([]byte(cli(t, sum, append(args, "--json")...)), out); err != nil {
		t.Fatalf("s3dest %s --json: %v", strings.Join(args, " "), err)
	}
}

// send posts one track event with a write key (and messageId, unless empty) and returns the status code.
func send(t *testing.T, sum Summary, writeKey, messageID string) int {
	t.Helper()
	code, err := post(sum, writeKey, messageID)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// post is send for goroutines other than the test's.
func post(sum Summary, writeKey, messageID string) (int, error) {
	body := `{"userId":"u1","event":"Live"}`
	if messageID != "" {
		body = `{"userId":"u1","event":"Live","messageId":"` + messageID + `"}`
	}
	req, _ := http.NewRequest(http.MethodPost, sum.TrackingURL+"/v1/track", strings.NewReader(body))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestCreatingRepointingAndDisablingADestinationTakeEffectWithinSecondsWithoutARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	const ws = "ws-live-config"
	cfg := devConfig(t, t.TempDir())
	cfg.WorkspaceID = ws
	cfg.NATSAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cfg.DevAWSConfig = devAWSConfig(t, map[string]any{
		"buckets": []any{map[string]any{"name": "live-a", "account": rowsAccount}, map[string]any{"name": "live-b", "account": rowsAccount}},
		"roles":   []any{role("live", admin.TrustPolicy(testIntermediate, ws), allowDoc("s3:PutObject", "arn:aws:s3:::live-*/segment-logs/*"))},
	})
	sum, _ := runDev(t, cfg)
	s3c := rootS3(sum)

	var created struct {
		Source apiSource `json:"source"`
	}
	cliJSON(t, sum, &created, "sources", "create", "--slug", "live")
	src, key := created.Source.ID, created.Source.WriteKeys[0]
	var dest destAndValidation
	cliJSON(t, sum, &dest, "destinations", "create", "--source", src, "--region", "us-east-1", "--bucket", "live-a", "--role-arn", roleARN("live"))
	id := dest.Destination.ID
	if got := cli(t, sum, "destinations", "list", "--source", src); !strings.Contains(got, id) || !strings.Contains(got, "live-a") {
		t.Fatalf("destinations list:\n%s", got)
	}

	// Created: events flow to live-a.
	if code := send(t, sum, key, "live-1"); code != 200 {
		t.Fatalf("track = %d", code)
	}
	waitForObjects(t, s3c, "live-a", "segment-logs/"+src+"/", 1)

	// Re-pointed: the next events go to live-b, and live-a receives no more.
	cli(t, sum, "destinations", "update", id, "--bucket", "live-b")
	if code := send(t, sum, key, "live-2"); code != 200 {
		t.Fatalf("track = %d", code)
	}
	waitForObjects(t, s3c, "live-b", "segment-logs/"+src+"/", 1)

	// Disabled: a file staged afterwards is handled by the destination's lane without being delivered.
	nc, err := nats.Connect("nats://" + cfg.NATSAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(context.Background(), bus.StreamBatches)
	if err != nil {
		t.Fatal(err)
	}
	lastStaged := func() uint64 {
		m, err := stream.GetLastMsgForSubject(context.Background(), bus.StagedSubject(src))
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
		if m == nil {
			return 0
		}
		return m.Sequence
	}
	before := lastStaged()
	out := cli(t, sum, "destinations", "update", id, "--enabled=false")
	if !regexp.MustCompile(`(?m)^ENABLED\s+no$`).MatchString(out) {
		t.Fatalf("destinations update --enabled=false printed:\n%s", out)
	}
	if code := send(t, sum, key, "live-3"); code != 200 {
		t.Fatalf("track = %d", code)
	}
	var staged uint64
	testenv.Eventually(t, 15*time.Second, "the file of the event sent while disabled to be staged", func() bool {
		staged = lastStaged()
		return staged > before
	})
	// The copier's lane of a destination is the durable consumer copier-<destinationId>.
	testenv.Eventually(t, 15*time.Second, "the disabled destination's lane to pass that file", func() bool {
		c, err := stream.Consumer(context.Background(), "copier-"+id)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream >= staged
	})
	if got := listKeys(t, s3c, "live-b", "segment-logs/"); len(got) != 1 {
		t.Fatalf("live-b received %d files while the destination was disabled (want 1, from before): %v", len(got), got)
	}
	if got := listKeys(t, s3c, "live-a", "segment-logs/"); len(got) != 1 {
		t.Fatalf("live-a received %d files after the destination left it (want 1): %v", len(got), got)
	}

	// Enabled again: events flow again.
	cli(t, sum, "destinations", "update", id, "--enabled=true")
	if code := send(t, sum, key, "live-4"); code != 200 {
		t.Fatalf("track = %d", code)
	}
	waitForObjects(t, s3c, "live-b", "segment-logs/"+src+"/", 2)

	// status shows the deliveries and the validation.
	if out := cli(t, sum, "status", id); !strings.Contains(out, "VALIDATION_CODE_OK") || !strings.Contains(out, id) {
		t.Fatalf("status printed:\n%s", out)
	}

	// Deleted, the destination and then its source are gone.
	if out := cli(t, sum, "destinations", "delete", id); out != "destination "+id+" deleted\n" {
		t.Fatalf("destinations delete printed %q", out)
	}
	if out := cli(t, sum, "sources", "delete", src); out != "source "+src+" deleted\n" {
		t.Fatalf("sources delete printed %q", out)
	}
	for _, args := range [][]string{{"destinations", "get", id}, {"sources", "get", src}} {
		args = append(args, "--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken)
		if err := RunCLI(context.Background(), args, strings.NewReader(""), io.Discard); err == nil {
			t.Fatalf("s3dest %s found it after the delete", strings.Join(args[:3], " "))
		}
	}
}

func TestRotatedAndRevokedWriteKeysAreRefusedByIngestWithoutARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	sum, _ := runDev(t, devConfig(t, t.TempDir()))
	first := sum.WriteKey

	// Rotation with a grace: both keys work.
	var rotated struct {
		Source   apiSource `json:"source"`
		WriteKey string    `json:"writeKey"`
	}
	cliJSON(t, sum, &rotated, "sources", "rotate-key", sum.SourceID, first, "--grace", "1h")
	second := rotated.WriteKey
	testenv.Eventually(t, 10*time.Second, "the new key to work", func() bool { return send(t, sum, second, "") == 200 })
	if code := send(t, sum, first, ""); code != 200 {
		t.Fatalf("the rotated key during its grace: %d, want 200", code)
	}
	if out := cli(t, sum, "sources", "get", sum.SourceID); !strings.Contains(out, "RETIRING KEY") || !strings.Contains(out, first) {
		t.Fatalf("sources get printed:\n%s", out)
	}

	// Revoked: refused at once, without a restart; the other key still works.
	cli(t, sum, "sources", "revoke-key", sum.SourceID, first)
	testenv.Eventually(t, 10*time.Second, "ingest to refuse the revoked key", func() bool { return send(t, sum, first, "") == 401 })
	if code := send(t, sum, second, ""); code != 200 {
		t.Fatalf("the remaining key: %d, want 200", code)
	}

	// Rotation without grace revokes the old key at once.
	cliJSON(t, sum, &rotated, "sources", "rotate-key", sum.SourceID, second, "--grace", "0s")
	third := rotated.WriteKey
	testenv.Eventually(t, 10*time.Second, "ingest to refuse the key rotated without grace", func() bool {
		return send(t, sum, second, "") == 401 && send(t, sum, third, "") == 200
	})

	// A disabled source's keys are refused too, and work again once it is enabled.
	cli(t, sum, "sources", "update", sum.SourceID, "--enabled=false")
	testenv.Eventually(t, 10*time.Second, "ingest to refuse a disabled source", func() bool { return send(t, sum, third, "") == 401 })
	cli(t, sum, "sources", "update", sum.SourceID, "--enabled=true")
	testenv.Eventually(t, 10*time.Second, "ingest to accept the source again", func() bool { return send(t, sum, third, "") == 200 })
	if out := cli(t, sum, "sources", "list"); !strings.Contains(out, sum.SourceID) || !strings.Contains(out, "WRITE KEYS") {
		t.Fatalf("sources list printed:\n%s", out)
	}
	var list struct {
		Sources []apiSource `json:"sources"`
	}
	cliJSON(t, sum, &list, "sources", "list")
	if len(list.Sources) != 1 || list.Sources[0].ID != sum.SourceID || len(list.Sources[0].WriteKeys) != 1 || list.Sources[0].WriteKeys[0] != third {
		t.Fatalf("sources list --json = %+v", list)
	}
	var dests struct {
		Destinations []apiDestination `json:"destinations"`
	}
	cliJSON(t, sum, &dests, "destinations", "list")
	if len(dests.Destinations) != 1 || dests.Destinations[0].ID != sum.DestinationID {
		t.Fatalf("destinations list --json = %+v", dests)
	}
}
