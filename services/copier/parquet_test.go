package copier

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// gzipLines is a staged file: the lines as gzipped NDJSON.
func gzipLines(t testing.TB, lines ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	for _, l := range lines {
		if _, err := io.WriteString(zw, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readParquet reads every row of a Parquet file with the library.
func readParquet(t testing.TB, data []byte) []ParquetEvent {
	t.Helper()
	r := parquet.NewGenericReader[ParquetEvent](bytes.NewReader(data))
	defer r.Close()
	rows := make([]ParquetEvent, r.NumRows())
	n, err := r.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return rows[:n]
}

func TestParquetKeepsEveryFieldTypedOrAsJSONAndDropsNothing(t *testing.T) {
	lines := []string{
		// A track event as ingest stores it, with fields beyond the typed ones.
		`{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1","messageId":"m-1",` +
			`"timestamp":"2026-12-02T10:00:00.123Z","sentAt":"2026-12-02T10:00:01.5+02:00","receivedAt":"2026-12-02T10:00:02.000001Z",` +
			`"originalTimestamp":"2026-12-02T10:00:00Z","properties":{"total": 12.5,"tags":["a","<b>"]},` +
			`"context":{"ip":"203.0.113.1"},"integrations":{"All":false},"version":2,"channel":"server"}`,
		// identify with traits; a numeric userId and an unparseable timestamp keep their values in extra.
		`{"type":"identify","userId":42,"traits":{"plan":"pro"},"messageId":"m-2","timestamp":"yesterday","sentAt":"2026-12-02T10:00:00.123456789Z"}`,
		// group and alias fields, nulls.
		`{"type":"group","groupId":"g1","anonymousId":null,"messageId":"m-3","properties":null}`,
		`{"type":"alias","previousId":"old","userId":"new","messageId":"m-4"}`,
	}
	var out bytes.Buffer
	n, err := WriteParquet(&out, bytes.NewReader(gzipLines(t, lines...)))
	if err != nil || n != 4 {
		t.Fatalf("WriteParquet = %d, %v; want 4 events", n, err)
	}
	rows := readParquet(t, out.Bytes())
	if len(rows) != len(lines) {
		t.Fatalf("read %d rows, want %d", len(rows), len(lines))
	}
	for i, line := range lines {
		equalToLine(t, rows[i], line)
	}
	// What the rule puts where, spelled out.
	if rows[1].UserID != nil || rows[1].Timestamp != nil || rows[1].SentAt != nil {
		t.Errorf("row 2: userId %v, timestamp %v, sentAt %v; want null columns for a number and times that do not fit", rows[1].UserID, rows[1].Timestamp, rows[1].SentAt)
	}
	if want := `{"sentAt":"2026-12-02T10:00:00.123456789Z","timestamp":"yesterday","userId":42}`; rows[1].Extra == nil || *rows[1].Extra != want {
		t.Errorf("row 2 extra = %v, want %s", rows[1].Extra, want)
	}
	if got := rows[0].SentAt; got == nil || !got.Equal(time.Date(2026, 12, 2, 8, 0, 1, 500e6, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("row 1 sentAt = %v, want 2026-12-02T08:00:01.5Z in UTC", got)
	}
	if got := rows[0].Properties; got == nil || *got != `{"total": 12.5,"tags":["a","<b>"]}` {
		t.Errorf("row 1 properties = %v, want the JSON text as received", got)
	}
	if rows[0].Extra == nil || *rows[0].Extra != `{"channel":"server","integrations":{"All":false},"version":2}` {
		t.Errorf("row 1 extra = %v", rows[0].Extra)
	}
}

// equalToLine fails unless row holds exactly what the NDJSON line holds: each typed column equals its
// field (times as the same instant), each JSON column and extra field is the same JSON, and nothing of
// the line is missing. Shared by the pipeline test of both formats.
func equalToLine(t testing.TB, row ParquetEvent, line string) {
	t.Helper()
	var ev map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("NDJSON line %s: %v", line, err)
	}
	got := map[string]json.RawMessage{}
	if row.Extra != nil {
		if err := json.Unmarshal([]byte(*row.Extra), &got); err != nil {
			t.Fatalf("extra %s: %v", *row.Extra, err)
		}
	}
	str := func(name string, v *string) {
		if v != nil {
			got[name], _ = json.Marshal(*v)
		}
	}
	tm := func(name string, v *time.Time) {
		if v != nil {
			got[name], _ = json.Marshal(v.Format(time.RFC3339Nano))
		}
	}
	raw := func(name string, v *string) {
		if v != nil {
			got[name] = json.RawMessage(*v)
		}
	}
	str("type", row.Type)
	str("event", row.Event)
	str("name", row.Name)
	str("userId", row.UserID)
	str("anonymousId", row.AnonymousID)
	str("messageId", row.MessageID)
	tm("timestamp", row.Timestamp)
	tm("sentAt", row.SentAt)
	tm("receivedAt", row.ReceivedAt)
	tm("originalTimestamp", row.OriginalTimestamp)
	raw("properties", row.Properties)
	raw("traits", row.Traits)
	raw("context", row.Context)
	for name, want := range ev {
		g, ok := got[name]
		switch {
		case string(want) == "null":
			if ok {
				t.Errorf("messageId %s: %s is null in NDJSON, %s in Parquet", row.messageID(), name, g)
			}
		case !ok:
			t.Errorf("messageId %s: %s = %s in NDJSON, missing from Parquet", row.messageID(), name, want)
		case !sameJSON(t, name, want, g):
			t.Errorf("messageId %s: %s = %s in NDJSON, %s in Parquet", row.messageID(), name, want, g)
		}
		delete(got, name)
	}
	for name, v := range got {
		t.Errorf("messageId %s: Parquet has %s = %s, the NDJSON line has no such field", row.messageID(), name, v)
	}
}

func (r ParquetEvent) messageID() string {
	if r.MessageID == nil {
		return "(none)"
	}
	return *r.MessageID
}

// sameJSON compares two JSON values; strings that are both times compare as instants.
func sameJSON(t testing.TB, name string, a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		t.Fatalf("%s: not JSON: %s / %s", name, a, b)
	}
	if sa, ok := va.(string); ok {
		if sb, ok := vb.(string); ok {
			ta, ea := time.Parse(time.RFC3339Nano, sa)
			tb, eb := time.Parse(time.RFC3339Nano, sb)
			if ea == nil && eb == nil {
				return ta.Equal(tb)
			}
		}
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

func TestALineThatIsNotAJSONObjectCannotBeConverted(t *testing.T) {
	_, err := WriteParquet(io.Discard, bytes.NewReader(gzipLines(t, `{"type":"track","messageId":"m-1"}`, `[1,2]`)))
	if !errors.Is(err, errUnconvertible) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("WriteParquet = %v, want errUnconvertible naming line 2", err)
	}
	if f := classify(err, stepPut, nil); !isPermanent(f) {
		t.Fatalf("classify(%v) is not permanent: the file would be retried forever", err)
	}
}

func TestTheSameStagedFileAlwaysGivesTheSameParquetBytes(t *testing.T) {
	staged := gzipLines(t, `{"type":"track","messageId":"m-1","version":2,"channel":"server","integrations":{}}`,
		`{"type":"page","name":"Home","messageId":"m-2","timestamp":"2026-12-02T10:00:00Z"}`)
	var a, b bytes.Buffer
	if _, err := WriteParquet(&a, bytes.NewReader(staged)); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteParquet(&b, bytes.NewReader(staged)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two conversions of one staged file differ: a retry would write another object than the first attempt")
	}
}
