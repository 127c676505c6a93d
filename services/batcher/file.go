package batcher

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/s3dest/s3dest/pkg/bus"
)

// partition is what a file holds: one source's events of one UTC received day.
type partition struct {
	source string
	dayMs  int64
}

// streamIdentity names one incarnation of the EVENTS stream: its name and creation time. Sequences count
// within an incarnation only: a stream deleted and created again starts at 1, so every name derived from
// sequences (batch ID, object name, file name) carries the identity too, or a new event would take the
// name, and the "already sealed" or "already delivered" status, of an old one.
type streamIdentity struct {
	name    string
	created time.Time
}

// String is the batch's events_stream: `{name}@{created, Unix ns}`.
func (s streamIdentity) String() string { return fmt.Sprintf("%s@%d", s.name, s.created.UnixNano()) }

// epoch is the creation time in Unix nanoseconds, 19 digits until 2286: it leads file names, so they sort
// by incarnation, then by position.
func (s streamIdentity) epoch() int64 { return s.created.UnixNano() }

// worstCaseGrowth bounds the compressed bytes n more input bytes can add: deflate's stored blocks cost 5
// bytes per 64 KiB, plus the gzip trailer and a flush marker.
func worstCaseGrowth(n int64) int64 { return n + n/1000 + 64 }

// file is an open batch file. Its gzip stream is written straight into the JetStream object store
// through a pipe, so memory holds one compression window, never the file.
type file struct {
	part       partition
	stream     streamIdentity
	objectName string
	opened     time.Time

	zw      *gzip.Writer
	lines   []byte        // event lines not yet handed to the compressor: it is cheaper fed large writes
	out     *bufio.Writer // between the compressor and the pipe: hands the object store large writes
	pw      *io.PipeWriter
	putDone chan error
	digest  []byte // the stored object's SHA-256, as the object store computed it
	// compressed counts bytes that left the compressor; unflushed counts input it may still hold.
	compressed   int64
	unflushed    int64
	uncompressed int64

	events      int64
	first, last uint64
	// oldest and newest bound the receivedAt of the file's messages (one per accepted request).
	oldest, newest time.Time
	// ids are the fingerprints of the file's events, forgotten again if the file is not sealed.
	ids []fingerprint
	// replies are the ack subjects of the EVENTS messages in the file, and seqs their stream sequences.
	replies []string
	seqs    []uint64
	// traces are the trace contexts of the first requests in the file: the seal continues the first
	// one's trace and links the others, so a request's trace leads to the file that holds it.
	traces []trace.SpanContext
}

// maxTraceLinks bounds the links a seal span carries.
const maxTraceLinks = 32

type countingWriter struct {
	w io.Writer
	f *file
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.f.compressed += int64(n)
	return n, err
}

// lineBuffer is what event lines gather into before they reach the compressor: two compressor calls per
// ~1 KB line cost ~15% more CPU than the same bytes in 64 KiB writes. It holds any event (at most 32 KB).
const lineBuffer = 64 << 10

// chunkSize is bus.ObjectChunk, or the server's max_payload if that is smaller.
func chunkSize(maxPayload int64) uint32 {
	return uint32(max(min(bus.ObjectChunk, maxPayload), 1))
}

// pipeBuffer is what the compressor's many small writes gather into before they cross the pipe, each
// crossing being a goroutine handoff.
const pipeBuffer = 64 << 10

