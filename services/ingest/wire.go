package ingest

import (
	"github.com/s3dest/s3dest/pkg/eventwire"
)

// appendEvent adds one Event to an EventBatch (see eventwire): its messageId, its type and its JSON line,
// spliced straight from the request.
func appendEvent(dst []byte, messageID []byte, typ string, ev *rawEvent) []byte {
	return ev.appendTo(eventwire.AppendEventHeader(dst, messageID, typ, ev.size()))
}
