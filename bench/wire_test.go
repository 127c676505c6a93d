package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/s3dest/s3dest/pkg/eventwire"
)

// eventBatch is one message of events.<sourceId> as ingest writes it for one /v1/batch request of the
// bench's events of kind (padded or realistic), before any compression.
func eventBatch(tb testing.TB, kind string, request int) []byte {
	p, err := newPayloads(kind)
	if err != nil {
		tb.Fatal(err)
	}
	var body struct{ Batch []json.RawMessage }
	if err := json.Unmarshal(p.body(nil, "wire", 0, request), &body); err != nil {
		tb.Fatal(err)
	}
	batch := eventwire.AppendBatchHeader(nil, "src-0123456789abcdef", time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	for i, ev := range body.Batch {
		var head struct{ Type, MessageID string }
		if err := json.Unmarshal(ev, &head); err != nil {
			tb.Fatal(err)
		}
		batch = eventwire.AppendEventHeader(batch, []byte(fmt.Sprintf("wire-0-%d-%d", request, i)), head.Type, len(ev))
		batch = append(batch, ev...)
	}
	return batch
}

type codec struct {
	name       string
	compress   func(dst, src []byte) []byte
	decompress func(dst, src []byte) ([]byte, error)
}

func codecs(tb testing.TB) []codec {
	gz := func(level int) codec {
		w, err := gzip.NewWriterLevel(nil, level) // reused, as the batcher reuses its writer
		if err != nil {
			tb.Fatal(err)
		}
		return codec{name: fmt.Sprintf("gzip-%d", level),
			compress: func(dst, src []byte) []byte {
				buf := bytes.NewBuffer(dst[:0])
				w.Reset(buf)
				_, _ = w.Write(src)
				_ = w.Close()
				return buf.Bytes()
			},
			decompress: func(dst, src []byte) ([]byte, error) {
				r, err := gzip.NewReader(bytes.NewReader(src))
				if err != nil {
					return nil, err
				}
				buf := bytes.NewBuffer(dst[:0])
				_, err = io.Copy(buf, r)
				return buf.Bytes(), err
			}}
	}
	zs := func(level zstd.EncoderLevel) codec {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
		if err != nil {
			tb.Fatal(err)
		}
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			tb.Fatal(err)
		}
		return codec{name: "zstd-" + level.String(),
			compress:   func(dst, src []byte) []byte { return enc.EncodeAll(src, dst[:0]) },
			decompress: func(dst, src []byte) ([]byte, error) { return dec.DecodeAll(src, dst[:0]) }}
	}
	s2dec := func(dst, src []byte) ([]byte, error) { return s2.Decode(dst[:cap(dst)], src) }
	return []codec{
		{name: "s2", compress: func(dst, src []byte) []byte { return s2.Encode(dst[:cap(dst)], src) }, decompress: s2dec},
		{name: "s2-better", compress: func(dst, src []byte) []byte { return s2.EncodeBetter(dst[:cap(dst)], src) }, decompress: s2dec},
		gz(1), gz(2), zs(zstd.SpeedFastest), zs(zstd.SpeedDefault),
	}
}

// BenchmarkEventBatchCompression compresses and decompresses one request's EventBatch (100 events)
// with each candidate, for the bench's padded events and for realistic ones. MB/s is of the
// uncompressed batch; ratio is uncompressed / compressed. docs/wire.md has the figures and the choice.
func BenchmarkEventBatchCompression(b *testing.B) {
	for _, kind := range []string{"padded", "realistic"} {
		batch := eventBatch(b, kind, 7)
		for _, c := range codecs(b) {
			out := c.compress(make([]byte, 0, 2*len(batch)), batch)
			back, err := c.decompress(make([]byte, 0, len(batch)), out)
			if err != nil || !bytes.Equal(back, batch) {
				b.Fatalf("%s: round trip: %v", c.name, err)
			}
			b.Run(kind+"/"+c.name+"/compress", func(b *testing.B) {
				dst := make([]byte, 0, 2*len(batch))
				b.SetBytes(int64(len(batch)))
				for b.Loop() {
					dst = c.compress(dst, batch)
				}
				b.ReportMetric(float64(len(batch))/float64(len(out)), "ratio")
				b.ReportMetric(float64(len(out))/100, "B/event")
			})
			b.Run(kind+"/"+c.name+"/decompress", func(b *testing.B) {
				dst := make([]byte, 0, len(batch))
				b.SetBytes(int64(len(batch)))
				for b.Loop() {
					dst, _ = c.decompress(dst, out)
				}
			})
		}
	}
}

// BenchmarkEventBatchRead is what the batcher does per message: read it in place, uncompressed (proto)
// or decompressed from S2 into the Reader's buffer first.
func BenchmarkEventBatchRead(b *testing.B) {
	for _, kind := range []string{"padded", "realistic"} {
		batch := eventBatch(b, kind, 7)
		for _, enc := range []eventwire.Encoding{eventwire.Plain, eventwire.S2} {
			msg := eventwire.Frame(nil, batch, enc)
			b.Run(kind+"/"+enc.String(), func(b *testing.B) {
				var r eventwire.Reader
				var w eventwire.Batch
				b.SetBytes(int64(len(batch)))
				for b.Loop() {
					if err := r.Decode(msg, &w); err != nil || len(w.Events) != eventsPerRequest {
						b.Fatalf("read %d events: %v", len(w.Events), err)
					}
				}
			})
		}
	}
}
