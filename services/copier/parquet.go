package copier

// Parquet delivery (settings.format = parquet). The batcher writes one gzipped NDJSON file per source
// and received day, shared by all the source's destinations, and the stager keeps it in staging; a
// Parquet destination gets the same file converted by the copier as it reads it from staging: the
// conversion is per destination (only Parquet destinations pay for it), the JSON path is untouched,
// and a replay of staging can deliver either format. The converter is a pure function of the staged
// bytes, so the key ({file}.parquet) and its content are the same on every retry, and If-None-Match
// keeps the delivery exactly once as for .gz files.
//
// Memory stays flat whatever the file's size: rows go to the Parquet writer as they are read, and a row
// group is flushed each time parquetRowGroupBytes of NDJSON went into it. The Parquet file is written to
// a temporary file (S3 needs its length and SHA-256 before the one streamed PutObject), so disk, not
// memory, holds it: at most one file per copy in flight (--workers per destination), each < 100 MB.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/s3dest/s3dest/pkg/isotime"
)

// ParquetContentType is the media type of delivered Parquet files.
const ParquetContentType = "application/vnd.apache.parquet"

// maxDeliveredBytes is the product's promise for every delivered file, whatever its format: < 100 MB.
const maxDeliveredBytes = 100_000_000

// parquetRowGroupBytes of NDJSON fill one row group: the writer buffers one row group's columns, so
// this bounds the converter's memory (about this much, plus one page buffer per column).
const parquetRowGroupBytes = 8 << 20

// parquetWriteBatch rows are handed to the writer at once.
const parquetWriteBatch = 256

// ParquetEvent is one row of a delivered Parquet file. A typed column holds its field only when the
// field has the column's type: a string for the string columns; for the timestamp columns an ISO-8601
// time as ingest accepts it (pkg/isotime; no zone is UTC) that microseconds hold exactly. Any other
// value of such a field (a number as userId, a time in nanoseconds or that does not parse) leaves the column null and is kept, under its own name, in extra, so
// no value is ever dropped. properties, traits and context hold their JSON text exactly as received;
// extra is a JSON object of every other top-level field (integrations, groupId, previousId, version,
// channel, …), null when there is none. A field that is absent and one that is JSON null both read as
// null.
type ParquetEvent struct {
	Type              *string    `parquet:"type,optional"`
	Event             *string    `parquet:"event,optional"`
	Name              *string    `parquet:"name,optional"`
	UserID            *string    `parquet:"userId,optional"`
	AnonymousID       *string    `parquet:"anonymousId,optional"`
	MessageID         *string    `parquet:"messageId,optional"`
	Timestamp         *time.Time `parquet:"timestamp,optional,timestamp(microsecond)"`
	SentAt            *time.Time `parquet:"sentAt,optional,timestamp(microsecond)"`
	ReceivedAt        *time.Time `parquet:"receivedAt,optional,timestamp(microsecond)"`
	OriginalTimestamp *time.Time `parquet:"originalTimestamp,optional,timestamp(microsecond)"`
	Properties        *string    `parquet:"properties,optional"`
	Traits            *string    `parquet:"traits,optional"`
	Context           *string    `parquet:"context,optional"`
	Extra             *string    `parquet:"extra,optional"`
}

// errUnconvertible marks a staged file that can never become Parquet (a line that is not a JSON
// object, or a result over the size cap): no retry can change it, so it is dead-lettered for the
// Parquet destination with the reason, and its JSON destinations are not affected.
var errUnconvertible = errors.New("cannot be converted to Parquet")

