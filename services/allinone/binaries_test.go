package allinone

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// Every service binary reads its config from the environment, serves /livez, /readyz and /metrics on its
// ops port, and on SIGTERM drains and exits 0.
func TestEveryServiceBinaryServesOpsAndStopsCleanlyOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every binary against real servers: skipped under -short")
	}
	ns, _, _ := testenv.NATS(t)
	redisURL, _ := testenv.Redis(t)
	g := testenv.StartGate(t)
	bin := t.TempDir()
	common := []string{
		"S3DEST_NATS_URL=" + ns.URL(), "S3DEST_REDIS_URL=" + redisURL, "S3DEST_LOG_LEVEL=warn",
		"S3DEST_S3_ENDPOINT=" + g.MinIO.URL, "S3DEST_STS_ENDPOINT=" + g.URL, "S3DEST_S3_PATH_STYLE=true",
		"S3DEST_AWS_ACCESS_KEY_ID=" + g.MinIO.RootUser, "S3DEST_AWS_SECRET_ACCESS_KEY=" + g.MinIO.RootPassword,
		"S3DEST_CREDENTIALS_KEY=" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"S3DEST_ADMIN_TOKEN=binary-test-token-0123456789", "S3DEST_VALIDATOR_TOKEN=binary-test-validator-token-0123456789",
	}
	for _, name := range []string{"ingest", "batcher", "stager", "copier", "validator", "admin"} {
		t.Run(name, func(t *testing.T) {
			exe := filepath.Join(bin, name)
			build := exec.Command("go", "build", "-o", exe, "./services/"+name+"/cmd/"+name)
			build.Dir = "../.."
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build %s: %v\n%s", name, err, out)
			}
			ops := testenv.FreePort(t)
			env := append(os.Environ(), common...)
			env = append(env,
				fmt.Sprintf("S3DEST_OPS_ADDR=127.0.0.1:%d", ops),
				fmt.Sprintf("S3DEST_TRACKING_ADDR=127.0.0.1:%d", testenv.FreePort(t)),
				fmt.Sprintf("S3DEST_ADMIN_GRPC_ADDR=127.0.0.1:%d", testenv.FreePort(t)),
				fmt.Sprintf("S3DEST_ADMIN_ADDR=127.0.0.1:%d", testenv.FreePort(t)))
			cmd := exec.Command(exe)
			cmd.Env = env
			out := &lockedBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			base := fmt.Sprintf("http://127.0.0.1:%d", ops)
			testenv.Eventually(t, 30*time.Second, name+" to be ready", func() bool {
				select {
				case err := <-exited:
					t.Fatalf("%s exited early: %v\n%s", name, err, out.String())
				default:
				}
				return get(base+"/readyz") == http.StatusOK
			})
			for _, path := range []string{"/livez", "/metrics"} {
				if code := get(base + path); code != http.StatusOK {
					t.Fatalf("%s %s = %d", name, path, code)
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("%s did not exit 0 after SIGTERM: %v\n%s", name, err, out.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("%s did not stop within 60s of SIGTERM", name)
			}
		})
	}
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
