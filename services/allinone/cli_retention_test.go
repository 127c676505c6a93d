package allinone

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/testenv"
	"github.com/s3dest/s3dest/services/admin"
)

// A destination whose role trusts another External ID has a file waiting: s3dest status shows it
// waiting, with the retention deadline of the oldest file; the operator extends the destination's
// retention with the CLI, and status, get and --json show the extension; a bad request names the flag.
func TestStatusShowsAFailingDestinationsWaitingFilesAndTheOperatorExtendsItsRetentionWithTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	const ws = "ws-cli-retention"
	cfg := devConfig(t, t.TempDir())
	cfg.WorkspaceID = ws
	cfg.DevAWSConfig = devAWSConfig(t, map[string]any{
		"buckets": []any{map[string]any{"name": "ret-cli", "account": rowsAccount}},
		"roles":   []any{role("ret-cli", admin.TrustPolicy(testIntermediate, "not-"+ws), allowDoc("s3:PutObject", "arn:aws:s3:::ret-cli/segment-logs/*"))},
	})
	sum, _ := runDev(t, cfg)

	var created struct {
		Source apiSource `json:"source"`
	}
	cliJSON(t, sum, &created, "sources", "create", "--slug", "ret-cli")
	var dest destAndValidation
	cliJSON(t, sum, &dest, "destinations", "create", "--source", created.Source.ID, "--region", "us-east-1", "--bucket", "ret-cli", "--role-arn", roleARN("ret-cli"))
	id := dest.Destination.ID
	sent := time.Now()
	if code := send(t, sum, created.Source.WriteKeys[0], "ret-cli-1"); code != 200 {
		t.Fatalf("track = %d", code)
	}

	var st struct {
		Statuses []struct {
			Status apiStatus `json:"status"`
		} `json:"statuses"`
	}
	testenv.Eventually(t, 30*time.Second, "the file to wait for the failing destination", func() bool {
		cliJSON(t, sum, &st, "status", id)
		r := st.Statuses[0].Status.Retention
		return r != nil && r.WaitingFiles == "1" && r.OldestWaitingDeadline != ""
	})
	r := st.Statuses[0].Status.Retention
	deadline, err := time.Parse(time.RFC3339Nano, r.OldestWaitingDeadline)
	if err != nil || r.Retention != "604800s" || deadline.Before(sent.Add(7*24*time.Hour)) || deadline.After(time.Now().Add(7*24*time.Hour)) {
		t.Fatalf("retention %+v (%v): want 604800s and the file's deadline 7 days after it was staged", r, err)
	}
	table := cli(t, sum, "status", id)
	for _, want := range []string{"WAITING FILES", "OLDEST DEADLINE", "DEAD-LETTERED FILES/EVENTS", deadline.UTC().Format("2006-01-02T15:04")} {
		if !strings.Contains(table, want) {
			t.Errorf("s3dest status lacks %q:\n%s", want, table)
		}
	}

	got := cli(t, sum, "destinations", "extend-retention", id, "--by", "72h")
	if !strings.Contains(got, "RETENTION EXTENDED UNTIL") || !strings.Contains(got, time.Now().Add(72*time.Hour).UTC().Format("2006-01-02T15")) {
		t.Fatalf("extend-retention printed:\n%s", got)
	}
	cliJSON(t, sum, &st, "status", id)
	if until, err := time.Parse(time.RFC3339Nano, st.Statuses[0].Status.Retention.ExtendedUntil); err != nil || until.Before(time.Now().Add(71*time.Hour)) {
		t.Fatalf("status extendedUntil %q, want about now + 72h", st.Statuses[0].Status.Retention.ExtendedUntil)
	}
	var out strings.Builder
	err = RunCLI(context.Background(), []string{"destinations", "extend-retention", id, "--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken}, strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "--by DURATION") {
		t.Fatalf("extend-retention without --by or --end: %v", err)
	}
	err = RunCLI(context.Background(), []string{"destinations", "extend-retention", id, "--by", "2400h", "--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken}, strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "extendBy: must be more than 0s and at most 2160h") {
		t.Fatalf("extend-retention --by 2400h: %v", err)
	}
	cli(t, sum, "destinations", "extend-retention", id, "--end")
	var ended struct {
		Statuses []struct {
			Status apiStatus `json:"status"`
		} `json:"statuses"`
	}
	cliJSON(t, sum, &ended, "status", id)
	if u := ended.Statuses[0].Status.Retention.ExtendedUntil; u != "" {
		t.Fatalf("after --end the status still shows an extension until %s", u)
	}
}
