package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Events are kept as the producer's bytes: objects are split into members without decoding values,
// fields are added or replaced by splicing, and nothing the producer sent is re-encoded.
//
// The scanner checks the syntax exactly as json.Valid does (FuzzScannerAgreesWithJSONValid holds it to
// that) while it splits, so a request body is read once.

// member is one member of a JSON object: its key, its key as written (quoted), and its raw value.
type member struct {
	key    []byte // unescaped; usually a slice of the input
	rawKey []byte
	val    json.RawMessage
}

// element is one element of a batch array: its bytes and, when it is an object, its members.
type element struct {
	raw      []byte
	members  []member
	isObject bool
}

// enrichSlack is the room kept after an event's members for what merging and enrich add (receivedAt,
// messageId, projectId, timestamp, originalTimestamp, context, sentAt, type), so adding them allocates
// nothing.
const enrichSlack = 8

// jsonMaxDepth is encoding/json's nesting limit, which the scanner applies unless it is strict.
const jsonMaxDepth = 10000

// syntaxError is malformed JSON, at a byte offset of the input.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

// encodingError is well-formed JSON that breaks one of ingest's own rules (nesting deeper than MaxDepth,
// a lone UTF-16 surrogate), at a byte offset of the input, so that the error can name the field.
type encodingError struct {
	rule string
	off  int
}

func (e *encodingError) Error() string { return fmt.Sprintf("%s at byte %d", e.rule, e.off) }

// scanner checks and splits JSON. A plain scanner accepts exactly what json.Valid accepts; a strict one
// also refuses, with an *encodingError, nesting deeper than MaxDepth and a \u escape that is a lone
// UTF-16 surrogate (encoding/json would turn it into U+FFFD, and Athena's and DuckDB's readers refuse it).
type scanner struct {
	b         []byte
	depth     int
	all       []member // backing array of every captured member
	slack     int      // spare slots kept after each captured object's members,
	slackFrom int      // for objects of at least this many bytes
	strict    bool
}

// fail describes what is wrong at b[i].
func (s *scanner) fail(i int, context string) error {
	if i >= len(s.b) {
		return &syntaxError{"unexpected end of JSON input", i}
	}
	return &syntaxError{fmt.Sprintf("invalid character %q %s", s.b[i], context), i}
}

// strSafe marks the bytes that need no attention inside a string: printable ASCII but '"' and '\\'.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hasSpecial reports whether any of the 8 bytes of x needs attention in a string: '"', '\\', a control
// character or a byte of a multi-byte UTF-8 sequence. It is the has-zero-byte bit trick applied three
// times, and the high bit; it lets the scanner skip the long ASCII runs of string values 8 bytes at a time.
func hasSpecial(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	b := x ^ (lo * '\\')
	return ((x-lo*0x20)&^x|(q-lo)&^q|(b-lo)&^b|x)&hi != 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) space(i int) int {
	for i < len(s.b) && isSpace(s.b[i]) {
		i++
	}
	return i
}

// document checks that b is exactly one JSON value, with optional surrounding whitespace.
func (s *scanner) document() error {
	end, err := s.value(s.space(0))
	if err != nil {
		return err
	}
	return s.end(end)
}

// end checks that only whitespace follows a top-level value ending at i.
func (s *scanner) end(i int) error {
	if i = s.space(i); i < len(s.b) {
		return s.fail(i, "after top-level value")
	}
	return nil
}

