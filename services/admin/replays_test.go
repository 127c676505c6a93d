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
