package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A forming cluster's answers are tried again; a real answer, such as a bad request, is returned at once.
func TestAgainOnTimeoutWaitsOutAFormingClusterButNotARefusal(t *testing.T) {
	noPeers := &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}
	for _, err := range []error{noPeers, fmt.Errorf("apply: %w", noPeers), nats.ErrNoResponders,
		&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}} {
		if !Transient(err) {
			t.Errorf("Transient(%v) = false, want true", err)
		}
	}
	calls := 0
	err := AgainOnTimeout(context.Background(), func() error {
		if calls++; calls < 3 {
			return noPeers
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("after two placements without peers: %v in %d calls, want success in 3", err, calls)
	}

	refused := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeBadRequest, Description: "bad request"}
	calls = 0
	if err := AgainOnTimeout(context.Background(), func() error { calls++; return refused }); !errors.Is(err, refused) || calls != 1 || Transient(refused) {
		t.Errorf("a bad request: %v in %d calls, want it returned after 1", err, calls)
	}
}