// WriteParquet converts gzipped NDJSON, one event a line, into one zstd Parquet file written to dst,
// and returns how many events it holds. The output is a function of the input alone.
func WriteParquet(dst io.Writer, gzipped io.Reader) (int64, error) {
	zr, err := gzip.NewReader(gzipped)
	if err != nil {
		return 0, fmt.Errorf("read gzip: %w", err)
	}
	defer zr.Close()
	codec, err := newPageZstd()
	if err != nil {
		return 0, err
	}
	defer codec.enc.Close()
	w := parquet.NewGenericWriter[ParquetEvent](dst, parquet.Compression(codec))
	lines := bufio.NewReaderSize(zr, 64<<10)
	rows := make([]ParquetEvent, 0, parquetWriteBatch)
	var conv eventConverter
	var events, inGroup int64
	flushRows := func() error {
		if _, err := w.Write(rows); err != nil {
			return fmt.Errorf("write Parquet rows: %w", err)
		}
		rows = rows[:0]
		return nil
	}
	for lineNo := int64(1); ; lineNo++ {
		line, err := readLine(lines)
		if len(line) > 0 {
			var row ParquetEvent
			if cerr := conv.convert(line, &row); cerr != nil {
				return events, fmt.Errorf("line %d: %w: %w", lineNo, errUnconvertible, cerr)
			}
			rows = append(rows, row)
			events++
			inGroup += int64(len(line))
			if len(rows) == parquetWriteBatch {
				if err := flushRows(); err != nil {
					return events, err
				}
			}
			if inGroup >= parquetRowGroupBytes {
				if err := flushRows(); err != nil {
					return events, err
				}
				if err := w.Flush(); err != nil {
					return events, fmt.Errorf("flush a Parquet row group: %w", err)
				}
				inGroup = 0
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return events, fmt.Errorf("read line %d: %w", lineNo, err)
		}
	}
	if err := flushRows(); err != nil {
		return events, err
	}
	if err := w.Close(); err != nil {
		return events, fmt.Errorf("close the Parquet file: %w", err)
	}
	return events, nil
}

// readLine returns the next line without its newline (a slice of r's buffer when it fits, valid until
// the next call), or io.EOF after the last one.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err == nil {
		line = line[:len(line)-1]
	}
	return bytes.TrimRight(line, "\r"), err
}

// eventConverter turns one NDJSON line into a row, reusing its maps between lines.
type eventConverter struct {
	fields map[string]json.RawMessage
	extra  map[string]json.RawMessage
	buf    bytes.Buffer
}

