package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
)

// InputError is a request or event that breaks a rule of the Tracking API. Field names the JSON path
// (such as `batch[2].userId`), Rule says what was expected, and Status is the HTTP status to answer.
type InputError struct {
	Field  string
	Rule   string
	Status int
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Rule
	}
	return e.Field + ": " + e.Rule
}

func badInput(field, format string, args ...any) *InputError {
	return &InputError{Field: field, Rule: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// callTypes are the Segment spec's calls; the value is the field each requires besides the identity.
var callTypes = map[string]string{
	"track":    "event",
	"identify": "",
	"page":     "",
	"screen":   "",
	"group":    "groupId",
	"alias":    "previousId",
}

// payload is a parsed request: the write key it names in its body (if any) and its events.
type payload struct {
	writeKey string
	events   []rawEvent
}

// parsePayload parses a request body. callType is the type implied by the path, or "" for /v1/batch and
// for messages on ingest.<sourceId>, which may hold either a batch or a single event with its type.
// A batch is accepted or refused whole: one bad event refuses the request, naming the event, so a
// client never believes an event was stored when it was not.
func parsePayload(body []byte, callType string) (payload, *InputError) {
	if !json.Valid(body) {
		var v any
		return payload{}, badInput("", "the body must be a JSON object: %v", jsonError(json.Unmarshal(body, &v)))
	}
	topMembers, ok := members(body, nil)
	if !ok {
		return payload{}, badInput("", "the body must be a JSON object")
	}
	top := rawEvent{members: topMembers}
	var p payload
	if raw := top.get("writeKey"); raw != nil {
		if !isString(raw) {
			return payload{}, badInput("writeKey", "must be a string")
		}
		p.writeKey = str(raw)
	}
	rawBatch := top.get("batch")
	if callType != "" || rawBatch == nil {
		if callType != "" {
			top.set("type", quote(callType))
		}
		top.del("writeKey")
		if ierr := checkEvent(&top, ""); ierr != nil {
			return payload{}, ierr
		}
		p.events = []rawEvent{top}
		return p, nil
	}

	items, ok := elements(rawBatch)
	if !ok {
		return payload{}, badInput("batch", "must be an array of events")
	}
	if len(items) == 0 {
		return payload{}, badInput("batch", "must hold at least one event")
	}
	sentAt, context := top.get("sentAt"), top.get("context")
	p.events = make([]rawEvent, 0, len(items))
	for i, item := range items {
		field := "batch[" + strconv.Itoa(i) + "]"
		if len(item) > MaxEventBytes {
			return payload{}, badInput(field, "an event must be at most %d bytes, this one is %d", MaxEventBytes, len(item))
		}
		ms, ok := members(item, make([]member, 0, 16))
		if !ok {
			return payload{}, badInput(field, "must be a JSON object")
		}
		ev := rawEvent{members: ms}
		// The batch's sentAt and context apply to events that lack their own, as in Segment's clients.
		if sentAt != nil && !ev.has("sentAt") {
			ev.set("sentAt", sentAt)
		}
		if context != nil && !ev.has("context") {
			ev.set("context", context)
		}
		ev.del("writeKey")
		if ierr := checkEvent(&ev, field+"."); ierr != nil {
			return payload{}, ierr
		}
		p.events = append(p.events, ev)
	}
	return p, nil
}

// checkEvent applies the spec's rules to one event; prefix is prepended to field names.
func checkEvent(ev *rawEvent, prefix string) *InputError {
	typ := str(ev.get("type"))
	required, known := callTypes[typ]
	if !known {
		return badInput(prefix+"type", "must be one of track, identify, page, screen, group, alias; got %s", shorten(ev.get("type")))
	}
	if typ == "alias" {
		if !present(ev.get("userId")) {
			return badInput(prefix+"userId", "is required for alias calls")
		}
	} else if !present(ev.get("userId")) && !present(ev.get("anonymousId")) {
		return badInput(prefix+"userId", "userId or anonymousId is required")
	}
	if required != "" && !present(ev.get(required)) {
		return badInput(prefix+required, "is required for %s calls", typ)
	}
	if raw := ev.get("messageId"); raw != nil && str(raw) == "" && !isNull(raw) {
		return badInput(prefix+"messageId", "must be a non-empty string")
	}
	for _, k := range []string{"timestamp", "sentAt", "originalTimestamp"} {
		if raw := ev.get(k); raw != nil && !isNull(raw) {
			if _, err := parseTime(str(raw)); err != nil {
				return badInput(prefix+k, "must be an ISO-8601 date-time, got %s", shorten(raw))
			}
		}
	}
	if raw := ev.get("context"); raw != nil && !isNull(raw) && !isObject(raw) {
		return badInput(prefix+"context", "must be an object")
	}
	return nil
}

// enrich adds what Segment adds and returns the event as one JSON line (without the newline):
//   - receivedAt: the server's time of receipt (UTC, milliseconds);
//   - messageId when the producer sent none;
//   - timestamp corrected for the client's clock skew: receivedAt − (sentAt − timestamp), with the
//     client's own timestamp kept as originalTimestamp;
//   - context.ip from the request when the event has none;
//   - projectId: the source ID.
//
// The integrations object is kept as sent; it never filters this destination.
func enrich(ev rawEvent, sourceID, ip string, receivedAt time.Time) (*eventsv1.Event, error) {
	received := quote(formatTime(receivedAt))
	ev.set("receivedAt", received)
	id := str(ev.get("messageId"))
	if id == "" {
		id = newMessageID()
		ev.set("messageId", quote(id))
	}
	ev.set("projectId", quote(sourceID))

	sentAt, sentErr := parseTime(str(ev.get("sentAt")))
	clientTS := ev.get("timestamp")
	ts, tsErr := parseTime(str(clientTS))
	switch {
	case tsErr == nil && sentErr == nil:
		ev.set("originalTimestamp", clientTS)
		ev.set("timestamp", quote(formatTime(receivedAt.Add(-sentAt.Sub(ts)))))
	case tsErr != nil:
		if ot, err := parseTime(str(ev.get("originalTimestamp"))); err == nil && sentErr == nil {
			ev.set("timestamp", quote(formatTime(receivedAt.Add(-sentAt.Sub(ot)))))
		} else {
			ev.set("timestamp", received)
		}
	}

	if ip != "" {
		ctx := ev.get("context")
		switch {
		case ctx == nil || isNull(ctx):
			ev.set("context", append(append([]byte(`{"ip":`), quote(ip)...), '}'))
		default:
			cm, ok := members(ctx, nil)
			if !ok {
				return nil, badInput("context", "must be an object")
			}
			c := rawEvent{members: cm}
			if !present(c.get("ip")) {
				c.set("ip", quote(ip))
				ev.set("context", c.appendTo(nil))
			}
		}
	}
	return &eventsv1.Event{MessageId: id, Type: str(ev.get("type")), Json: ev.appendTo(make([]byte, 0, 1024))}, nil
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func parseTime(s string) (time.Time, error) {
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

func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "s3dest-" + hex.EncodeToString(b[:])
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func isString(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }

// str returns a JSON string's value, or "" for anything else.
func str(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// present reports a non-empty string or a number (Segment accepts numeric IDs).
func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return false
	}
	switch raw[0] {
	case '"':
		return strings.TrimSpace(str(raw)) != ""
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

func isNull(raw json.RawMessage) bool   { return string(bytes.TrimSpace(raw)) == "null" }
func isObject(raw json.RawMessage) bool { r := bytes.TrimSpace(raw); return len(r) > 0 && r[0] == '{' }

func shorten(raw json.RawMessage) string {
	if raw == nil {
		return "nothing"
	}
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

func jsonError(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	return err.Error()
}
