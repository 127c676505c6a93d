package eventwire

import (
	"errors"
	"fmt"
	"slices"

	"github.com/klauspost/compress/s2"
)

// Encoding is how an events.<sourceId> message carries its EventBatch (docs/wire.md). A message is
// either the EventBatch's protobuf bytes as they are (Plain, all that s3dest wrote before encodings
// existed) or a frame: the byte 0x00, the Encoding, and the EventBatch in that encoding. A protobuf
// message never starts with 0x00 (field number 0 is invalid), so the two cannot be confused, and a
// reader that predates frames refuses a framed message as malformed instead of misreading it.
type Encoding byte

const (
	// Plain is the EventBatch's protobuf bytes, unframed.
	Plain Encoding = 0
	// S2 is a frame holding one S2 block (github.com/klauspost/compress/s2) of the EventBatch.
	S2 Encoding = 1
)

// frameMark starts every framed message; no protobuf message starts with it.
const frameMark = 0x00

// MaxDecodedBytes bounds what a framed message may claim to expand to: NATS's own ceiling on a
// message's payload (64 MB), far above what ingest writes (its max-message-bytes, 1 MB by default).
const MaxDecodedBytes = 64 << 20

// ErrNewerEncoding is returned for a framed message whose encoding this reader does not know: a newer
// s3dest wrote it. The message is sound; a newer reader reads it.
var ErrNewerEncoding = errors.New("EventBatch in an encoding newer than this reader knows")

// ParseEncoding reads the setting's form of an encoding: "proto" (Plain) or "s2".
func ParseEncoding(s string) (Encoding, error) {
	switch s {
	case "proto":
		return Plain, nil
	case "s2":
		return S2, nil
	}
	return 0, fmt.Errorf("must be proto or s2, got %q", s)
}

// String is the setting's form of e.
func (e Encoding) String() string {
	switch e {
	case Plain:
		return "proto"
	case S2:
		return "s2"
	}
	return fmt.Sprintf("encoding-%d", byte(e))
}

// Frame returns the message that carries batch (an EventBatch's protobuf bytes) in encoding enc,
// written into dst's storage (grown as needed) unless it is batch itself: with Plain, or when S2 would
// not make it smaller, the message is batch unframed. The result never outgrows batch.
func Frame(dst, batch []byte, enc Encoding) []byte {
	if enc != S2 {
		return batch
	}
	n := s2.MaxEncodedLen(len(batch))
	if n < 0 {
		return batch
	}
	dst = slices.Grow(dst[:0], 2+n)[:2+n]
	dst[0], dst[1] = frameMark, byte(S2)
	block := s2.Encode(dst[2:], batch)
	if 2+len(block) >= len(batch) {
		return batch
	}
	return dst[:2+len(block)]
}

// Reader reads events.<sourceId> messages in either encoding. It keeps one buffer, reused from
// message to message, for what it decompresses; a Reader is for one goroutine at a time.
type Reader struct {
	buf []byte
}

// Decode reads the EventBatch of msg into w, as Decode does. w points into msg, or for a framed message
// into r's buffer: it is valid until r's next Decode and while msg is unchanged.
func (r *Reader) Decode(msg []byte, w *Batch) error {
	batch, err := r.Unframe(msg)
	if err != nil {
		w.Events = w.Events[:0]
		return err
	}
	return Decode(batch, w)
}

// Unframe returns msg's EventBatch protobuf bytes: msg itself when it is Plain, else decompressed into
// r's buffer (valid until r's next use).
func (r *Reader) Unframe(msg []byte) ([]byte, error) {
	if len(msg) == 0 || msg[0] != frameMark {
		return msg, nil
	}
	if len(msg) < 2 {
		return nil, errors.New("frame: no encoding after the frame mark")
	}
	switch enc := Encoding(msg[1]); enc {
	case S2:
		n, err := s2.DecodedLen(msg[2:])
		if err != nil {
			return nil, fmt.Errorf("s2: %w", err)
		}
		if n > MaxDecodedBytes {
			return nil, fmt.Errorf("s2: claims %d bytes decoded, more than the %d a message may hold", n, MaxDecodedBytes)
		}
		r.buf = slices.Grow(r.buf[:0], n)[:n]
		out, err := s2.Decode(r.buf, msg[2:])
		if err != nil {
			return nil, fmt.Errorf("s2: %w", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: %d", ErrNewerEncoding, byte(enc))
	}
}
