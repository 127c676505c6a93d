package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/eventwire"
	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
)

func TestParsePayloadRefusesEachBrokenRuleNamingTheField(t *testing.T) {
	cases := []struct {
		name, path, body, field string
	}{
		{"not JSON", "track", `{"userId":`, ""},
		{"not an object", "track", `[1,2]`, ""},
		{"no identity", "track", `{"event":"E"}`, "userId"},
		{"empty userId and no anonymousId", "track", `{"userId":"","event":"E"}`, "userId"},
		{"track without event", "track", `{"userId":"u"}`, "event"},
		{"group without groupId", "group", `{"userId":"u"}`, "groupId"},
		{"alias without userId", "alias", `{"anonymousId":"a","previousId":"p"}`, "userId"},
		{"alias without previousId", "alias", `{"userId":"u"}`, "previousId"},
		{"bad timestamp", "track", `{"userId":"u","event":"E","timestamp":"yesterday"}`, "timestamp"},
		{"context not an object", "identify", `{"userId":"u","context":"x"}`, "context"},
		{"empty messageId", "track", `{"userId":"u","event":"E","messageId":""}`, "messageId"},
		{"messageId not UTF-8", "track", "{\"userId\":\"u\",\"event\":\"E\",\"messageId\":\"\xff\"}", "messageId"},
		{"trailing garbage", "track", `{"userId":"u","event":"E"} x`, ""},
		{"batch not an array", "", `{"batch":{}}`, "batch"},
		{"empty batch", "", `{"batch":[]}`, "batch"},
		{"batch event of unknown type", "", `{"batch":[{"type":"click","userId":"u"}]}`, "batch[0].type"},
		{"second batch event broken", "", `{"batch":[{"type":"identify","userId":"u"},{"type":"track","userId":"u"}]}`, "batch[1].event"},
		{"batch event not an object", "", `{"batch":["x"]}`, "batch[0]"},
		{"writeKey not a string", "track", `{"writeKey":1,"userId":"u","event":"E"}`, "writeKey"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parsePayload([]byte(c.body), c.path)
			if err == nil {
				t.Fatalf("accepted %s", c.body)
			}
			if err.Status != http.StatusBadRequest || err.Field != c.field || err.Rule == "" {
				t.Fatalf("got %d %q %q, want 400 naming %q", err.Status, err.Field, err.Rule, c.field)
			}
		})
	}
}

func TestParsePayloadAcceptsEveryCallType(t *testing.T) {
	cases := map[string]string{
		"track":    `{"userId":"u","event":"Signed Up"}`,
		"identify": `{"anonymousId":"a","traits":{"plan":"pro"}}`,
		"page":     `{"userId":42,"name":"Home"}`,
		"screen":   `{"userId":"u","name":"Main"}`,
		"group":    `{"userId":"u","groupId":"g"}`,
		"alias":    `{"userId":"u","previousId":"p"}`,
	}
	for typ, body := range cases {
		p, err := parsePayload([]byte(body), typ)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got := str(p.events[0].get("type")); got != typ {
			t.Fatalf("%s: type = %q", typ, got)
		}
	}
}

