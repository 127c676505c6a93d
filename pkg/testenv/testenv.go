// Package testenv starts the real components s3dest's tests run against, each on 127.0.0.1 or a unix
// socket in the test's temp dir, each stopped by t.Cleanup: an embedded NATS JetStream server, a real
// redis-server, a real MinIO (a separate process: AGPL, never linked) and the STS trust gate in front of
// it. Helpers that need an external program skip under -short, and otherwise fail when it is missing in
// CI (CI=true) or skip with the reason on a developer's machine.
package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/procfile"
)

// NATS starts an embedded JetStream server with a temp store and returns a connection to it.
func NATS(t testing.TB) (*platform.EmbeddedNATS, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns, err := platform.StartNATS("127.0.0.1:0", t.TempDir(), false)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Stop)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return ns, nc, js
}

// Redis starts redis-server (the Debian package) on a unix socket and returns its URL and a client.
func Redis(t testing.TB) (string, *redis.Client) {
	t.Helper()
	bin := need(t, "redis-server", "S3DEST_REDIS_SERVER", "apt-get install redis-server")
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1")
	start(t, cmd, "redis-server")
	url := "unix://" + sock
	opts, _ := redis.ParseURL(url)
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	Eventually(t, 10*time.Second, "redis-server to answer", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
	return url, c
}

// need finds an external program: $env, then PATH, then $(go env GOPATH)/bin.
func need(t testing.TB, name, env, install string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s, a real server: skipped under -short", name)
	}
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("needs %s (%s, or set %s)", name, install, env)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// start runs cmd until the test ends; its output goes to the test log when the test fails.
func start(t testing.TB, cmd *exec.Cmd, name string) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if len(lines) < 200 {
				lines = append(lines, sc.Text())
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, strings.Join(lines, "\n"))
		}
	})
}

// Eventually polls cond until it holds or the timeout passes, failing the test then: a wait on a
// condition, never a fixed sleep.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// FreePort returns a free TCP port on 127.0.0.1 for a process the test starts later: procfile.FreePort,
// below the kernel's ephemeral range and never twice in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := procfile.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Serve starts svc (a service.Service: Start, then Run in the background) for the test's life: at cleanup
// its context ends and the test fails unless Run returns nil, a clean stop.
func Serve(t testing.TB, svc interface {
	Name() string
	Start(context.Context) error
	Run(context.Context) error
}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := svc.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start %s: %v", svc.Name(), err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("%s did not stop cleanly: %v", svc.Name(), err)
		}
	})
}
