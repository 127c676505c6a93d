package eventwire

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/events/v1"
)

// wireSeeds are EventBatches as ingest publishes them, and the odd shapes proto allows.
func wireSeeds(t testing.TB) [][]byte {
	full, err := proto.Marshal(&eventsv1.EventBatch{SourceId: "src1", ReceivedAt: timestamppb.New(time.Date(2026, 12, 1, 23, 59, 59, 999_000_000, time.UTC)),
		Events: []*eventsv1.Event{
			{MessageId: "m1", Type: "track", Json: []byte(`{"type":"track","event":"A"}`)},
			{MessageId: "m2", Type: "identify", Json: []byte(`{"type":"identify","userId":"u"}`)},
			{Json: []byte(`{}`)},
		}})
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := proto.Marshal(&eventsv1.EventBatch{})
	withUnknown := protowire.AppendTag(append([]byte(nil), full...), 9, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 42)
	twice := append(append([]byte(nil), full...), full...) // repeated events append, scalars: last wins
	badUTF8 := protowire.AppendTag(nil, batchSourceID, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff, 'x'})
	wrongType := protowire.AppendTag(nil, batchEvents, protowire.VarintType) // kept as unknown by proto
	wrongType = protowire.AppendVarint(wrongType, 7)
	return [][]byte{full, empty, withUnknown, twice, full[:len(full)-3], badUTF8, wrongType, {0x00}, {0x1a, 0x05, 0x0a}}
}

func TestDecodeReadsWhatProtoMarshalWrites(t *testing.T) {
	for _, seed := range wireSeeds(t) {
		checkAgainstProto(t, seed)
	}
	var w Batch
	if err := Decode(wireSeeds(t)[0], &w); err != nil {
		t.Fatal(err)
	}
	if w.SourceID != "src1" || !w.ReceivedAt.Equal(time.Date(2026, 12, 1, 23, 59, 59, 999_000_000, time.UTC)) || len(w.Events) != 3 ||
		string(w.Events[1].MessageID) != "m2" || string(w.Events[1].JSON) != `{"type":"identify","userId":"u"}` {
		t.Errorf("decoded %+v", w)
	}
}

// FuzzDecodeAgreesWithProtoUnmarshal holds Decode to proto.Unmarshal: the same inputs
// accepted, and the same source, receipt time, messageIds and JSON read from them.
func FuzzDecodeAgreesWithProtoUnmarshal(f *testing.F) {
	for _, seed := range wireSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkAgainstProto(t, data) })
}

func checkAgainstProto(t *testing.T, data []byte) {
	t.Helper()
	var want eventsv1.EventBatch
	wantErr := proto.Unmarshal(data, &want)
	var got Batch
	gotErr := Decode(data, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%x: proto.Unmarshal error %v, Decode error %v", data, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if got.SourceID != want.GetSourceId() || !got.ReceivedAt.Equal(want.GetReceivedAt().AsTime()) || len(got.Events) != len(want.GetEvents()) {
		t.Fatalf("%x: decoded %q %v %d events, proto %q %v %d events", data, got.SourceID, got.ReceivedAt, len(got.Events),
			want.GetSourceId(), want.GetReceivedAt().AsTime(), len(want.GetEvents()))
	}
	for i, e := range want.GetEvents() {
		if string(got.Events[i].MessageID) != e.GetMessageId() || !bytes.Equal(got.Events[i].JSON, e.GetJson()) {
			t.Fatalf("%x: event %d decoded %q %q, proto %q %q", data, i, got.Events[i].MessageID, got.Events[i].JSON, e.GetMessageId(), e.GetJson())
		}
	}
}

// BenchmarkDecode reads a 100-event EventBatch of ~1 KB events as the batcher does, next to
// proto.Unmarshal of the same bytes (what it replaced).
func BenchmarkDecode(b *testing.B) {
	batch := &eventsv1.EventBatch{SourceId: "src1", ReceivedAt: timestamppb.Now()}
	for i := range 100 {
		line := fmt.Appendf(nil, `{"type":"track","userId":"user-%d","event":"Order Completed","messageId":"m-%d","properties":{"note":"%0900d"}}`, i, i, i)
		batch.Events = append(batch.Events, &eventsv1.Event{MessageId: fmt.Sprintf("m-%d", i), Type: "track", Json: line})
	}
	data, err := proto.Marshal(batch)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		var w Batch
		for b.Loop() {
			if err := Decode(data, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var m eventsv1.EventBatch
			if err := proto.Unmarshal(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestEventSizeIsWhatOneEventAdds(t *testing.T) {
	for _, c := range []struct {
		id, typ string
		json    int
	}{{"m-1", "track", 10}, {"", "", 0}, {"", "page", 127}, {"id", "", 128}, {strings.Repeat("x", 200), "identify", 40_000}} {
		before := AppendBatchHeader(nil, "src1", time.Unix(1, 2))
		after := append(AppendEventHeader(before, []byte(c.id), c.typ, c.json), make([]byte, c.json)...)
		if got, want := EventSize([]byte(c.id), c.typ, c.json), len(after)-len(before); got != want {
			t.Errorf("%+v: EventSize = %d, the event added %d bytes", c, got, want)
		}
	}
}