// value checks the value starting at b[i] and returns the index after it.
func (s *scanner) value(i int) (int, error) {
	if i >= len(s.b) {
		return i, s.fail(i, "")
	}
	switch c := s.b[i]; {
	case c == '"':
		end, _, err := s.str(i)
		return end, err
	case c == '{':
		_, end, err := s.object(i, false)
		return end, err
	case c == '[':
		return s.array(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(i)
	}
	return i, s.fail(i, "looking for beginning of value")
}

// str checks the string starting at b[i] == '"' and returns the index after it and whether it has escapes.
func (s *scanner) str(i int) (int, bool, error) {
	escaped := false
	for i++; ; i++ {
		for i+8 <= len(s.b) && !hasSpecial(binary.LittleEndian.Uint64(s.b[i:])) {
			i += 8
		}
		for i < len(s.b) && strSafe[s.b[i]] {
			i++
		}
		if i >= len(s.b) {
			return i, escaped, s.fail(i, "")
		}
		switch c := s.b[i]; c {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			escaped = true
			i++
			if i >= len(s.b) {
				return i, escaped, s.fail(i, "")
			}
			switch s.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				start := i - 1
				r := rune(0)
				for range 4 {
					i++
					if i >= len(s.b) {
						return i, escaped, s.fail(i, "")
					}
					if !isHex(s.b[i]) {
						return i, escaped, s.fail(i, "in \\u hexadecimal character escape")
					}
					r = r<<4 | hexValue(s.b[i])
				}
				if s.strict && utf16.IsSurrogate(r) {
					if err := s.surrogatePair(start, r); err != nil {
						return i, escaped, err
					}
					i += 6 // the low half, checked
				}
			default:
				return i, escaped, s.fail(i, "in string escape code")
			}
		default:
			if c < 0x80 { // a control character
				return i, escaped, s.fail(i, "in string literal")
			}
			// Non-ASCII: encoding/json takes any byte here; a strict scanner wants UTF-8.
			if s.strict {
				r, n := utf8.DecodeRune(s.b[i:])
				if r == utf8.RuneError && n == 1 {
					return i, escaped, &encodingError{"must be valid UTF-8", i}
				}
				i += n - 1
			}
		}
	}
}

// surrogatePair checks that the \\u escape at b[start] holding r, a surrogate, is the high half of a pair
// whose low half follows at once.
func (s *scanner) surrogatePair(start int, r rune) error {
	lone := &encodingError{"must not hold a lone UTF-16 surrogate escape (\\u" + string(s.b[start+2:start+6]) + ")", start}
	next := start + 6
	if r >= 0xdc00 || next+6 > len(s.b) || s.b[next] != '\\' || s.b[next+1] != 'u' {
		return lone
	}
	low := rune(0)
	for _, c := range s.b[next+2 : next+6] {
		if !isHex(c) {
			return lone
		}
		low = low<<4 | hexValue(c)
	}
	if low < 0xdc00 || low > 0xdfff {
		return lone
	}
	return nil
}

