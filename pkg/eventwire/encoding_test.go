package eventwire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
)

// compressibleBatch is an EventBatch of n events that S2 makes smaller, as real events are.
func compressibleBatch(t testing.TB, n int) []byte {
	b := &eventsv1.EventBatch{SourceId: "src1", ReceivedAt: timestamppb.New(time.Date(2026, 12, 2, 10, 0, 0, 5, time.UTC))}
	for i := range n {
		b.Events = append(b.Events, &eventsv1.Event{MessageId: fmt.Sprintf("m%d", i), Type: "track",
			Json: fmt.Appendf(nil, `{"type":"track","event":"Order Completed","messageId":"m%d","properties":{"total":%d}}`, i, i*7)})
	}
	data, err := proto.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReaderReadsPlainAndS2MessagesAlike(t *testing.T) {
	var r Reader
	for i, batch := range append(wireSeeds(t), compressibleBatch(t, 100), compressibleBatch(t, 3000)) {
		var want Batch
		wantErr := Decode(batch, &want)
		for _, enc := range []Encoding{Plain, S2} {
			msg := Frame(nil, batch, enc)
			var got Batch
			gotErr := r.Decode(msg, &got)
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("seed %d as %s: Decode error %v, Reader error %v", i, enc, wantErr, gotErr)
			}
			if wantErr == nil && !sameBatch(&got, &want) {
				t.Fatalf("seed %d as %s: read %+v, want %+v", i, enc, got, want)
			}
		}
	}
}

func TestFrameCompressesRealisticBatchesWithS2(t *testing.T) {
	batch := compressibleBatch(t, 100)
	msg := Frame(nil, batch, S2)
	if msg[0] != frameMark || Encoding(msg[1]) != S2 {
		t.Fatalf("message starts %x, want a frame of S2", msg[:2])
	}
	if len(msg) >= len(batch)/2 {
		t.Errorf("S2 message is %d bytes of a %d-byte batch: want less than half", len(msg), len(batch))
	}
	if got := Frame(nil, batch, Plain); !bytes.Equal(got, batch) {
		t.Error("Plain message is not the batch's bytes")
	}
}

func TestFrameKeepsABatchPlainWhenS2WouldNotShrinkIt(t *testing.T) {
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	random[0] = 0x0a // whatever follows, the message is what was given
	if msg := Frame(nil, random, S2); !bytes.Equal(msg, random) {
		t.Errorf("incompressible batch framed into %d bytes; want it unframed (%d bytes)", len(msg), len(random))
	}
}

func TestReaderLeavesAnEncodingItDoesNotKnowToANewerReader(t *testing.T) {
	var r Reader
	var w Batch
	err := r.Decode([]byte{frameMark, 7, 1, 2, 3}, &w)
	if !errors.Is(err, ErrNewerEncoding) {
		t.Errorf("encoding 7: error %v, want ErrNewerEncoding", err)
	}
	for _, msg := range [][]byte{{frameMark}, {frameMark, byte(S2)}, {frameMark, byte(S2), 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		if err := r.Decode(msg, &w); err == nil || errors.Is(err, ErrNewerEncoding) {
			t.Errorf("%x: error %v, want a malformed frame", msg, err)
		}
	}
}

// A reader that predates frames calls proto.Unmarshal or Decode on the message: it must refuse a
// framed message, never read events out of it.
func TestReadersThatPredateFramesRefuseFramedMessages(t *testing.T) {
	msg := Frame(nil, compressibleBatch(t, 100), S2)
	var w Batch
	if err := Decode(msg, &w); err == nil {
		t.Errorf("Decode read %d events from an S2 frame", len(w.Events))
	}
	if err := proto.Unmarshal(msg, &eventsv1.EventBatch{}); err == nil {
		t.Error("proto.Unmarshal accepted an S2 frame")
	}
}

// FuzzReaderReadsWhatFrameWrites: whatever the batch, its S2 message reads as the batch does, and no
// message makes the Reader fail other than by an error.
func FuzzReaderReadsWhatFrameWrites(f *testing.F) {
	for _, seed := range append(wireSeeds(f), compressibleBatch(f, 20)) {
		f.Add(seed)
		f.Add(Frame(nil, seed, S2))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Reader
		var got, want Batch
		_ = r.Decode(data, &got) // arbitrary messages: an error at most
		if len(data) > 0 && data[0] == frameMark {
			return // a message already, not an EventBatch: Frame is only given EventBatches
		}
		wantErr := Decode(data, &want)
		gotErr := r.Decode(Frame(nil, data, S2), &got)
		if (wantErr == nil) != (gotErr == nil) || wantErr == nil && !sameBatch(&got, &want) {
			t.Fatalf("%x: Decode read %d events (%v), the Reader of its S2 message %d (%v)", data, len(want.Events), wantErr, len(got.Events), gotErr)
		}
	})
}

func sameBatch(a, b *Batch) bool {
	if a.SourceID != b.SourceID || !a.ReceivedAt.Equal(b.ReceivedAt) || len(a.Events) != len(b.Events) {
		return false
	}
	for i := range a.Events {
		if !bytes.Equal(a.Events[i].MessageID, b.Events[i].MessageID) || !bytes.Equal(a.Events[i].JSON, b.Events[i].JSON) {
			return false
		}
	}
	return true
}
