package copier

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// copierProcess runs the copier binary as a process of its own against e, with a failpoint armed.
func copierProcess(t *testing.T, e *env, exe, failpoint string) (*exec.Cmd, chan error, *lockedBuffer) {
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

// SIGKILL in the middle of a multipart upload into the customer's bucket, then a restart: the file is
// there exactly once, whole.
func TestACopierKilledMidUploadLeavesExactlyOneCopyAfterARestart(t *testing.T) {
	e := newEnv(t)
	exe := filepath.Join(t.TempDir(), "copier")
	build := exec.Command("go", "build", "-o", exe, "./cmd/copier")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the copier: %v\n%s", err, out)
	}
	e.g.CreateBucket(t, "crash")
	const role = "arn:aws:iam::111111111111:role/crash"
	e.customerRole(t, role, "crash", "")
	e.destination(t, "dest-crash", "src-crash", "crash", role, "us-east-1")

	// 12 MiB that gzip cannot shrink: two parts of a multipart upload.
	body := make([]byte, 12<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(body)
	e.stageBytes(t, "src-crash", day1, "big", 1, body)

	// Killed right after the first 8 MiB part reached the bucket, before the upload completes.
	_, exited, out := copierProcess(t, e, exe, "s3put.after-part:1")
	select {
	case err := <-exited:
		if ws, ok := asWaitStatus(err); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the copier exited with %v, want SIGKILL at the failpoint\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the failpoint was never hit\n%s", out.String())
	}
	e.mu.Lock()
	parts := e.requests["PUT /crash"]
	e.mu.Unlock()
	if parts == 0 {
		t.Fatalf("no part reached the bucket before the kill: the crash was not mid-upload\n%s", out.String())
	}
	if keys := e.keys(t, "crash"); len(keys) != 0 {
		t.Fatalf("the bucket holds %v after a kill mid-upload", keys)
	}

	cmd, exited, out := copierProcess(t, e, exe, "")
	keys := e.waitKeys(t, "crash", 1)
	if len(keys) != 1 {
		t.Fatalf("the bucket holds %v, want one file", keys)
	}
	obj, err := e.g.RootS3().GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String("crash"), Key: aws.String(keys[0])})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, obj.Body)
	obj.Body.Close()
	if err != nil || string(h.Sum(nil)) != string(want[:]) {
		t.Fatalf("the delivered file differs from the staged one (err %v)", err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("the copier did not stop cleanly on SIGTERM: %v\n%s", err, out.String())
	}
	if keys := e.keys(t, "crash"); len(keys) != 1 || !strings.HasSuffix(keys[0], "/big.gz") {
		t.Fatalf("the bucket holds %v at the end, want big.gz once", keys)
	}
}

func asWaitStatus(err error) (syscall.WaitStatus, bool) {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ws, ok
}
