package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/s3dest/s3dest/pkg/isotime"
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

// payload is a parsed request: the write key it names in its body (if any) and its events. The events
// point into the body and into pooled memory that release hands back. A batch's events are kept as
// sent: the batch's sentAt and context are merged into each by merged, one event at a time as it is
// encoded, so a batch of thousands of tiny events costs its members and never N copies of its context.
type payload struct {
	writeKey string
	events   []rawEvent
	sentAt   json.RawMessage // the batch's, for events without their own; nil for a single event
	context  json.RawMessage
	scratch  *[]member
	spare    []member // merged's copy of an event without room of its own
}

// merged returns event i as it is stored, with the batch's sentAt and context merged in: in place when
// the event has room for what enrich adds, otherwise copied into the payload's spare members. Either way
// the parsed event may change, so each event is merged once, and the result is valid until the next
// call.
func (p *payload) merged(i int) rawEvent {
	ev := p.events[i]
	if cap(ev.members)-len(ev.members) < enrichSlack {
		p.spare = append(slices.Grow(p.spare[:0], len(ev.members)+enrichSlack), ev.members...)
		ev.members = p.spare
	}
	if p.sentAt != nil && !ev.has("sentAt") {
		ev.set(fSentAt, p.sentAt)
	}
	if p.context != nil && !ev.has("context") {
		ev.set(fContext, p.context)
	}
	return ev
}

// memberPool recycles the member arrays of parsed requests: a 500 KB batch has thousands of members.
var memberPool = sync.Pool{New: func() any { return new([]member) }}

// release hands the members back. They still point into the body until the next request overwrites
// them; clearing them would cost more than the memory they hold.
func (p *payload) release() {
	if p.scratch != nil {
		memberPool.Put(p.scratch)
		p.scratch = nil
	}
}

// parsePayload parses a request body. callType is the type implied by the path, or "" for /v1/batch,
// /v1/import and messages on ingest.<sourceId>, which may hold either a batch or a single event with its
// type. A batch is accepted or refused whole: one bad event refuses the request, naming the event, so a
// client never believes an event was stored when it was not.
//
// The same rules hold on every path, and they bound what a request can cost (ingest's README):
//   - the body is UTF-8 JSON nested at most MaxDepth deep, with no lone UTF-16 surrogate in an escape;
//   - every event is at most MaxEventBytes once the batch's context and sentAt are merged into it;
//   - a batch's merged events are at most MaxMergedBytes together, so a large batch-level context
//     repeated into thousands of tiny events cannot turn 500 KB into hundreds of megabytes.
func parsePayload(body []byte, callType string) (payload, *InputError) {
	scratch := memberPool.Get().(*[]member)
	// Batch events of a realistic size keep room for what enrich adds, so they are enriched in place;
	// tiny ones keep none (it would be most of their cost) and are copied into a scratch when encoded.
	s := scanner{b: body, all: (*scratch)[:0], strict: true, slack: enrichSlack, slackFrom: enrichSlack * int(unsafe.Sizeof(member{}))}
	topMembers, items, err := s.request()
	*scratch = s.all
	p := payload{scratch: scratch}
	fail := func(e *InputError) (payload, *InputError) {
		p.release()
		return payload{}, e
	}
	var ee *encodingError
	switch {
	case err == errNotObject:
		return fail(badInput("", "the body must be a JSON object"))
	case errors.As(err, &ee):
		return fail(badInput(pathAt(body, ee.off), "%s", ee.rule))
	case err != nil:
		return fail(badInput("", "the body must be a JSON object: %v", err))
	}
	top := rawEvent{members: topMembers}
	if raw := top.get("writeKey"); raw != nil {
		if !isString(raw) {
			return fail(badInput("writeKey", "must be a string"))
		}
		p.writeKey = str(raw)
	}
	rawBatch := top.get("batch")
	if callType != "" || rawBatch == nil {
		if callType != "" {
			top.set(fType, quote(callType))
		}
		top.del("writeKey")
		if n := top.size(); n > MaxEventBytes {
			return fail(badInput("body", "an event must be at most %d bytes, this one is %d", MaxEventBytes, n))
		}
		if ierr := checkEvent(&top); ierr != nil {
			return fail(ierr)
		}
		p.events = []rawEvent{top}
		return p, nil
	}

	if rawBatch[0] != '[' {
		return fail(badInput("batch", "must be an array of events"))
	}
	if len(items) == 0 {
		return fail(badInput("batch", "must hold at least one event"))
	}
	p.sentAt, p.context = top.get("sentAt"), top.get("context")
	// The batch's sentAt and context are checked here as each event that takes them would be.
	var sentAtRule, contextRule *InputError
	if p.sentAt != nil && !isNull(p.sentAt) {
		if _, err := parseTime(strBytes(p.sentAt)); err != nil {
			sentAtRule = badInput("sentAt", "must be an ISO-8601 date-time, got %s", shorten(p.sentAt))
		}
	}
	if p.context != nil && !isNull(p.context) && !isObject(p.context) {
		contextRule = badInput("context", "must be an object")
	}
	p.events = make([]rawEvent, 0, len(items))
	merged := 0
	for i, item := range items {
		at := func() string { return "batch[" + strconv.Itoa(i) + "]" }
		if !item.isObject {
			return fail(badInput(at(), "must be a JSON object"))
		}
		ev := rawEvent{members: item.members}
		ev.del("writeKey")
		n := ev.size()
		for _, m := range []struct {
			f    field
			val  json.RawMessage
			rule *InputError
		}{{fSentAt, p.sentAt, sentAtRule}, {fContext, p.context, contextRule}} {
			if m.val == nil || ev.has(m.f.key) {
				continue
			}
			if m.rule != nil {
				return fail(badInput(at()+"."+m.rule.Field, "%s", m.rule.Rule))
			}
			n = sizeWith(n, m.f, m.val)
		}
		if n > MaxEventBytes {
			return fail(badInput(at(), "an event must be at most %d bytes once the batch's context and sentAt are merged into it, this one is %d", MaxEventBytes, n))
		}
		if merged += n; merged > MaxMergedBytes {
			return fail(badInput("batch", "the events must be at most %d bytes together once the batch's context and sentAt are merged into each (%d reached at batch[%d]); send the context with each event or split the batch", MaxMergedBytes, merged, i))
		}
		if ierr := checkEvent(&ev); ierr != nil {
			ierr.Field = at() + "." + ierr.Field
			return fail(ierr)
		}
		p.events = append(p.events, ev)
	}
	return p, nil
}

