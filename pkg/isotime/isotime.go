// Package isotime reads the ISO-8601 date-times of Segment events (timestamp, sentAt, originalTimestamp,
// receivedAt) as s3dest accepts them: ingest refuses an event whose time does not parse here, and the
// copier's Parquet conversion types the times that do.
package isotime

import (
	"fmt"
	"time"
)

// Parse reads RFC 3339 (with any fraction of a second), an offset without a colon (+0200), or no zone
// at all, which is taken as UTC.
func Parse(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// Clients also send an offset without a colon, or no zone at all (taken as UTC).
	for _, layout := range []string{"2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO-8601 date-time: %q", s)
}
