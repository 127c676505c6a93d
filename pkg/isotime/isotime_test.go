package isotime

import (
	"testing"
	"time"
)

func TestParseReadsTheFormsClientsSendAndRefusesTheRest(t *testing.T) {
	want := time.Date(2026, 12, 2, 8, 0, 0, 500e6, time.UTC)
	for _, s := range []string{"2026-12-02T08:00:00.5Z", "2026-12-02T10:00:00.5+02:00", "2026-12-02T10:00:00.5+0200", "2026-12-02T08:00:00.5"} {
		got, err := Parse(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "yesterday", "2026-12-02", "12/02/2026 08:00"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", s)
		}
	}
}
