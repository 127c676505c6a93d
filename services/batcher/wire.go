package batcher

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of events.v1.EventBatch, Event and google.protobuf.Timestamp, as in
// proto/s3dest/events/v1/events.proto.
const (
	batchSourceID   protowire.Number = 1
	batchReceivedAt protowire.Number = 2
	batchEvents     protowire.Number = 3

	eventMessageID protowire.Number = 1
	eventType      protowire.Number = 2
	eventJSON      protowire.Number = 3

	timestampSeconds protowire.Number = 1
	timestampNanos   protowire.Number = 2
)

// wireBatch is an events.v1.EventBatch read straight from its message. proto.Unmarshal copied every
// event's JSON and built a message per event: a tenth of the batcher's CPU. Here the events' messageIds
// and JSON point into the message's data, which nothing changes while the batch is being written (each
// line is copied into its file's buffer), so a wireBatch must not outlive the message it was read from.
// It accepts exactly what proto.Unmarshal accepts (FuzzDecodeBatchAgreesWithProtoUnmarshal).
type wireBatch struct {
	sourceID   string // a copy: it names the partition, which outlives the message
	receivedAt time.Time
	events     []wireEvent
}

type wireEvent struct {
	messageID []byte
	json      []byte
}

var errTruncated = errors.New("truncated or malformed protobuf")

// consumeTag is protowire.ConsumeTag refusing field numbers above protobuf's maximum, as proto.Unmarshal
// does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

// decodeBatch reads an EventBatch into w, reusing w's events slice.
func decodeBatch(b []byte, w *wireBatch) error {
	w.events = w.events[:0]
	var secs, nanos int64
	var source []byte
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
		switch {
		case num == batchSourceID && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errTruncated
			}
			if !utf8.Valid(v) {
				return fmt.Errorf("source_id: invalid UTF-8")
			}
			source, b = v, b[n:]
		case num == batchReceivedAt && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errTruncated
			}
			// A message field given twice is merged, as proto.Unmarshal does: the last value of each wins.
			if err := decodeTimestamp(v, &secs, &nanos); err != nil {
				return err
			}
			b = b[n:]
		case num == batchEvents && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errTruncated
			}
			var e wireEvent
			if err := decodeEvent(v, &e); err != nil {
				return fmt.Errorf("events[%d]: %w", len(w.events), err)
			}
			w.events = append(w.events, e)
			b = b[n:]
		default: // unknown, or a known number with another wire type: kept as unknown by proto.Unmarshal
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errTruncated
			}
			b = b[n:]
		}
	}
	if string(source) != w.sourceID {
		w.sourceID = string(source)
	}
	w.receivedAt = time.Unix(secs, nanos).UTC()
	return nil
}

func decodeEvent(b []byte, e *wireEvent) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == eventMessageID || num == eventType || num == eventJSON) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errTruncated
			}
			switch num {
			case eventMessageID:
				if !utf8.Valid(v) {
					return errors.New("message_id: invalid UTF-8")
				}
				e.messageID = v
			case eventType:
				if !utf8.Valid(v) {
					return errors.New("type: invalid UTF-8")
				}
			case eventJSON:
				e.json = v
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
	}
	return nil
}

func decodeTimestamp(b []byte, secs, nanos *int64) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
		if typ == protowire.VarintType && (num == timestampSeconds || num == timestampNanos) {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errTruncated
			}
			if num == timestampSeconds {
				*secs = int64(v)
			} else {
				*nanos = int64(int32(v)) // int32 in the proto: the varint's low 32 bits
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errTruncated
		}
		b = b[n:]
	}
	return nil
}
