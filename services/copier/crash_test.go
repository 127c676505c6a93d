package copier

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// copierProcess runs the copier binary as a process of its own against e, with a failpoint armed.
func copierProcess(t *testing.T, e *env, exe, failpoint string, env ...string) (*exec.Cmd, chan error, *lockedBuffer) {
	t.Helper()
	cfg := e.config()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		"S3DEST_FAILPOINT="+failpoint,
		"S3DEST_NATS_URL="+cfg.NATSURL,
		"S3DEST_OPS_ADDR="+fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"S3DEST_ACK_WAIT=2s",
		"S3DEST_LOG_LEVEL=debug",
		"S3DEST_REDIS_URL="+cfg.RedisURL,
		"S3DEST_STAGING_BUCKET="+cfg.StagingBucket,
		"S3DEST_CREDENTIALS_KEY="+cfg.CredentialsKey,
		"S3DEST_FAILING_RETRY=1s",
		"S3DEST_AWS_REGION=us-east-1",
		"S3DEST_STS_ENDPOINT="+cfg.STSEndpoint,
		"S3DEST_S3_ENDPOINT="+cfg.S3Endpoint,
		"S3DEST_S3_PATH_STYLE=true",
		"S3DEST_AWS_ACCESS_KEY_ID="+cfg.AccessKeyID,
		"S3DEST_AWS_SECRET_ACCESS_KEY="+cfg.SecretAccessKey,
		"S3DEST_INTERMEDIATE_ROLE_ARN="+cfg.IntermediateRoleARN,
	)
	cmd.Env = append(cmd.Env, env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, exited, out
}

func asWaitStatus(err error) (syscall.WaitStatus, bool) {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ws, ok
}

// A customer's bucket bills every part of a multipart upload that is never completed or aborted, and
// the reference's policy does not let us abort (no s3:AbortMultipartUpload). With exactly that policy: a
// copier SIGKILLed while 9 MiB of a 12 MiB file are on their way, and a write cut mid-body six times in a
// row (more than the retries of one request), leave no multipart upload behind, and each file arrives
// once, whole, after the restart.
func TestAKillOrAFailureMidUploadLeavesNothingBilledInABucketWithTheReferencePolicy(t *testing.T) {
	e := newEnv(t)
	exe := filepath.Join(t.TempDir(), "copier")
	build := exec.Command("go", "build", "-o", exe, "./cmd/copier")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the copier: %v\n%s", err, out)
	}
	e.g.CreateBucket(t, "billed")
	const role = "arn:aws:iam::111111111111:role/billed"
	e.referenceRole(t, role, "billed")
	e.destination(t, "dest-billed", "src-billed", "billed", role, "us-east-1")

	random := func(seed uint64) []byte {
		body := make([]byte, 12<<20) // gzip cannot shrink it; today that is two parts of a multipart upload
		rng := rand.New(rand.NewPCG(seed, 2))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		return body
	}
	killed, broken := random(1), random(2)

	// The first copier is SIGKILLed once 9 MiB of the first file have reached the bucket's router.
	var (
		copierPID atomic.Int64
		kills     atomic.Int64
		sent      atomic.Int64
		cuts      atomic.Int64
	)
	e.mu.Lock()
	e.body = func(r *http.Request) func(int64) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, "/killed.gz"):
			var last int64 // this request's bytes so far; sent counts the file's across requests (parts)
			return func(read int64) bool {
				if sent.Add(read-last) >= 9<<20 && kills.Add(1) == 1 {
					_ = syscall.Kill(int(copierPID.Load()), syscall.SIGKILL)
				}
				last = read
				return false
			}
		case strings.HasSuffix(r.URL.Path, "/broken.gz"):
			return func(read int64) bool { return read >= 4<<20 && cuts.Load() < 6 && cuts.Add(1) <= 6 }
		}
		return nil
	}
	e.mu.Unlock()
	e.stageBytes(t, "src-billed", day1, "killed", 1, killed)
	cmd, exited, out := copierProcess(t, e, exe, "")
	copierPID.Store(int64(cmd.Process.Pid))
	select {
	case err := <-exited:
		if ws, ok := asWaitStatus(err); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the copier exited with %v, want the SIGKILL mid-upload\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("the copier was never killed mid-upload\n%s", out.String())
	}
	if keys := e.keys(t, "billed"); len(keys) != 0 {
		t.Fatalf("the bucket holds %v after a kill mid-upload", keys)
	}

	// The second copier finishes the first file, and the second file's writes are cut mid-body six times.
	e.stageBytes(t, "src-billed", day1, "broken", 1, broken)
	cmd, exited, out = copierProcess(t, e, exe, "")
	keys := e.waitKeys(t, "billed", 2)
	if cuts.Load() < 6 {
		t.Fatalf("only %d writes were cut: the failures were not mid-upload", cuts.Load())
	}
	for name, body := range map[string][]byte{"killed": killed, "broken": broken} {
		key := fmt.Sprintf("segment-logs/src-billed/%d/%s.gz", day1, name)
		obj, err := e.g.RootS3().GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String("billed"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v (the bucket holds %v)", key, err, keys)
		}
		h := sha256.New()
		_, err = io.Copy(h, obj.Body)
		obj.Body.Close()
		if want := sha256.Sum256(body); err != nil || string(h.Sum(nil)) != string(want[:]) {
			t.Fatalf("%s differs from the staged file (err %v)", key, err)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("the copier did not stop cleanly on SIGTERM: %v\n%s", err, out.String())
	}
	uploads, err := e.g.RootS3().ListMultipartUploads(e.ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("billed")})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range uploads.Uploads {
		t.Errorf("an incomplete multipart upload of %s, started %s, is left in the customer's bucket", aws.ToString(u.Key), aws.ToTime(u.Initiated))
	}
	if keys := e.keys(t, "billed"); len(keys) != 2 {
		t.Fatalf("the bucket holds %v at the end, want each file once", keys)
	}
}