// openFile starts a file whose object is named after its partition, the stream's incarnation, its first
// sequence and its writer (the batcher's ID): a batcher that stalled past its lease may still be writing
// the same sequences as its successor, and neither may overwrite the object the other sealed. The
// object of a file that is not sealed is deleted, or expires with the object store's TTL after a crash.
func openFile(ctx context.Context, obs jetstream.ObjectStore, part partition, stream streamIdentity, writer string, firstSeq uint64, level int, chunk uint32, now time.Time) (*file, error) {
	pr, pw := io.Pipe()
	f := &file{
		part:       part,
		stream:     stream,
		objectName: fmt.Sprintf("%s/%d/%d-%020d-%s", part.source, part.dayMs, stream.epoch(), firstSeq, writer),
		opened:     now,
		pw:         pw,
		putDone:    make(chan error, 1),
		first:      firstSeq,
		lines:      make([]byte, 0, lineBuffer),
	}
	// Counting comes before the buffer, so fits sees every compressed byte.
	f.out = bufio.NewWriterSize(pw, pipeBuffer)
	zw, err := gzip.NewWriterLevel(countingWriter{w: f.out, f: f}, level)
	if err != nil {
		return nil, err
	}
	f.zw = zw
	go func() {
		info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: f.objectName, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}}, fullReader{pr})
		if err == nil {
			// The object store hashes what it stores; that SHA-256 is the sealed one, so the file is
			// hashed once. The stager checks it against what it reads.
			if f.digest, err = jetstream.DecodeObjectDigest(info.Digest); err == nil && len(f.digest) != sha256.Size {
				err = fmt.Errorf("object digest %q is not a SHA-256", info.Digest)
			}
		}
		pr.CloseWithError(err) // unblocks the writer if Put gave up early
		f.putDone <- err
	}()
	return f, nil
}

// fullReader fills every read it can. The object store publishes one chunk message per Read, and the
// pipe hands over one compressor write (often a few hundred bytes) per Read: without this a file became
// thousands of tiny messages, costing CPU and stalling the object store's async publishes under load.
// The object store's own 128 KiB chunk buffer is what gets filled, so memory does not grow.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// fits reports whether n more uncompressed bytes surely keep the file under max. When unsure it flushes
// the compressor, which makes the count exact, and decides again.
func (f *file) fits(n, max int64) (bool, error) {
	if f.compressed+worstCaseGrowth(f.unflushed+n) <= max {
		return true, nil
	}
	if f.unflushed > 0 {
		if err := f.compress(); err != nil {
			return false, err
		}
		if err := f.zw.Flush(); err != nil {
			return false, err
		}
		f.unflushed = 0
	}
	return f.compressed+worstCaseGrowth(n) <= max, nil
}

// write appends one event line. Ingest refuses events over 32 KB and requests over 500 KB, so one
// message always fits an empty file of the smallest allowed size (1 MB): no event can be too big.
func (f *file) write(line []byte) error {
	if len(f.lines)+len(line)+1 > cap(f.lines) {
		if err := f.compress(); err != nil {
			return err
		}
	}
	f.lines = append(append(f.lines, line...), '\n')
	n := int64(len(line) + 1)
	f.unflushed += n
	f.uncompressed += n
	f.events++
	return nil
}

// compress hands the gathered lines to the compressor.
func (f *file) compress() error {
	_, err := f.zw.Write(f.lines)
	f.lines = f.lines[:0]
	return err
}

// close finishes the gzip stream and waits until the object store holds the whole object.
func (f *file) close() error {
	err := f.compress()
	if err == nil {
		err = f.zw.Close()
	}
	if err == nil {
		err = f.out.Flush()
	}
	if err != nil {
		f.pw.CloseWithError(err)
		<-f.putDone
		return fmt.Errorf("finish gzip of %s: %w", f.objectName, err)
	}
	f.pw.Close()
	if err := <-f.putDone; err != nil {
		return fmt.Errorf("store %s: %w", f.objectName, err)
	}
	return nil
}

// abort stops the upload; the partial object is replaced when the events are batched again.
func (f *file) abort(err error) {
	f.pw.CloseWithError(err)
	<-f.putDone
}

// batchID is derived from the partition, the stream's incarnation and the sequences only, so it is the
// same on every replay and different for the same sequences of a recreated stream.
func (f *file) batchID() string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%s/%d-%d", f.part.source, f.part.dayMs, f.stream, f.first, f.last))
	return hex.EncodeToString(h[:16])
}

// fileName is the object's base name in every bucket: sortable by stream incarnation and position, and
// unique per source.
func (f *file) fileName() string {
	return fmt.Sprintf("%019d-%020d-%020d.gz", f.stream.epoch(), f.first, f.last)
}

// sha256 is the stored object's SHA-256 in hex; known once close returned.
func (f *file) sha256() string { return hex.EncodeToString(f.digest) }
