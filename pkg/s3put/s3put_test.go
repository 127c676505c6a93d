package s3put_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3dest/s3dest/pkg/s3put"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// countingLimiter counts the write requests Upload paces.
type countingLimiter struct{ n atomic.Int32 }

func (l *countingLimiter) Wait(context.Context) error { l.n.Add(1); return nil }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// Each way of writing (streamed with a known SHA-256, buffered single part, multipart) stores the
// exact bytes once, counts an existing object as done, paces every write request, and a wrong SHA-256
// is refused by the store instead of being written.
func TestUploadWritesEachShapeOnceAndPacesEveryWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO; run without -short")
	}
	m := testenv.StartGate(t)
	m.CreateBucket(t, "s3put-test")
	cli := m.RootS3()
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		size        int
		known       bool
		noMultipart bool
		wantWaits   int32
	}{
		{"streamed with a known SHA-256", 1 << 20, true, false, 1},
		{"buffered single part", 1 << 20, false, false, 1},
		{"multipart of three parts", 5<<20*2 + 1, false, false, 1 + 3 + 1},
		{"multipart although the SHA-256 is known", 5<<20*2 + 1, true, false, 1 + 3 + 1},
		{"one streamed PutObject of three parts' size without multipart", 5<<20*2 + 1, true, true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := randomBytes(c.size)
			sum := sha256.Sum256(body)
			lim := &countingLimiter{}
			o := s3put.Options{Bucket: "s3put-test", Key: c.name, ContentType: "application/gzip", ACL: types.ObjectCannedACLBucketOwnerFullControl,
				IfNoneMatch: true, PartSize: 5 << 20, Limiter: lim, NoMultipart: c.noMultipart}
			if c.known {
				o.Size, o.SHA256 = int64(c.size), hex.EncodeToString(sum[:])
			}
			res, err := s3put.Upload(ctx, cli, bytes.NewReader(body), o)
			if err != nil || res.Size != int64(c.size) || res.Existed {
				t.Fatalf("Upload = %+v, %v; want %d bytes written", res, err, c.size)
			}
			if n := lim.n.Load(); n != c.wantWaits {
				t.Errorf("the limiter paced %d requests, want %d", n, c.wantWaits)
			}
			out, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("s3put-test"), Key: aws.String(c.name)})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, body) {
				t.Fatalf("stored %d bytes that differ from the %d uploaded", len(got), len(body))
			}
			// MinIO answers a conditional PUT that finds the object with a 412 before it has read the body,
			// then resets the connection; a client still sending a large body may see the reset instead of
			// the 412. The copier retries a reset (copyWithRetries), and so does this check.
			var again s3put.Result
			for range 5 {
				if again, err = s3put.Upload(ctx, cli, bytes.NewReader(body), o); !s3put.Retryable(err) {
					break
				}
			}
			if err != nil || !again.Existed {
				t.Fatalf("second Upload = %+v, %v; want Existed", again, err)
			}
		})
	}

	t.Run("without multipart, an unknown size or SHA-256 is refused before any request", func(t *testing.T) {
		lim := &countingLimiter{}
		_, err := s3put.Upload(ctx, cli, bytes.NewReader(randomBytes(1000)), s3put.Options{Bucket: "s3put-test", Key: "unknown", NoMultipart: true, Limiter: lim})
		if err == nil || !strings.Contains(err.Error(), "Size") || lim.n.Load() != 0 {
			t.Fatalf("Upload = %v after %d requests; want an error naming Size and no request", err, lim.n.Load())
		}
	})

	t.Run("a wrong SHA-256 is refused", func(t *testing.T) {
		body := randomBytes(1000)
		wrong := sha256.Sum256([]byte("something else"))
		_, err := s3put.Upload(ctx, cli, bytes.NewReader(body), s3put.Options{Bucket: "s3put-test", Key: "wrong", Size: 1000, SHA256: hex.EncodeToString(wrong[:])})
		if err == nil {
			t.Fatal("Upload with a SHA-256 that is not the body's succeeded")
		}
		if _, err := cli.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("s3put-test"), Key: aws.String("wrong")}); err == nil {
			t.Fatal("the object was stored although its SHA-256 was wrong")
		}
	})
}
