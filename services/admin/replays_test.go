package admin

import (
	"strings"
	"testing"
)

func TestAReplayDayIsADateInUTCOrTheKeysDayInMillisecondsAndAnythingElseIsRefusedNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{in: "2025-12-01", want: 1764547200000},
		{in: "1764547200000", want: 1764547200000},
		{in: "0", want: 0},
		{in: "", err: "from: required"},
		{in: "2026-02-30", err: `from: "2026-02-30" is not a date`},
		{in: "2026-12-1", err: `from: "2026-12-1" is neither`},
		{in: "1764547200001", err: "from: 1764547200001 is not the start of a day: a key's day is a multiple of 86400000 (00:00 UTC), such as 1764547200000"},
		{in: "-86400000", err: "is neither"},
		{in: "yesterday", err: "is neither a day as YYYY-MM-DD (UTC) nor the key's day in Unix milliseconds"},
	} {
		got, err := ParseDay("from", tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseDay(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDay(%q) error = %v; want one containing %q", tc.in, err, tc.err)
		}
	}
}

// backfill is a create-time choice: a created destination answers with it (and one created without it
// shows none), and a PATCH that sets it is refused naming the setting and the way to replay.
func TestBackfillIsTakenWhenADestinationIsCreatedAndRefusedOnAnUpdate(t *testing.T) {
	a := newAPI(t)
	sourceID := a.ok("POST", "/sources", `{"slug":"late"}`)["source"].(map[string]any)["id"].(string)
	d := a.ok("POST", "/destinations", `{"sourceId":"`+sourceID+`","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"us-east-1","s3Bucket":"late-bucket","iamRoleArn":"arn:aws:iam::123456789012:role/r","backfill":true}}`)["destination"].(map[string]any)
	if got := d["settings"].(map[string]any)["backfill"]; got != true {
		t.Fatalf("created with backfill: settings.backfill = %v, want true (%v)", got, d["settings"])
	}
	id := d["id"].(string)
	code, out := a.call("PATCH", "/destinations/"+id, `{"settings":{"backfill":false}}`, "Bearer "+token)
	if _, msg := errorOf(t, out); code != 422 || !strings.Contains(msg, "settings.backfill: only a destination being created can ask for backfill") || !strings.Contains(msg, "replays") {
		t.Fatalf("PATCH settings.backfill = %d %q, want 422 naming settings.backfill and replays", code, msg)
	}
	other := a.ok("POST", "/sources", `{"slug":"now"}`)["source"].(map[string]any)["id"].(string)
	d = a.ok("POST", "/destinations", `{"sourceId":"`+other+`","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"us-east-1","s3Bucket":"now-bucket","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)["destination"].(map[string]any)
	if _, shown := d["settings"].(map[string]any)["backfill"]; shown {
		t.Fatalf("created without backfill, the answer shows it: %v", d["settings"])
	}
}
