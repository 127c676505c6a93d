package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// object is one file in the customer bucket.
type object struct {
	key          string
	size         int64
	lastModified time.Time
	seen         time.Time // when a listing first showed it (latency phase)
}

// listObjects lists every object of a source in the customer bucket.
func listObjects(ctx context.Context, cli *s3.Client, sourceID string) ([]object, error) {
	var out []object
	pages := s3.NewListObjectsV2Paginator(cli, &s3.ListObjectsV2Input{Bucket: aws.String(customerBucket), Prefix: aws.String("segment-logs/" + sourceID + "/")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/segment-logs/%s/: %w", customerBucket, sourceID, err)
		}
		for _, o := range page.Contents {
			out = append(out, object{key: aws.ToString(o.Key), size: aws.ToInt64(o.Size), lastModified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// tally is the read-back of delivered lines against the requests answered 200.
type tally struct {
	log        *requestLog
	phase      string
	seen       [][]uint8 // [sender][request*eventsPerRequest+i]: times delivered
	lines      int64
	unknown    int64 // lines without a messageId that an accepted request sent
	duplicates int64
}

func newTally(log *requestLog, phase string) *tally {
	t := &tally{log: log, phase: phase}
	for _, reqs := range log.at {
		t.seen = append(t.seen, make([]uint8, len(reqs)*eventsPerRequest))
	}
	return t
}

var messageIDKey = []byte(`"messageId":"`)

// hit is one line of an object: the event it carries, or -1 in sender when it carries none of ours.
type hit struct{ sender, request, i int32 }

// scan reads one object's NDJSON and returns its lines' events; it touches no shared state, so objects
// are scanned concurrently and merged one at a time.
func (t *tally) scan(r io.Reader) ([]hit, error) {
	var hits []hit
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		h := hit{sender: -1}
		// Our events carry messageId first; s3dest keeps the producer's bytes and the key once.
		if k := bytes.Index(line, messageIDKey); k >= 0 {
			rest := line[k+len(messageIDKey):]
			if end := bytes.IndexByte(rest, '"'); end >= 0 {
				if phase, s, req, i, ok := parseID(rest[:end]); ok && phase == t.phase && i < eventsPerRequest {
					h = hit{int32(s), int32(req), int32(i)}
				}
			}
		}
		hits = append(hits, h)
	}
	return hits, sc.Err()
}

// merge counts one object's lines and calls each with the accept time of every accepted event in it.
func (t *tally) merge(hits []hit, each func(acceptedAt time.Time)) {
	for _, h := range hits {
		t.lines++
		if h.sender < 0 {
			t.unknown++
			continue
		}
		at, accepted := t.log.acceptedAt(int(h.sender), int(h.request))
		if !accepted {
			t.unknown++
			continue
		}
		idx := int(h.request)*eventsPerRequest + int(h.i)
		if t.seen[h.sender][idx]++; t.seen[h.sender][idx] > 1 {
			t.duplicates++
		}
		if each != nil {
			each(at)
		}
	}
}

// missing is how many accepted events never arrived.
func (t *tally) missing() int64 {
	var n int64
	for s, reqs := range t.log.at {
		for r, at := range reqs {
			if at.IsZero() {
				continue
			}
			for i := range eventsPerRequest {
				if t.seen[s][r*eventsPerRequest+i] == 0 {
					n++
				}
			}
		}
	}
	return n
}

// delivered is the number of distinct accepted events that arrived.
func (t *tally) delivered() int64 {
	return t.lines - t.unknown - t.duplicates
}

func getObject(ctx context.Context, cli *s3.Client, key string) (io.ReadCloser, error) {
	out, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(customerBucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	zr, err := gzip.NewReader(out.Body)
	if err != nil {
		out.Body.Close()
		return nil, fmt.Errorf("gunzip %s: %w", key, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, out.Body}, nil
}

// readObjects streams every object (4 at a time) into the tally; each gets the object and the accept
// time of every accepted line.
func readObjects(ctx context.Context, cli *s3.Client, objs []object, t *tally, each func(o object, acceptedAt time.Time)) error {
	var mu sync.Mutex // the tally's counts are merged one object at a time
	sem := make(chan struct{}, 4)
	errs := make(chan error, len(objs))
	var wg sync.WaitGroup
	for _, o := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body, err := getObject(ctx, cli, o.key)
			if err != nil {
				errs <- err
				return
			}
			defer body.Close()
			hits, err := t.scan(body)
			if err != nil {
				errs <- fmt.Errorf("read %s: %w", o.key, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			var cb func(time.Time)
			if each != nil {
				cb = func(at time.Time) { each(o, at) }
			}
			t.merge(hits, cb)
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sampleNDJSON reads delivered lines, object after object, up to limit bytes: the input of the raw
// gzip limit, exactly as s3dest wrote it.
func sampleNDJSON(ctx context.Context, cli *s3.Client, objs []object, limit int) ([]byte, error) {
	var out []byte
	for _, o := range objs {
		if len(out) >= limit {
			break
		}
		body, err := getObject(ctx, cli, o.key)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(body, int64(limit-len(out))))
		body.Close()
		if err != nil {
			return nil, err
		}
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			out = append(out, data[:i+1]...) // whole lines only
		}
	}
	return out, nil
}
