package bus

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"
)

// NewMsg returns a message for subject with data, the deduplication ID msgID (may be empty) and the
// trace context of ctx in its headers.
func NewMsg(ctx context.Context, subject string, data []byte, msgID string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	if msgID != "" {
		m.Header.Set(HeaderMsgID, msgID)
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(http.Header(m.Header)))
	return m
}

// Publish marshals pb and publishes it on subject, returning once JetStream has stored it. opts add
// JetStream's expectations (WithExpectLastSequencePerSubject fences a writer that lost its lease).
func Publish(ctx context.Context, js jetstream.JetStream, subject string, pb proto.Message, msgID string, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	data, err := proto.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", pb, err)
	}
	ack, err := js.PublishMsg(ctx, NewMsg(ctx, subject, data, msgID), opts...)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return ack, nil
}

// IsWrongLastSequence reports whether a publish was refused because the subject's last sequence was not
// the one expected: someone else wrote to the subject since the writer last looked.
func IsWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ContextFrom returns ctx carrying the trace context found in a message's headers.
func ContextFrom(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(http.Header(h)))
}