func TestBatchEventsInheritTheBatchSentAtAndContextAndLoseTheWriteKey(t *testing.T) {
	p, err := parsePayload([]byte(`{"writeKey":"wk","sentAt":"2026-01-01T00:00:10Z","context":{"library":{"name":"x"}},
		"batch":[{"type":"track","userId":"u","event":"E","writeKey":"wk"}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if p.writeKey != "wk" {
		t.Fatalf("writeKey = %q", p.writeKey)
	}
	ev := p.merged(0)
	if ev.has("writeKey") {
		t.Fatal("the write key, a credential, must not be stored with the event")
	}
	if str(ev.get("sentAt")) != "2026-01-01T00:00:10Z" || !strings.Contains(string(ev.get("context")), "library") {
		t.Fatalf("event did not inherit sentAt/context: %s", ev.get("sentAt"))
	}
}

func TestEnrichAddsWhatSegmentAddsAndCorrectsClockSkew(t *testing.T) {
	received := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	p, ierr := parsePayload([]byte(`{"userId":"u","event":"E","properties":{"n":1.50},
		"timestamp":"2026-11-24T11:00:00.000Z","sentAt":"2026-11-24T11:00:05.000Z","integrations":{"All":false}}`), "track")
	if ierr != nil {
		t.Fatal(ierr)
	}
	e, err := enrichOne(p.events[0], "src1", "203.0.113.9", received)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(e.GetJson(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"receivedAt":        "2026-11-24T12:00:00.000Z",
		"timestamp":         "2026-11-24T11:59:55.000Z", // the client clock ran 1h slow; sentAt tells by how much
		"originalTimestamp": "2026-11-24T11:00:00.000Z",
		"projectId":         "src1",
		"type":              "track",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if id, _ := got["messageId"].(string); id == "" || id != e.GetMessageId() {
		t.Errorf("messageId = %v, event says %q", got["messageId"], e.GetMessageId())
	}
	if ip := got["context"].(map[string]any)["ip"]; ip != "203.0.113.9" {
		t.Errorf("context.ip = %v", ip)
	}
	if !strings.Contains(string(e.GetJson()), `"properties":{"n":1.50}`) {
		t.Errorf("properties must stay byte for byte: %s", e.GetJson())
	}
	if !strings.Contains(string(e.GetJson()), `"integrations":{"All":false}`) {
		t.Errorf("integrations must be kept: %s", e.GetJson())
	}
}

func TestEnrichKeepsTheProducersMessageIdAndIP(t *testing.T) {
	p, _ := parsePayload([]byte(`{"userId":"u","event":"E","messageId":"m-1","context":{"ip":"10.0.0.1"}}`), "track")
	e, err := enrichOne(p.events[0], "s", "203.0.113.9", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if e.GetMessageId() != "m-1" || !strings.Contains(string(e.GetJson()), `"ip":"10.0.0.1"`) {
		t.Fatalf("got %s", e.GetJson())
	}
}

// enrichOne enriches one event and returns it as the batcher will read it: encoded into an EventBatch
// and decoded with protobuf.
func enrichOne(ev rawEvent, sourceID, ip string, at time.Time) (*eventsv1.Event, error) {
	rc := newReceipt(sourceID, ip, at)
	id, typ, err := enrich(&ev, rc)
	if err != nil {
		return nil, err
	}
	data := appendEvent(eventwire.AppendBatchHeader(nil, sourceID, rc.at), id, typ, &ev)
	var batch eventsv1.EventBatch
	if err := proto.Unmarshal(data, &batch); err != nil {
		return nil, fmt.Errorf("decode the encoded batch: %w", err)
	}
	return batch.GetEvents()[0], nil
}

func TestBatchEncodingMatchesProtoMarshal(t *testing.T) {
	p, ierr := parsePayload([]byte(`{"batch":[{"type":"track","userId":"u","event":"E","messageId":"m1"},`+
		`{"type":"identify","anonymousId":"a","traits":{"x":"`+strings.Repeat("y", 300)+`"}}]}`), "")
	if ierr != nil {
		t.Fatal(ierr)
	}
	for _, at := range []time.Time{time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC), time.Unix(1800000000, 0), time.Unix(0, 0)} {
		rc := newReceipt("src-1", "203.0.113.9", at)
		want := &eventsv1.EventBatch{SourceId: "src-1", ReceivedAt: timestamppb.New(rc.at)}
		got := eventwire.AppendBatchHeader(nil, "src-1", rc.at)
		for i := range p.events {
			ev := p.merged(i)
			id, typ, err := enrich(&ev, rc)
			if err != nil {
				t.Fatal(err)
			}
			want.Events = append(want.Events, &eventsv1.Event{MessageId: string(id), Type: typ, Json: ev.appendTo(nil)})
			got = appendEvent(got, id, typ, &ev)
		}
		wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantBytes) {
			t.Fatalf("at %v: encoded batch differs from proto.Marshal\n got %x\nwant %x", at, got, wantBytes)
		}
	}
}

// FuzzScannerAgreesWithJSONValid holds the single-pass scanner to encoding/json's notion of valid JSON.
func FuzzScannerAgreesWithJSONValid(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-2.5e+3,true,false,null,"x\u00e9\n"],"b":{}}`, `[]`, `""`, `-0`, `01`, `1.`, `1e`, `"\x"`,
		`{"a" 1}`, `{"a":1,}`, `[1,]`, "\"\x01\"", `  {"batch":[{"type":"track"},1,"s",[]]}  `, `tru`, `{"a":1}x`,
		`{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`, `{"a":"\ud800\u0041"}`, `{"a":"\uD83D\uDE00x"}`,
		strings.Repeat("[", 70) + strings.Repeat("]", 70), `{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + "}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := scanner{b: data}
		err := s.document()
		if (err == nil) != json.Valid(data) {
			t.Fatalf("scanner says %v, json.Valid says %v, for %q", err, json.Valid(data), data)
		}
		s = scanner{b: data}
		_, _, rerr := s.request()
		if isObj := json.Valid(data) && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")); (rerr == nil) != isObj {
			t.Fatalf("request() says %v for %q (valid object: %v)", rerr, data, isObj)
		}
		// A strict scanner refuses a subset, and only for its own rules (depth, lone surrogates).
		s = scanner{b: data, strict: true}
		_, _, serr := s.request()
		var ee *encodingError
		switch {
		case rerr != nil && serr == nil:
			t.Fatalf("the strict scanner accepts %q, which the plain one refuses: %v", data, rerr)
		case rerr == nil && serr != nil && !errors.As(serr, &ee):
			t.Fatalf("the strict scanner refuses %q with %v, not one of its own rules", data, serr)
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		`{"userId":"u","event":"E"}`,
		`{"batch":[{"type":"track","userId":"u","event":"E"}],"sentAt":"2026-01-01T00:00:00Z"}`,
		`{"anonymousId":"a","context":{"ip":null},"timestamp":"2026-01-01T00:00:00+0100"}`,
		`{"batch":[null,1,"x",{}]}`,
		`not json`,
	} {
		f.Add([]byte(s), "track")
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, callType string) {
		if _, ok := callTypes[callType]; !ok {
			callType = ""
		}
		p, ierr := parsePayload(body, callType)
		if ierr != nil {
			if ierr.Status < 400 || ierr.Status > 499 || ierr.Rule == "" {
				t.Fatalf("error %d %q is not a clear 4xx", ierr.Status, ierr.Rule)
			}
			return
		}
		for i := range p.events {
			ev := p.merged(i)
			if ev.size() > MaxEventBytes {
				t.Fatalf("event %d is %d bytes once merged, over the %d accepted", i, ev.size(), MaxEventBytes)
			}
			e, err := enrichOne(ev, "src", "127.0.0.1", time.Now())
			if err != nil {
				if _, ok := err.(*InputError); !ok {
					t.Fatalf("enrich failed with a non-input error: %v", err)
				}
				continue
			}
			if !json.Valid(e.GetJson()) {
				t.Fatalf("enriched event is not JSON: %s", e.GetJson())
			}
		}
	})
}

func TestHasSpecialFindsEveryByteThatNeedsAttention(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			word := []byte("abcdefgh")
			word[pos] = byte(c)
			want := c < 0x20 || c == '"' || c == '\\' || c >= 0x80
			if got := hasSpecial(binary.LittleEndian.Uint64(word)); got != want {
				t.Fatalf("byte %#x at %d: hasSpecial = %v, want %v", c, pos, got, want)
			}
		}
	}
}

func TestCanonicalTypeNamesEveryCallType(t *testing.T) {
	for name := range callTypes {
		if got := canonicalType([]byte(name)); got != name {
			t.Errorf("canonicalType(%q) = %q", name, got)
		}
	}
	if got := canonicalType([]byte("other")); got != "other" {
		t.Errorf("canonicalType(other) = %q", got)
	}
}
