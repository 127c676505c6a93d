// Package bus is how s3dest services talk: the JetStream streams and subjects, typed publishing with
// deduplication IDs and trace context, and the consume loop that turns a handler's error into an ack,
// a redelivery with backoff, or a termination. Services never call each other; they only use the bus.
//
//	stream      subjects                 written by          read by
//	INGEST      ingest.<sourceId>        producers           ingest
//	EVENTS      events.<sourceId>        ingest              batcher
//	 or EVENTS-<p> events.<p>.<sourceId>  (with N partitions, p = Partitions.Of(sourceId); see partitions.go)
//	BATCHES     batch.sealed.<sourceId>  batcher             stager
//	            batch.staged.<sourceId>  stager              copier
//	            batch.carried.<destId>   copier              copier (that destination's lane)
//	            batch.delivered.<destId> copier              (status, audit)
//	DEADLETTER  deadletter.>             any stage           operators
//	DEDUPE      dedupe.<sourceId>        batcher             batcher (its next owner)
//	object store BATCHES                 batcher             stager
//	KV CONFIG                            admin               every service
package bus

import (
	"strings"
)

// CopierConsumer is the durable consumer of a destination's copier lane on BATCHES: "copier-" and the
// destination ID in the characters a consumer name allows. It filters on the destination's source's
// batch.staged and on its own batch.carried.
func CopierConsumer(destinationID string) string {
	return "copier-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, destinationID)
}

// Stream, object store and key-value bucket names.
const (
	StreamIngest     = "INGEST"
	StreamEvents     = "EVENTS"
	StreamBatches    = "BATCHES"
	StreamDeadLetter = "DEADLETTER"
	// StreamDedupe holds the fingerprints of sealed events for the batcher's dedupe window; the batcher
	// owns it (its MaxAge is the window).
	StreamDedupe  = "DEDUPE"
	ObjectBatches = "BATCHES"
	KVConfig      = "CONFIG"
)

// ObjectChunk is the size of the chunk messages files are stored in in ObjectBatches (the object store's
// default is 128 KiB): a quarter as many messages for JetStream to store and read back cut the batcher's
// CPU per GB by ~15% (BenchmarkBatcherFile), for 512 KiB of buffer per open file. A server whose
// max_payload is smaller gets chunks of that size.
const ObjectChunk = 512 << 10

// Subject prefixes; the last token of every subject is the source (or destination) ID.
const (
	ingestPrefix     = "ingest."
	eventsPrefix     = "events."
	sealedPrefix     = "batch.sealed."
	stagedPrefix     = "batch.staged."
	deliveredPrefix  = "batch.delivered."
	carriedPrefix    = "batch.carried."
	failedPrefix     = "batch.failed."
	deadLetterPrefix = "deadletter."
	dedupePrefix     = "dedupe."
)

// Subjects for a source or destination.
func IngestSubject(sourceID string) string  { return ingestPrefix + sourceID }
func SealedSubject(sourceID string) string  { return sealedPrefix + sourceID }
func StagedSubject(sourceID string) string  { return stagedPrefix + sourceID }
func DeliveredSubject(destID string) string { return deliveredPrefix + destID }
func CarriedSubject(destID string) string   { return carriedPrefix + destID }
func FailedSubject(destID string) string    { return failedPrefix + destID }
func DedupeSubject(sourceID string) string  { return dedupePrefix + sourceID }
func DeadLetterSubject(stage, sourceID string) string {
	return deadLetterPrefix + stage + "." + sourceID
}

// Wildcards a consumer filters on.
const (
	AllIngest = ingestPrefix + "*"
	AllSealed = sealedPrefix + "*"
	AllStaged = stagedPrefix + "*"
	AllDedupe = dedupePrefix + "*"
)

// LastToken returns the ID a subject ends with.
func LastToken(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// Headers s3dest sets on messages besides the trace context.
const (
	// HeaderMsgID is JetStream's deduplication header.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderReason carries a dead letter's reason.
	HeaderReason = "S3dest-Reason"
)