// checkEvent applies the spec's rules to one event.
func checkEvent(ev *rawEvent) *InputError {
	typ := strBytes(ev.get("type"))
	required, known := callTypes[string(typ)]
	if !known {
		return badInput("type", "must be one of track, identify, page, screen, group, alias; got %s", shorten(ev.get("type")))
	}
	if string(typ) == "alias" {
		if !present(ev.get("userId")) {
			return badInput("userId", "is required for alias calls")
		}
	} else if !present(ev.get("userId")) && !present(ev.get("anonymousId")) {
		return badInput("userId", "userId or anonymousId is required")
	}
	if required != "" && !present(ev.get(required)) {
		return badInput(required, "is required for %s calls", typ)
	}
	if raw := ev.get("messageId"); raw != nil && !isNull(raw) {
		switch id := strBytes(raw); {
		case len(id) == 0:
			return badInput("messageId", "must be a non-empty string")
		case !utf8.Valid(id):
			return badInput("messageId", "must be valid UTF-8")
		}
	}
	for _, k := range []string{"timestamp", "sentAt", "originalTimestamp"} {
		if raw := ev.get(k); raw != nil && !isNull(raw) {
			if _, err := parseTime(strBytes(raw)); err != nil {
				return badInput(k, "must be an ISO-8601 date-time, got %s", shorten(raw))
			}
		}
	}
	if raw := ev.get("context"); raw != nil && !isNull(raw) && !isObject(raw) {
		return badInput("context", "must be an object")
	}
	return nil
}

// The fields ingest writes.
var (
	fType              = newField("type")
	fSentAt            = newField("sentAt")
	fContext           = newField("context")
	fReceivedAt        = newField("receivedAt")
	fMessageID         = newField("messageId")
	fProjectID         = newField("projectId")
	fTimestamp         = newField("timestamp")
	fOriginalTimestamp = newField("originalTimestamp")
	fIP                = newField("ip")
)

