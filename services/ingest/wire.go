package ingest

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The accepted events are encoded as an events.v1.EventBatch straight into one buffer: the same bytes
// proto.Marshal produces for the message (TestBatchEncodingMatchesProtoMarshal), without building a
// message per event or copying each event's JSON twice. Field numbers are those of
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

// appendBatchHeader starts an EventBatch: its source and receipt time.
func appendBatchHeader(dst []byte, sourceID string, at time.Time) []byte {
	if sourceID != "" {
		dst = protowire.AppendTag(dst, batchSourceID, protowire.BytesType)
		dst = protowire.AppendString(dst, sourceID)
	}
	secs, nanos := uint64(at.Unix()), uint64(at.Nanosecond())
	var size int
	if secs != 0 {
		size += protowire.SizeTag(timestampSeconds) + protowire.SizeVarint(secs)
	}
	if nanos != 0 {
		size += protowire.SizeTag(timestampNanos) + protowire.SizeVarint(nanos)
	}
	dst = protowire.AppendTag(dst, batchReceivedAt, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	if secs != 0 {
		dst = protowire.AppendTag(dst, timestampSeconds, protowire.VarintType)
		dst = protowire.AppendVarint(dst, secs)
	}
	if nanos != 0 {
		dst = protowire.AppendTag(dst, timestampNanos, protowire.VarintType)
		dst = protowire.AppendVarint(dst, nanos)
	}
	return dst
}

// appendEvent adds one Event to an EventBatch: its messageId, its type and its JSON line.
func appendEvent(dst []byte, messageID []byte, typ string, ev *rawEvent) []byte {
	jsonSize := ev.size()
	size := protowire.SizeTag(eventJSON) + protowire.SizeBytes(jsonSize)
	if len(messageID) != 0 {
		size += protowire.SizeTag(eventMessageID) + protowire.SizeBytes(len(messageID))
	}
	if typ != "" {
		size += protowire.SizeTag(eventType) + protowire.SizeBytes(len(typ))
	}
	dst = protowire.AppendTag(dst, batchEvents, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	if len(messageID) != 0 {
		dst = protowire.AppendTag(dst, eventMessageID, protowire.BytesType)
		dst = protowire.AppendBytes(dst, messageID)
	}
	if typ != "" {
		dst = protowire.AppendTag(dst, eventType, protowire.BytesType)
		dst = protowire.AppendString(dst, typ)
	}
	dst = protowire.AppendTag(dst, eventJSON, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(jsonSize))
	return ev.appendTo(dst)
}
