package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/eventwire"
)

// batchBody is a /v1/batch request of 100 track events of about 1 KB each.
func batchBody(seq int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","userId":"user-%d","event":"Order Completed","messageId":"bench-%012d-%03d",`+
			`"timestamp":"2026-11-24T12:00:00.000Z","context":{"library":{"name":"analytics-go","version":"3.3.0"},"ip":"203.0.113.7"},`+
			`"properties":{"orderId":"%d","total":129.99,"currency":"USD","products":[{"sku":"SKU-1","name":"%s","price":64.99,"quantity":2}],"note":"%s"}}`,
			i, seq, i, seq*100+i, strings.Repeat("p", 40), strings.Repeat("n", 560))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// idMarks finds the 12-digit request number in each messageId of a batchBody.
func idMarks(body []byte) []int {
	var marks []int
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(`"bench-`))
		if j < 0 {
			return marks
		}
		i += j + len(`"bench-`)
		marks = append(marks, i)
	}
}

func stampIDs(body []byte, marks []int, n int64) {
	var digits [12]byte
	copy(digits[:], fmt.Appendf(nil, "%012d", n))
	for _, m := range marks {
		copy(body[m:m+12], digits[:])
	}
}

// BenchmarkIngestBatch measures events accepted per second through the Tracking API into embedded
// JetStream (file storage), 100 events of ~1 KB per request, over 8 concurrent keep-alive connections,
// with each events encoding (docs/wire.md). The load generator shares the two cores, so it is a lean one
// (loadClient), as wrk would be.
func BenchmarkIngestBatch(b *testing.B) {
	for _, enc := range []string{"proto", "s2"} {
		b.Run(enc, func(b *testing.B) { benchmarkIngestBatch(b, enc) })
	}
}

func benchmarkIngestBatch(b *testing.B, encoding string) {
	h := start(b, func(c *Config) { c.PublishTimeout, c.EventsEncoding = 10*time.Second, encoding })
	addr := strings.TrimPrefix(h.url, "http://")
	var seq atomic.Int64
	b.SetBytes(int64(len(batchBody(0))))
	b.ReportAllocs()
	b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 connections
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		// Distinct messageIds per request keep JetStream's deduplication out of the measurement; they are
		// stamped in place so that the load generator costs little.
		c, err := dialLoad(addr, "/v1/batch", writeKey, batchBody(0))
		if err != nil {
			b.Error(err)
			return
		}
		defer c.conn.Close()
		marks := idMarks(c.req)
		for pb.Next() {
			stampIDs(c.req, marks, seq.Add(1))
			status, err := c.post()
			if err != nil {
				b.Error(err)
				return
			}
			if status != 200 {
				b.Errorf("status %d", status)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N*100)/elapsed.Seconds(), "events/s")
}

// loadClient is a benchmark's HTTP/1.1 client: one keep-alive connection, each request written from one
// prepared buffer in one write, each response's body skipped by its Content-Length. net/http's client
// spends a tenth of the machine on this load (a goroutine hop per request and a 32 KiB copy buffer).
type loadClient struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func dialLoad(addr, path, key string, body []byte) (*loadClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(key + ":"))
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		path, addr, auth, len(body))
	return &loadClient{conn: conn, br: bufio.NewReader(conn), req: append(req, body...)}, nil
}

// post sends the request and returns the response's status once its body is read.
func (c *loadClient) post() (int, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	var status int
	if _, err := fmt.Sscanf(string(line), "HTTP/1.1 %d", &status); err != nil {
		return 0, fmt.Errorf("status line %q: %w", line, err)
	}
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if v, ok := bytes.CutPrefix(bytes.ToLower(line), []byte("content-length:")); ok {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, fmt.Errorf("content-length %q: %w", v, err)
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	_, err = c.br.Discard(length)
	return status, err
}

// BenchmarkRawJetStreamPublish is the physical limit next to BenchmarkIngestBatch: the same enriched
// 100-event payloads published straight to the same kind of JetStream, 8 at a time.
func BenchmarkRawJetStreamPublish(b *testing.B) {
	h := start(b, nil)
	p, ierr := parsePayload(batchBody(0), "")
	if ierr != nil {
		b.Fatal(ierr)
	}
	rc := newReceipt(sourceID, "203.0.113.7", time.Now())
	data := eventwire.AppendBatchHeader(nil, sourceID, rc.at)
	for i := range p.events {
		ev := p.merged(i)
		id, typ, err := enrich(&ev, rc)
		if err != nil {
			b.Fatal(err)
		}
		data = appendEvent(data, id, typ, &ev)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	pending := make(chan jetstream.PubAckFuture, 8)
	done := make(chan struct{})
	go func() {
		for f := range pending {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Error(err)
			}
		}
		close(done)
	}()
	for i := range b.N {
		f, err := h.js.PublishAsync(h.parts.Subject(sourceID), data, jetstream.WithMsgID(fmt.Sprintf("raw-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		pending <- f
	}
	close(pending)
	<-done
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N*100)/elapsed.Seconds(), "events/s")
	_ = context.Background()
}

// BenchmarkParseEnrichEncode is ingest's own work on one 100-event /v1/batch request, without HTTP or
// JetStream: parse and validate, enrich, encode the EventBatch.
func BenchmarkParseEnrichEncode(b *testing.B) {
	body := batchBody(0)
	var buf []byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, ierr := parsePayload(body, "")
		if ierr != nil {
			b.Fatal(ierr)
		}
		rc := newReceipt(sourceID, "203.0.113.7", time.Now())
		buf = eventwire.AppendBatchHeader(buf[:0], sourceID, rc.at)
		for i := range p.events {
			ev := p.merged(i)
			id, typ, err := enrich(&ev, rc)
			if err != nil {
				b.Fatal(err)
			}
			buf = appendEvent(buf, id, typ, &ev)
		}
		p.release()
	}
}