// receipt is what ingest adds to every event of one request, encoded once.
type receipt struct {
	at       time.Time
	received json.RawMessage // receivedAt, quoted
	sourceID string
	source   json.RawMessage // the source ID, quoted
	ip       json.RawMessage // the client's IP, quoted; nil when unknown
}

func newReceipt(sourceID, ip string, at time.Time) *receipt {
	rc := &receipt{at: at.UTC(), received: quote(formatTime(at)), sourceID: sourceID, source: quote(sourceID)}
	if ip != "" {
		rc.ip = quote(ip)
	}
	return rc
}

// enrich adds what Segment adds to an event, in place, and returns its messageId and type:
//   - receivedAt: the server's time of receipt (UTC, milliseconds);
//   - messageId when the producer sent none;
//   - timestamp corrected for the client's clock skew: receivedAt − (sentAt − timestamp), with the
//     client's own timestamp kept as originalTimestamp;
//   - context.ip from the request when the event has none;
//   - projectId: the source ID.
//
// The integrations object is kept as sent; it never filters this destination.
func enrich(ev *rawEvent, rc *receipt) (id []byte, typ string, err error) {
	ev.set(fReceivedAt, rc.received)
	if id = strBytes(ev.get("messageId")); len(id) == 0 {
		id = []byte(newMessageID())
		ev.set(fMessageID, quote(string(id)))
	}
	ev.set(fProjectID, rc.source)
	typ = canonicalType(strBytes(ev.get("type")))

	sentAt, sentErr := parseTime(strBytes(ev.get("sentAt")))
	clientTS := ev.get("timestamp")
	ts, tsErr := parseTime(strBytes(clientTS))
	switch {
	case tsErr == nil && sentErr == nil:
		ev.set(fOriginalTimestamp, clientTS)
		ev.set(fTimestamp, quote(formatTime(rc.at.Add(-sentAt.Sub(ts)))))
	case tsErr != nil:
		if ot, err := parseTime(strBytes(ev.get("originalTimestamp"))); err == nil && sentErr == nil {
			ev.set(fTimestamp, quote(formatTime(rc.at.Add(-sentAt.Sub(ot)))))
		} else {
			ev.set(fTimestamp, rc.received)
		}
	}

	if rc.ip != nil {
		ctx := ev.get("context")
		switch {
		case ctx == nil || isNull(ctx):
			ev.set(fContext, append(append([]byte(`{"ip":`), rc.ip...), '}'))
		case !isObject(ctx):
			return nil, "", badInput("context", "must be an object")
		default:
			switch ip, found := lookup(ctx, "ip"); {
			case !found:
				ev.set(fContext, appendMember(ctx, fIP, rc.ip))
			case !present(ip):
				c := rawEvent{members: splitObject(ctx)}
				c.set(fIP, rc.ip)
				ev.set(fContext, c.appendTo(make([]byte, 0, len(ctx)+len(rc.ip)+8)))
			}
		}
	}
	return id, typ, nil
}

// canonicalType returns the call type as a constant string, so that naming it allocates nothing (a
// switch: ranging over callTypes cost 1.5% of a request).
func canonicalType(t []byte) string {
	switch string(t) {
	case "track":
		return "track"
	case "identify":
		return "identify"
	case "page":
		return "page"
	case "screen":
		return "screen"
	case "group":
		return "group"
	case "alias":
		return "alias"
	}
	return string(t)
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// errNoTime is an absent or empty date-time.
var errNoTime = errors.New("no date-time")

func parseTime(b []byte) (time.Time, error) {
	if len(b) == 0 {
		return time.Time{}, errNoTime
	}
	return isotime.Parse(string(b))
}

func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "s3dest-" + hex.EncodeToString(b[:])
}

// quote encodes s as a JSON string.
func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

func isString(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '"' }

// str returns a JSON string's value, or "" for anything else.
func str(raw json.RawMessage) string { return string(strBytes(raw)) }

// strBytes returns a JSON string's value, or nil for anything else. Without escapes, the value is a
// slice of raw.
func strBytes(raw json.RawMessage) []byte {
	if len(raw) == 0 || raw[0] != '"' {
		return nil
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return []byte(s)
}

// present reports a non-empty string or a number (Segment accepts numeric IDs).
func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return false
	}
	switch raw[0] {
	case '"':
		return len(bytes.TrimSpace(strBytes(raw))) > 0
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
