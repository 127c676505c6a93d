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
	unknown    int64 // lines whose messageId no accepted request sent
	duplicates int64
	noID       int64
	ndjson     []byte // the first lines read, for the raw gzip limit
	ndjsonCap  int
}

func newTally(log *requestLog, phase string, keepNDJSON int) *tally {
	t := &tally{log: log, phase: phase, ndjsonCap: keepNDJSON}
	for _, reqs := range log.at {
		t.seen = append(t.seen, make([]uint8, len(reqs)*eventsPerRequest))
	}
	return t
}

var messageIDKey = []byte(`"messageId":"`)

// add counts the lines of one object and calls each with the accept time of every line's request.
func (t *tally) add(r io.Reader, each func(acceptedAt time.Time)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		t.lines++
		if len(t.ndjson) < t.ndjsonCap {
			t.ndjson = append(append(t.ndjson, line...), '\n')
		}
		// Our events carry messageId first; s3dest keeps the producer's bytes and the key once.
		k := bytes.Index(line, messageIDKey)
		if k < 0 {
			t.noID++
			continue
		}
		rest := line[k+len(messageIDKey):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			t.noID++
			continue
		}
		phase, s, req, i, ok := parseID(rest[:end])
		at, accepted := t.log.acceptedAt(s, req)
		if !ok || phase != t.phase || !accepted || i >= eventsPerRequest {
			t.unknown++
			continue
		}
		idx := req*eventsPerRequest + i
		if t.seen[s][idx]++; t.seen[s][idx] > 1 {
			t.duplicates++
		}
		if each != nil {
			each(at)
		}
	}
	return sc.Err()
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
	return t.lines - t.unknown - t.duplicates - t.noID
}

// readObjects reads every object (4 at a time) into the tally; each gets the object and the accept
// time of every line.
func readObjects(ctx context.Context, cli *s3.Client, objs []object, t *tally, each func(o object, acceptedAt time.Time)) error {
	var mu sync.Mutex // the tally is not safe for concurrent use
	sem := make(chan struct{}, 4)
	errs := make(chan error, len(objs))
	var wg sync.WaitGroup
	for _, o := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(customerBucket), Key: aws.String(o.key)})
			if err != nil {
				errs <- fmt.Errorf("get %s: %w", o.key, err)
				return
			}
			defer out.Body.Close()
			zr, err := gzip.NewReader(out.Body)
			if err != nil {
				errs <- fmt.Errorf("gunzip %s: %w", o.key, err)
				return
			}
			data, err := io.ReadAll(zr)
			if err != nil {
				errs <- fmt.Errorf("gunzip %s: %w", o.key, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			var cb func(time.Time)
			if each != nil {
				cb = func(at time.Time) { each(o, at) }
			}
			if err := t.add(bytes.NewReader(data), cb); err != nil {
				errs <- fmt.Errorf("read %s: %w", o.key, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
