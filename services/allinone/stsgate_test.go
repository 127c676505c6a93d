package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// buildBinary builds a command of the workspace (e.g. "./services/allinone/cmd/s3dest") into a temp dir.
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", exe, pkg)
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return exe
}

// startProcess runs cmd in its own process group, and SIGKILLs the group when the test ends; kill
// does so at once. Its output goes to the test log when the test fails.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) (kill func()) {
	t.Helper()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	kill = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(out.String(), 4000))
		}
	})
	return kill
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// The gate runs as `s3dest sts-gate`: it creates the --dev-aws-config's buckets in MinIO, lets our
// principal assume the intermediate role and then the customer's role with the External ID, hands out
// MinIO credentials that only the role's permission policy allows, takes more roles by PUT, and
// still knows them after a SIGKILL and a restart on the same state dir.
func TestTheSTSGateRunsAsItsOwnProcessAndKeepsItsRolesAcrossARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MinIO and the gate as processes: skipped under -short")
	}
	m := testenv.MinIO(t)
	exe := buildBinary(t, "./services/allinone/cmd/s3dest")
	const intermediate = "arn:aws:iam::000000000000:role/s3dest-intermediate"
	customer := func(name string) map[string]any {
		return map[string]any{"arn": "arn:aws:iam::111111111111:role/" + name,
			"trustPolicy":        json.RawMessage(trustPolicy(intermediate, "ws-gate")),
			"permissionPolicies": []json.RawMessage{json.RawMessage(permissionPolicy(name + "-bucket"))}}
	}
	cfgFile := filepath.Join(t.TempDir(), "dev-aws-config.json")
	doc, _ := json.Marshal(map[string]any{"buckets": []string{"first-bucket"}, "roles": []any{customer("first")}})
	if err := os.WriteFile(cfgFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	state, port := t.TempDir(), testenv.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	run := func() (kill func()) {
		cmd := exec.Command(exe, "sts-gate", "--sts-gate-addr", fmt.Sprintf("127.0.0.1:%d", port), "--minio-url", m.URL,
			"--sts-gate-state-dir", state, "--dev-aws-config", cfgFile, "--log-level", "warn")
		cmd.Env = append(os.Environ(), "S3DEST_MINIO_ROOT_USER="+m.RootUser, "S3DEST_MINIO_ROOT_PASSWORD="+m.RootPassword)
		kill = startProcess(t, "sts-gate", cmd)
		testenv.Eventually(t, 30*time.Second, "the gate to be ready", func() bool { return get(url+"/readyz") == http.StatusOK })
		return kill
	}
	kill := run()

	// A second customer arrives by PUT: its bucket is created and its role kept in the state dir.
	doc, _ = json.Marshal(map[string]any{"buckets": []string{"second-bucket"}, "roles": []any{customer("second")}})
	put := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodPut, url+localaws.GateDevConfigPath, bytes.NewReader(doc))
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(m.RootUser, "not-the-password"); code != http.StatusUnauthorized {
		t.Fatalf("PUT with a wrong password = %d, want 401", code)
	}
	if code := put(m.RootUser, m.RootPassword); code != http.StatusNoContent {
		t.Fatalf("PUT the second customer = %d, want 204", code)
	}
	kill()
	run()

	ctx := context.Background()
	for _, name := range []string{"first", "second"} {
		creds := assumeChain(t, url, m, intermediate, "arn:aws:iam::111111111111:role/"+name, "ws-gate")
		c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.URL), UsePathStyle: true,
			Credentials: creds, HTTPClient: awshttp.NewBuildableClient(), RetryMaxAttempts: 1})
		put := func(key string) error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(name + "-bucket"), Key: aws.String(key), Body: strings.NewReader("x")})
			return err
		}
		if err := put("segment-logs/x.gz"); err != nil {
			t.Errorf("%s role: PutObject under segment-logs/: %v", name, err)
		}
		if err := put("elsewhere/x.gz"); err == nil {
			t.Errorf("%s role: PutObject outside segment-logs/ succeeded; the permission policy forbids it", name)
		}
	}
	if _, err := stsAs(url, credentials.NewStaticCredentialsProvider(m.RootUser, m.RootPassword, "")).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::111111111111:role/first"), RoleSessionName: aws.String("direct"), ExternalId: aws.String("ws-gate")}); err == nil {
		t.Error("our principal assumed the customer's role directly; only the intermediate role is trusted")
	}
}

func stsAs(url string, creds aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds,
		HTTPClient: awshttp.NewBuildableClient(), RetryMaxAttempts: 1})
}

// assumeChain is the copier's chain: our principal → the intermediate role → the customer's role.
func assumeChain(t *testing.T, gateURL string, m *testenv.MinIOServer, intermediate, role, externalID string) aws.CredentialsProvider {
	t.Helper()
	ctx := context.Background()
	out, err := stsAs(gateURL, credentials.NewStaticCredentialsProvider(m.RootUser, m.RootPassword, "")).AssumeRole(ctx,
		&sts.AssumeRoleInput{RoleArn: aws.String(intermediate), RoleSessionName: aws.String("s3dest")})
	if err != nil {
		t.Fatalf("assume %s: %v", intermediate, err)
	}
	c := out.Credentials
	out, err = stsAs(gateURL, credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)).AssumeRole(ctx,
		&sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("s3dest"), ExternalId: aws.String(externalID)})
	if err != nil {
		t.Fatalf("assume %s: %v", role, err)
	}
	c = out.Credentials
	return credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
}
