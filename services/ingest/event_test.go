package ingest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
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
	ev := p.events[0]
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
	e, err := enrich(p.events[0], "src1", "203.0.113.9", received)
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
	e, err := enrich(p.events[0], "s", "203.0.113.9", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if e.GetMessageId() != "m-1" || !strings.Contains(string(e.GetJson()), `"ip":"10.0.0.1"`) {
		t.Fatalf("got %s", e.GetJson())
	}
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
		for _, ev := range p.events {
			e, err := enrich(ev, "src", "127.0.0.1", time.Now())
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
