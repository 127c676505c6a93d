package copier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/s3dest/s3dest/pkg/isotime"
)

// Fields are the top-level fields a row holds, as JSON: the typed columns (times as RFC 3339 in UTC),
// the JSON columns as their text, and the fields of extra. The inverse of the conversion, up to JSON
// spacing, key order, time zones (the instant is kept) and nulls (a null field is absent).
func (r ParquetEvent) Fields() (map[string]json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if r.Extra != nil {
		if err := json.Unmarshal([]byte(*r.Extra), &fields); err != nil {
			return nil, fmt.Errorf("extra: %w", err)
		}
	}
	for name, v := range map[string]*string{"type": r.Type, "event": r.Event, "name": r.Name, "userId": r.UserID,
		"anonymousId": r.AnonymousID, "messageId": r.MessageID} {
		if v != nil {
			fields[name], _ = json.Marshal(*v)
		}
	}
	for name, v := range map[string]*time.Time{"timestamp": r.Timestamp, "sentAt": r.SentAt, "receivedAt": r.ReceivedAt,
		"originalTimestamp": r.OriginalTimestamp} {
		if v != nil {
			fields[name], _ = json.Marshal(v.UTC().Format(time.RFC3339Nano))
		}
	}
	for name, v := range map[string]*string{"properties": r.Properties, "traits": r.Traits, "context": r.Context} {
		if v != nil {
			fields[name] = json.RawMessage(*v)
		}
	}
	return fields, nil
}

// DiffEvent lists how a row differs from the NDJSON line it was converted from, field by field: empty
// when the row holds every field of the line with its value (times as the same instant, JSON as the
// same value) and nothing else. The read-back tests hold both formats to it.
func DiffEvent(row ParquetEvent, line []byte) []string {
	var want map[string]json.RawMessage
	if err := json.Unmarshal(line, &want); err != nil {
		return []string{"the NDJSON line is not a JSON object: " + err.Error()}
	}
	got, err := row.Fields()
	if err != nil {
		return []string{err.Error()}
	}
	var diffs []string
	for name, w := range want {
		g, ok := got[name]
		switch {
		case string(w) == "null":
			if ok {
				diffs = append(diffs, fmt.Sprintf("%s is null in NDJSON, %s in Parquet", name, g))
			}
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s = %s in NDJSON, missing from Parquet", name, w))
		case !sameJSON(w, g):
			diffs = append(diffs, fmt.Sprintf("%s = %s in NDJSON, %s in Parquet", name, w, g))
		}
		delete(got, name)
	}
	for name, g := range got {
		diffs = append(diffs, fmt.Sprintf("Parquet has %s = %s, the NDJSON line has no such field", name, g))
	}
	sort.Strings(diffs)
	return diffs
}

// sameJSON compares two JSON values; two strings that are both times (isotime) compare as instants.
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	if sa, ok := va.(string); ok {
		if sb, ok := vb.(string); ok {
			ta, ea := isotime.Parse(sa)
			tb, eb := isotime.Parse(sb)
			if ea == nil && eb == nil {
				return ta.Equal(tb)
			}
		}
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}
