package copier

import (
	"bytes"
	"compress/gzip"
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
		if diffs := DiffEvent(rows[i], []byte(line)); len(diffs) > 0 {
			t.Errorf("row %d differs from its NDJSON line: %s", i+1, strings.Join(diffs, "; "))
		}
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

func TestDiffEventFindsAChangedAMissingAndAnAddedField(t *testing.T) {
	line := []byte(`{"type":"track","messageId":"m-1","timestamp":"2026-12-02T10:00:00Z","properties":{"a":1},"version":2}`)
	s := func(v string) *string { return &v }
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	same := ParquetEvent{Type: s("track"), MessageID: s("m-1"), Timestamp: &at, Properties: s(`{ "a" : 1 }`), Extra: s(`{"version":2}`)}
	if d := DiffEvent(same, line); len(d) != 0 {
		t.Fatalf("DiffEvent of an equal row = %v", d)
	}
	later := at.Add(time.Millisecond)
	changed := ParquetEvent{Type: s("page"), MessageID: s("m-1"), Timestamp: &later, Properties: s(`{"a":2}`), Event: s("x")}
	d := strings.Join(DiffEvent(changed, line), "; ")
	for _, want := range []string{"type", "timestamp", "properties", "version", "event"} {
		if !strings.Contains(d, want) {
			t.Errorf("DiffEvent = %q, does not name %s", d, want)
		}
	}
}
