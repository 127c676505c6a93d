package ingest

import (
	"encoding/json"
	"strconv"
)

// Events are kept as the producer's bytes: a top-level object is split into members without decoding
// values, fields are added or replaced by splicing, and nothing the producer sent is re-encoded. The
// scanners below assume input that json.Valid accepted.

// member is one member of a JSON object: its key, its key as written (quoted), and its raw value.
type member struct {
	key    []byte // unescaped; usually a slice of the input
	rawKey []byte
	val    json.RawMessage
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"', and whether it has escapes.
func skipString(b []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return len(b), escaped
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i, _ = skipString(b, i)
				i--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
		i++
	}
	return i
}

// members splits a valid JSON object; ok is false if b is not an object.
func members(b []byte, dst []member) ([]member, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		end, escaped := skipString(b, i)
		m := member{rawKey: b[i:end]}
		if escaped {
			var k string
			_ = json.Unmarshal(m.rawKey, &k)
			m.key = []byte(k)
		} else {
			m.key = b[i+1 : end-1]
		}
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // ':'
		vend := skipValue(b, i)
		m.val = b[i:vend]
		dst = append(dst, m)
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return dst, true
}

// elements splits a valid JSON array; ok is false if b is not an array.
func elements(b []byte) ([]json.RawMessage, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	var out []json.RawMessage
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != ']' {
		end := skipValue(b, i)
		out = append(out, b[i:end])
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out, true
}

// rawEvent is an event as its members, in the order received.
type rawEvent struct {
	members []member
}

// get returns a member's raw value (the last one, as encoding/json would), or nil.
func (e *rawEvent) get(key string) json.RawMessage {
	for i := len(e.members) - 1; i >= 0; i-- {
		if string(e.members[i].key) == key {
			return e.members[i].val
		}
	}
	return nil
}

func (e *rawEvent) has(key string) bool { return e.get(key) != nil }

// set replaces every member named key with one holding val, or appends it.
func (e *rawEvent) set(key string, val []byte) {
	e.del(key)
	e.members = append(e.members, member{key: []byte(key), rawKey: strconv.AppendQuote(nil, key), val: val})
}

func (e *rawEvent) del(key string) {
	out := e.members[:0]
	for _, m := range e.members {
		if string(m.key) != key {
			out = append(out, m)
		}
	}
	e.members = out
}

// appendTo writes the event as one JSON object.
func (e *rawEvent) appendTo(dst []byte) []byte {
	dst = append(dst, '{')
	for i, m := range e.members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m.rawKey...)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}')
}