func (c *eventConverter) convert(line []byte, row *ParquetEvent) error {
	if c.fields == nil {
		c.fields, c.extra = map[string]json.RawMessage{}, map[string]json.RawMessage{}
	}
	clear(c.fields)
	clear(c.extra)
	if err := json.Unmarshal(line, &c.fields); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	for name, raw := range c.fields {
		switch name {
		case "type":
			row.Type = c.stringField(name, raw)
		case "event":
			row.Event = c.stringField(name, raw)
		case "name":
			row.Name = c.stringField(name, raw)
		case "userId":
			row.UserID = c.stringField(name, raw)
		case "anonymousId":
			row.AnonymousID = c.stringField(name, raw)
		case "messageId":
			row.MessageID = c.stringField(name, raw)
		case "timestamp":
			row.Timestamp = c.timeField(name, raw)
		case "sentAt":
			row.SentAt = c.timeField(name, raw)
		case "receivedAt":
			row.ReceivedAt = c.timeField(name, raw)
		case "originalTimestamp":
			row.OriginalTimestamp = c.timeField(name, raw)
		case "properties":
			row.Properties = jsonField(raw)
		case "traits":
			row.Traits = jsonField(raw)
		case "context":
			row.Context = jsonField(raw)
		default:
			c.extra[name] = raw
		}
	}
	if len(c.extra) == 0 {
		return nil
	}
	// Sorted keys (encoding/json sorts a map's), so the same event always gives the same text.
	c.buf.Reset()
	enc := json.NewEncoder(&c.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c.extra); err != nil {
		return fmt.Errorf("encode the extra fields: %w", err)
	}
	extra := string(bytes.TrimRight(c.buf.Bytes(), "\n"))
	row.Extra = &extra
	return nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// stringField is a JSON string's value; any other value goes to extra.
func (c *eventConverter) stringField(name string, raw json.RawMessage) *string {
	if isNull(raw) {
		return nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		c.extra[name] = raw
		return nil
	}
	return &s
}

// timeField is the time in UTC when it parses as ingest reads it (isotime) and microseconds hold it
// exactly (Parquet's TIMESTAMP(MICROS), which Athena and DuckDB read); any other value goes to extra, as received.
func (c *eventConverter) timeField(name string, raw json.RawMessage) *time.Time {
	if isNull(raw) {
		return nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		c.extra[name] = raw
		return nil
	}
	t, err := isotime.Parse(s)
	if err != nil || t.Nanosecond()%1000 != 0 {
		c.extra[name] = raw
		return nil
	}
	t = t.UTC()
	return &t
}

// jsonField is a field's JSON text as received.
func jsonField(raw json.RawMessage) *string {
	if isNull(raw) {
		return nil
	}
	s := string(raw)
	return &s
}

// parquetFile is a staged file converted to Parquet in a temporary file, ready for one PutObject.
type parquetFile struct {
	f      *os.File
	size   int64
	sha256 string
	events int64
}

// convertStaged converts the staged gzip file read from body, checking that it is the sealed file
// (its size and SHA-256), into a temporary Parquet file. The caller closes the result.
func convertStaged(body io.Reader, wantSize int64, wantSHA256 string) (*parquetFile, error) {
	staged := sha256.New()
	counted := &countingWriter{}
	in := io.TeeReader(body, io.MultiWriter(staged, counted))
	f, err := os.CreateTemp("", "s3dest-*.parquet")
	if err != nil {
		return nil, fmt.Errorf("create a temporary Parquet file: %w", err)
	}
	out := &parquetFile{f: f}
	sum := sha256.New()
	events, err := WriteParquet(io.MultiWriter(f, sum), in)
	if err == nil {
		// Drain what gzip left unread (a trailer, padding) so the checksum covers every byte.
		_, err = io.Copy(io.Discard, in)
	}
	if err == nil && (counted.n != wantSize || hex.EncodeToString(staged.Sum(nil)) != wantSHA256) {
		err = fmt.Errorf("the staged file is %d bytes with another SHA-256 than the sealed %d-byte file", counted.n, wantSize)
	}
	if err != nil {
		out.Close()
		return nil, err
	}
	out.events, out.sha256 = events, hex.EncodeToString(sum.Sum(nil))
	if out.size, err = f.Seek(0, io.SeekCurrent); err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("rewind the temporary Parquet file: %w", err)
	}
	if out.size >= maxDeliveredBytes {
		out.Close()
		return nil, fmt.Errorf("%w: the Parquet file would be %d bytes, over the 100 MB cap", errUnconvertible, out.size)
	}
	return out, nil
}

// Close removes the temporary file.
func (p *parquetFile) Close() error {
	p.f.Close()
	return os.Remove(p.f.Name())
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// pageZstd is zstd for Parquet pages with a window of 1 MiB: a page is compressed on its own and is
// at most the writer's page buffer (256 KiB) before compression, so a larger window (parquet-go's codec
// keeps zstd's default of 8 MiB, and its history buffers took 32 MB of the heap) only costs memory.
type pageZstd struct {
	enc *zstd.Encoder
}

func newPageZstd() (*pageZstd, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &pageZstd{enc: enc}, nil
}

func (c *pageZstd) String() string                            { return "ZSTD" }
func (c *pageZstd) CompressionCodec() format.CompressionCodec { return format.Zstd }
func (c *pageZstd) Encode(dst, src []byte) ([]byte, error)    { return c.enc.EncodeAll(src, dst[:0]), nil }

// Decode is not used: the copier only writes Parquet.
func (c *pageZstd) Decode(dst, src []byte) ([]byte, error) {
	return nil, errors.New("s3dest's Parquet codec only compresses")
}
