package allinone

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Against s3dest dev, through the CLI (REST) and gRPC: a replay of today refills an emptied bucket with
// the same lines and says what it did; a second one skips every key; one with --overwrite replaces
// them; bad days are refused naming the field.
func TestReplayFromTheCLIRefillsAnEmptiedBucketAndSaysWhatItDid(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	sum, _ := runDev(t, devConfig(t, t.TempDir()))
	track(t, sum, `{"userId":"u-replay","event":"Replayed","messageId":"m-replay-1"}`)
	s3c := rootS3(sum)
	keys := waitForObjects(t, s3c, sum.Bucket, "segment-logs/", 1)
	lines := readLines(t, s3c, sum.Bucket, keys[0])
	for _, k := range keys {
		if _, err := s3c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(sum.Bucket), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	today := time.Now().UTC().Format(time.DateOnly)

	out := cli(t, sum, "replay", "--destination", sum.DestinationID, "--from", today, "--to", today)
	if !strings.Contains(out, " done: files 1/1") || !strings.Contains(out, "written 1, skipped 0") {
		t.Fatalf("the first replay printed:\n%s\nwant it done with the one file written", out)
	}
	if got := readLines(t, s3c, sum.Bucket, keys[0]); strings.Join(got, "\n") != strings.Join(lines, "\n") {
		t.Fatalf("the replayed file holds %q, want %q", got, lines)
	}

	out = cli(t, sum, "replay", "--destination", sum.DestinationID, "--from", today, "--to", today)
	if !strings.Contains(out, "written 0, skipped 1, replaced 0") {
		t.Fatalf("the second replay printed:\n%s\nwant the key skipped", out)
	}

	var started struct {
		Replay struct {
			ID string `json:"id"`
		} `json:"replay"`
	}
	cliJSON(t, sum, &started, "replay", "--destination", sum.DestinationID, "--from", today, "--to", today, "--overwrite", "--detach")
	out = cli(t, sum, "replay", "status", started.Replay.ID, "--follow")
	if !strings.Contains(out, "replaced 1") || !strings.Contains(out, " done: ") {
		t.Fatalf("status --follow of the overwrite replay printed:\n%s\nwant it done with the key replaced", out)
	}

	// The other replay commands, in JSON as a script reads them; a done replay cannot be cancelled or
	// resumed, and the CLI says so as a refused value (exit 2).
	var followed, listed struct {
		Replay  struct{ State string } `json:"replay"`
		Replays []struct{ ID string }  `json:"replays"`
	}
	cliJSON(t, sum, &followed, "replay", "status", started.Replay.ID)
	cliJSON(t, sum, &listed, "replay", "list", "--destination", sum.DestinationID)
	if followed.Replay.State != "REPLAY_STATE_DONE" || len(listed.Replays) != 3 {
		t.Errorf("replay status --json: state %q; replay list --json: %d replays, want DONE and 3", followed.Replay.State, len(listed.Replays))
	}
	for cmd, want := range map[string]string{"cancel": "nothing to cancel", "resume": "only a cancelled or failed replay can be resumed"} {
		err := RunCLI(context.Background(), []string{"replay", cmd, started.Replay.ID, "--json", "--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken},
			strings.NewReader(""), io.Discard)
		if ExitCode(err) != ExitUsage || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("replay %s of a done replay: exit %d, %v; want exit %d saying %q", cmd, ExitCode(err), err, ExitUsage, want)
		}
	}

	conn, err := grpc.NewClient(sum.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(platform.BearerCredentials(sum.AdminToken)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	list, err := adminv1.NewAdminServiceClient(conn).ListReplays(context.Background(), &adminv1.ListReplaysRequest{DestinationId: sum.DestinationID})
	if err != nil {
		t.Fatalf("gRPC ListReplays: %v", err)
	}
	if n := len(list.GetData().GetReplays()); n != 3 || list.GetData().GetReplays()[0].GetId() != started.Replay.ID {
		t.Fatalf("gRPC ListReplays gave %d replays (newest %s), want 3, the overwrite one first", n, list.GetData().GetReplays()[0].GetId())
	}

	for _, tc := range []struct{ from, to, want string }{
		{"2026-13-01", today, "from: \"2026-13-01\" is not a date"},
		{today, "yesterday", "to: \"yesterday\" is neither"},
		{"1767225600001", today, "from: 1767225600001 is not the start of a day"},
		{today, "2020-01-01", "from: " + today + " is after to"},
	} {
		var out strings.Builder
		err := RunCLI(context.Background(), []string{"replay", "--destination", sum.DestinationID, "--from", tc.from, "--to", tc.to,
			"--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken}, strings.NewReader(""), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("replay --from %s --to %s: error %v, want one saying %q", tc.from, tc.to, err, tc.want)
		}
	}
}