func hexValue(c byte) rune {
	switch {
	case c <= '9':
		return rune(c - '0')
	case c >= 'a':
		return rune(c-'a') + 10
	}
	return rune(c-'A') + 10
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func (s *scanner) number(i int) (int, error) {
	b := s.b
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, s.fail(i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, s.fail(i, "after decimal point in numeric literal")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, s.fail(i, "in exponent of numeric literal")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func (s *scanner) literal(i int, lit string) (int, error) {
	for j := range len(lit) {
		if i+j >= len(s.b) || s.b[i+j] != lit[j] {
			return i + j, s.fail(i+j, "in literal "+lit)
		}
	}
	return i + len(lit), nil
}

func (s *scanner) enter(i int) error {
	s.depth++
	switch {
	case s.strict && s.depth > MaxDepth:
		return &encodingError{fmt.Sprintf("must be nested at most %d levels deep", MaxDepth), i}
	case s.depth > jsonMaxDepth:
		return &syntaxError{"exceeded max depth", i}
	}
	return nil
}

// key checks an object key at b[i] and the ':' after it, sets m's key, and returns the index where the
// value starts.
func (s *scanner) key(i int, m *member) (int, error) {
	if i >= len(s.b) || s.b[i] != '"' {
		return i, s.fail(i, "looking for beginning of object key string")
	}
	kend, escaped, err := s.str(i)
	if err != nil {
		return kend, err
	}
	m.rawKey, m.key = s.b[i:kend], s.b[i+1:kend-1]
	if escaped {
		var k string
		_ = json.Unmarshal(m.rawKey, &k) // checked by str
		m.key = []byte(k)
	}
	if i = s.space(kend); i >= len(s.b) || s.b[i] != ':' {
		return i, s.fail(i, "after object key")
	}
	return s.space(i + 1), nil
}

// array checks the array starting at b[i] == '['.
func (s *scanner) array(i int) (int, error) {
	if err := s.enter(i); err != nil {
		return i, err
	}
	defer func() { s.depth-- }()
	if i = s.space(i + 1); i < len(s.b) && s.b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := s.value(i)
		if err != nil {
			return end, err
		}
		if i = s.space(end); i >= len(s.b) {
			return i, s.fail(i, "")
		}
		switch s.b[i] {
		case ',':
			i = s.space(i + 1)
		case ']':
			return i + 1, nil
		default:
			return i, s.fail(i, "after array element")
		}
	}
}

// object checks the object starting at b[i] == '{'. With capture, its members are appended to s.all and
// returned, followed by s.slack spare slots that only this object's slice can reach when the object is
// at least s.slackFrom bytes long.
func (s *scanner) object(i int, capture bool) ([]member, int, error) {
	if err := s.enter(i); err != nil {
		return nil, i, err
	}
	defer func() { s.depth-- }()
	start, open := len(s.all), i
	done := func(end int) ([]member, int, error) {
		if !capture {
			return nil, end, nil
		}
		n, slack := len(s.all), s.slack
		if end-open < s.slackFrom {
			slack = 0
		}
		s.all = slices.Grow(s.all, slack)[:n+slack]
		return s.all[start : n : n+slack], end, nil
	}
	if i = s.space(i + 1); i < len(s.b) && s.b[i] == '}' {
		return done(i + 1)
	}
	for {
		var (
			m   member
			err error
		)
		i, err = s.key(i, &m)
		if err != nil {
			return nil, i, err
		}
		vend, err := s.value(i)
		if err != nil {
			return nil, vend, err
		}
		if capture {
			m.val = s.b[i:vend]
			s.all = append(s.all, m)
		}
		if i = s.space(vend); i >= len(s.b) {
			return nil, i, s.fail(i, "")
		}
		switch s.b[i] {
		case ',':
			i = s.space(i + 1)
		case '}':
			return done(i + 1)
		default:
			return nil, i, s.fail(i, "after object key:value pair")
		}
	}
}

// request splits a request body that must be an object: its members and, if a member named "batch"
// holds an array, that array's elements with each object split too (the last "batch" wins, as with
// encoding/json). The body is read once.
func (s *scanner) request() (top []member, batch []element, err error) {
	i := s.space(0)
	if i >= len(s.b) || s.b[i] != '{' {
		if err := s.document(); err != nil {
			return nil, nil, err
		}
		return nil, nil, errNotObject
	}
	if err := s.enter(i); err != nil {
		return nil, nil, err
	}
	if i = s.space(i + 1); i < len(s.b) && s.b[i] == '}' {
		return nil, nil, s.end(i + 1)
	}
	for {
		var (
			m   member
			err error
		)
		i, err = s.key(i, &m)
		if err != nil {
			return nil, nil, err
		}
		var vend int
		if string(m.key) == "batch" && i < len(s.b) && s.b[i] == '[' {
			batch, vend, err = s.elements(i)
		} else {
			vend, err = s.value(i)
		}
		if err != nil {
			return nil, nil, err
		}
		m.val = s.b[i:vend]
		top = append(top, m)
		if i = s.space(vend); i >= len(s.b) {
			return nil, nil, s.fail(i, "")
		}
		switch s.b[i] {
		case ',':
			i = s.space(i + 1)
		case '}':
			return top, batch, s.end(i + 1)
		default:
			return nil, nil, s.fail(i, "after object key:value pair")
		}
	}
}

// errNotObject is valid JSON that is not an object.
var errNotObject = fmt.Errorf("not an object")

// elements checks the array at b[i] == '[' and splits its object elements.
func (s *scanner) elements(i int) ([]element, int, error) {
	if err := s.enter(i); err != nil {
		return nil, i, err
	}
	defer func() { s.depth-- }()
	var out []element
	if i = s.space(i + 1); i < len(s.b) && s.b[i] == ']' {
		return out, i + 1, nil
	}
	for {
		var (
			el  element
			end int
			err error
		)
		if i < len(s.b) && s.b[i] == '{' {
			el.members, end, err = s.object(i, true)
			el.isObject = true
		} else {
			end, err = s.value(i)
		}
		if err != nil {
			return nil, end, err
		}
		el.raw = s.b[i:end]
		if s.strict && len(out) == maxBatchEvents {
			// More elements than MaxBatchBytes of the smallest valid event: refused before they cost
			// memory (a 500 KB body of [],[],… would be 170,000 of them).
			return nil, i, &encodingError{fmt.Sprintf("a batch holds at most %d events (500 KB of the smallest valid event)", maxBatchEvents), i}
		}
		out = append(out, el)
		if i = s.space(end); i >= len(s.b) {
			return nil, i, s.fail(i, "")
		}
		switch s.b[i] {
		case ',':
			i = s.space(i + 1)
		case ']':
			return out, i + 1, nil
		default:
			return nil, i, s.fail(i, "after array element")
		}
	}
}

// splitObject splits raw, an object already checked, into members.
func splitObject(raw []byte) []member {
	s := scanner{b: raw, slack: enrichSlack}
	ms, _, _ := s.object(s.space(0), true)
	return ms
}

// lookup returns the value of key in raw, an object already checked, without splitting it.
func lookup(raw []byte, key string) (val json.RawMessage, found bool) {
	s := scanner{b: raw}
	for i := s.space(s.space(0) + 1); i < len(raw) && raw[i] == '"'; {
		var m member
		i, _ = s.key(i, &m)
		vend, _ := s.value(i)
		if string(m.key) == key {
			val, found = raw[i:vend], true // the last one wins, as with get
		}
		if i = s.space(vend); i < len(raw) && raw[i] == ',' {
			i = s.space(i + 1)
		}
	}
	return val, found
}

// appendMember returns a copy of obj, an object already checked, with the member f: val added last.
func appendMember(obj []byte, f field, val []byte) []byte {
	end := len(obj) - 1
	for obj[end] != '}' {
		end--
	}
	body := bytes.TrimSpace(obj[bytes.IndexByte(obj, '{')+1 : end])
	out := make([]byte, 0, len(obj)+len(f.rawKey)+len(val)+2)
	out = append(out, '{')
	if len(body) > 0 {
		out = append(append(out, body...), ',')
	}
	out = append(append(append(out, f.rawKey...), ':'), val...)
	return append(out, '}')
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

// field is a key that ingest writes, quoted once.
type field struct {
	key    string
	rawKey []byte
}

func newField(key string) field { return field{key, strconv.AppendQuote(nil, key)} }

// set replaces every member named f with one holding val, or appends it.
func (e *rawEvent) set(f field, val []byte) {
	e.del(f.key)
	e.members = append(e.members, member{key: f.rawKey[1 : len(f.rawKey)-1], rawKey: f.rawKey, val: val})
}

func (e *rawEvent) del(key string) {
	first := slices.IndexFunc(e.members, func(m member) bool { return string(m.key) == key })
	if first < 0 {
		return // the usual case: nothing moves
	}
	out := e.members[:first]
	for _, m := range e.members[first+1:] {
		if string(m.key) != key {
			out = append(out, m)
		}
	}
	e.members = out
}

// sizeWith is the length of an object of size bytes once a member f: val is added to it.
func sizeWith(size int, f field, val []byte) int {
	if size > 2 {
		size++ // the comma
	}
	return size + len(f.rawKey) + 1 + len(val)
}

// size is the length of appendTo's output.
func (e *rawEvent) size() int {
	n := 2 + max(len(e.members)-1, 0)
	for _, m := range e.members {
		n += len(m.rawKey) + 1 + len(m.val)
	}
	return n
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

// pathAt names the member or element of doc that holds the byte at off, the way errors name fields:
// batch[2].properties.name ("" at the top level). It is called only to explain an error that the scanner
// or a later check found at off, so doc is well-formed up to there.
func pathAt(doc []byte, off int) string {
	s := scanner{b: doc}
	var path strings.Builder
	for i := s.space(0); i < off && i < len(doc) && (doc[i] == '{' || doc[i] == '['); {
		open := doc[i]
		inside := false
		i = s.space(i + 1)
		for n := 0; i < len(doc) && doc[i] != '}' && doc[i] != ']'; n++ {
			var m member
			if open == '{' {
				keyStart := i
				vstart, err := s.key(i, &m)
				if err != nil || off < vstart {
					if off >= keyStart && m.key != nil {
						appendKey(&path, m.key)
					}
					return path.String()
				}
				i = vstart
			}
			end, err := s.value(i)
			if err != nil || off < end {
				if open == '[' {
					path.WriteString("[" + strconv.Itoa(n) + "]")
				} else {
					appendKey(&path, m.key)
				}
				inside = true
				break
			}
			if i = s.space(end); i < len(doc) && doc[i] == ',' {
				i = s.space(i + 1)
			}
		}
		if !inside {
			break
		}
	}
	return path.String()
}

func appendKey(path *strings.Builder, key []byte) {
	if path.Len() > 0 {
		path.WriteByte('.')
	}
	path.Write(key)
}
