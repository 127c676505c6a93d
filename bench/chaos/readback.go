package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// bucket reads the customer bucket back: every object under segment-logs/{sourceId}/, gunzipped, each
// line's messageId counted (segment-logs/dummy-object.txt, the validator's, is no delivery). Objects are
// immutable (deterministic names, written once), so each is read once.
type bucket struct {
	cli    *s3.Client
	name   string
	prefix string
	read   map[string]bool
	counts map[string]int // messageId → lines carrying it
	lines  int64
}

func newBucket(sum summary) *bucket {
	cli := s3.New(s3.Options{Region: sum.Region, BaseEndpoint: aws.String(sum.S3Endpoint), UsePathStyle: true,
		HTTPClient:  awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(sum.S3AccessKey, sum.S3SecretKey, "")})
	return &bucket{cli: cli, name: sum.Bucket, prefix: "segment-logs/" + sum.SourceID + "/", read: map[string]bool{}, counts: map[string]int{}}
}

// refresh reads the objects not read yet and returns how many it read.
func (b *bucket) refresh(ctx context.Context) (int, error) {
	var keys []string
	pages := s3.NewListObjectsV2Paginator(b.cli, &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(b.prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list s3://%s/%s: %w", b.name, b.prefix, err)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); !b.read[k] {
				keys = append(keys, k)
			}
		}
	}
	var (
		done     int
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		sem      = make(chan struct{}, 4)
	)
	for _, key := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ids, err := b.ids(ctx, key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			b.read[key] = true
			done++
			for _, id := range ids {
				b.counts[id]++
			}
			b.lines += int64(len(ids))
		}()
	}
	wg.Wait()
	return done, firstErr
}

// ids is the messageId of every line of one object.
func (b *bucket) ids(ctx context.Context, key string) ([]string, error) {
	out, err := b.cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	zr, err := gzip.NewReader(out.Body)
	if err != nil {
		return nil, fmt.Errorf("gunzip %s: %w", key, err)
	}
	var ids []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var ev struct {
			MessageID string `json:"messageId"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s: a line is not JSON: %w", key, err)
		}
		ids = append(ids, ev.MessageID)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return ids, nil
}
