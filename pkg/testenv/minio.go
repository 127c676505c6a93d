package testenv

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"
)

// MinIOVersion is the pinned MinIO (DESIGN.md §7), installed by .ci/run with
// `go install github.com/minio/minio@<version>`.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIOServer is a running MinIO.
type MinIOServer struct {
	URL          string
	RootUser     string
	RootPassword string
}

// MinIO starts a MinIO server with a temp data dir on a free port.
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	bin := need(t, "minio", "S3DEST_MINIO_BIN", "go install github.com/minio/minio@"+MinIOVersion)
	port, console := FreePort(t), FreePort(t)
	m := &MinIOServer{
		URL:          fmt.Sprintf("http://127.0.0.1:%d", port),
		RootUser:     "s3dest-root",
		RootPassword: "s3dest-root-secret",
	}
	cmd := exec.Command(bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), t.TempDir())
	cmd.Env = append(cmd.Environ(),
		"MINIO_ROOT_USER="+m.RootUser, "MINIO_ROOT_PASSWORD="+m.RootPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1",
		// A built-in KMS key, so MinIO accepts SSE-S3 (x-amz-server-side-encryption: AES256) like AWS.
		"MINIO_KMS_SECRET_KEY=s3dest-test-key:"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	start(t, cmd, "minio")
	Eventually(t, 60*time.Second, "minio to be ready", func() bool {
		resp, err := http.Get(m.URL + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// MinIO answers ready before its IAM subsystem is up; until then AssumeRole fails. Wait for it.
	sts := stsClient(m)
	Eventually(t, 60*time.Second, "minio's IAM to be ready", func() bool {
		_, err := sts.AssumeRole(context.Background(), &awssts.AssumeRoleInput{
			RoleArn: aws.String("arn:aws:iam::000000000000:role/probe"), RoleSessionName: aws.String("probe")})
		return err == nil
	})
	return m
}

func stsClient(m *MinIOServer) *awssts.Client {
	return awssts.New(awssts.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(m.URL), HTTPClient: awshttp.NewBuildableClient(), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(m.RootUser, m.RootPassword, ""),
	})
}
