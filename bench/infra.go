package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/redis/go-redis/v9"

	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/platform"
)

// proc is a child process the benchmark started and measures; stop ends it (SIGTERM, then SIGKILL).
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *tailBuffer
	exited chan struct{}
	err    error
}

func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, out: &tailBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.out.String())
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for a clean exit up to grace, then kills.
func (p *proc) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tailBuffer keeps the last 64 KB a process wrote, to show when it fails.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 64<<10 {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-64<<10:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// waitFor polls cond until it holds, p dies, or timeout passes: a wait on a condition, never a sleep.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool, procs ...*proc) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		for _, p := range procs {
			if err := p.alive(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// findProgram looks for an external program: $env, then PATH, then $(go env GOPATH)/bin, as pkg/testenv does.
func findProgram(name, env, install string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("needs %s (%s, or set %s; `make deps` installs it)", name, install, env)
}

// natsServerMain is `bench nats-server`: the embedded JetStream server of s3dest (file storage) in a
// process of its own, so its CPU and memory are measured apart from s3dest and the load generator.
func natsServerMain(args []string) error {
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	dir := fs.String("dir", "", "JetStream store directory")
	urlFile := fs.String("url-file", "", "write the client URL here once ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ns, err := platform.StartNATS("127.0.0.1:0", *dir, false)
	if err != nil {
		return err
	}
	defer ns.Stop()
	// Profiles of the server, like s3dest's ops port with S3DEST_PPROF=true.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := platform.NewHTTPServer(mux, platform.HTTPTimeouts{})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if err := os.WriteFile(*urlFile+".tmp", []byte(ns.URL()+" "+ln.Addr().String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(*urlFile+".tmp", *urlFile); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// startNATS returns the process, its client URL and its pprof address.
func startNATS(ctx context.Context, dir string) (*proc, string, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", "", err
	}
	urlFile := filepath.Join(dir, "url")
	p, err := startProc("nats-server", exec.Command(self, "nats-server", "-dir", filepath.Join(dir, "jetstream"), "-url-file", urlFile))
	if err != nil {
		return nil, "", "", err
	}
	var data []byte
	err = waitFor(ctx, 30*time.Second, "nats-server", func() bool {
		data, err = os.ReadFile(urlFile)
		return err == nil
	}, p)
	url, ops, _ := strings.Cut(string(data), " ")
	return p, url, ops, err
}

// startRedis runs redis-server on a unix socket in dir, without persistence (the cursors it holds are
// small; the benchmark is about the pipeline).
func startRedis(ctx context.Context, dir string) (*proc, string, error) {
	bin, err := findProgram("redis-server", "S3DEST_REDIS_SERVER", "apt-get install redis-server")
	if err != nil {
		return nil, "", err
	}
	sock := filepath.Join(dir, "redis.sock")
	p, err := startProc("redis-server", exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"))
	if err != nil {
		return nil, "", err
	}
	url := "unix://" + sock
	opts, _ := redis.ParseURL(url)
	c := redis.NewClient(opts)
	defer c.Close()
	err = waitFor(ctx, 10*time.Second, "redis-server", func() bool { return c.Ping(ctx).Err() == nil }, p)
	return p, url, err
}

// minio is a running MinIO (a separate process: AGPL, never linked), started as pkg/testenv does.
type minio struct {
	*proc
	url, user, password string
}

func startMinIO(ctx context.Context, dir string) (*minio, error) {
	bin, err := findProgram("minio", "S3DEST_MINIO_BIN", "go install github.com/minio/minio@<DESIGN.md §7 version>")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	console, err := freeAddr()
	if err != nil {
		return nil, err
	}
	m := &minio{url: "http://" + addr, user: "s3dest-bench-root", password: "s3dest-bench-root-secret"}
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, dir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.password,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1",
		// A built-in KMS key, so MinIO accepts SSE-S3 (x-amz-server-side-encryption: AES256) like AWS.
		"MINIO_KMS_SECRET_KEY=s3dest-bench-key:"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if m.proc, err = startProc("minio", cmd); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 60*time.Second, "minio to be ready", func() bool {
		resp, err := http.Get(m.url + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, m.proc); err != nil {
		return m, err
	}
	// MinIO answers ready before its IAM subsystem is up; until then AssumeRole fails.
	sts := awssts.New(awssts.Options{
		Region: region, BaseEndpoint: aws.String(m.url), HTTPClient: awshttp.NewBuildableClient(), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(m.user, m.password, ""),
	})
	err = waitFor(ctx, 60*time.Second, "minio's IAM to be ready", func() bool {
		_, err := sts.AssumeRole(ctx, &awssts.AssumeRoleInput{
			RoleArn: aws.String("arn:aws:iam::000000000000:role/probe"), RoleSessionName: aws.String("probe")})
		return err == nil
	}, m.proc)
	return m, err
}

func (m *minio) s3() *s3.Client {
	return s3.New(s3.Options{
		Region: region, BaseEndpoint: aws.String(m.url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(m.user, m.password, ""),
		HTTPClient:  awshttp.NewBuildableClient(),
	})
}

const (
	region          = "us-east-1"
	principalARN    = "arn:aws:iam::" + localaws.DefaultAccountID + ":user/s3dest"
	intermediateARN = "arn:aws:iam::000000000000:role/s3dest-intermediate"
	customerRoleARN = "arn:aws:iam::111111111111:role/bench-customer"
	customerBucket  = "bench-customer"
	workspaceID     = "bench-workspace"
)

// gate is the STS trust gate in front of MinIO (DESIGN.md §7), as in pkg/testenv.StartGate: it checks
// SigV4 and each role's trust policy and hands out MinIO temporary credentials limited by the role's
// permission policies. It holds our intermediate role and the customer's role with the reference's
// trust (External ID = workspace ID) and permission policies.
func startGate(m *minio) (url string, stop func(), err error) {
	dir := localaws.NewDirectory()
	dir.AddIdentity(localaws.Identity{AccessKeyID: m.user, SecretAccessKey: m.password, PrincipalARN: principalARN, Admin: true})
	policies := []struct{ arn, trust, perms string }{
		{intermediateARN,
			fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole"}]}`, principalARN),
			`{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`},
		{customerRoleARN,
			fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole",
				"Condition":{"StringEquals":{"sts:ExternalId":%q}}}]}`, intermediateARN, workspaceID),
			`{"Version":"2012-10-17","Statement":[{"Sid":"PutObjectsInBucket","Effect":"Allow","Action":["s3:PutObject","s3:PutObjectAcl"],
				"Resource":"arn:aws:s3:::` + customerBucket + `/segment-logs/*"}]}`},
	}
	for _, r := range policies {
		trust, err := localaws.ParsePolicy([]byte(r.trust))
		if err != nil {
			return "", nil, err
		}
		perms, err := localaws.ParsePolicy([]byte(r.perms))
		if err != nil {
			return "", nil, err
		}
		dir.PutRole(localaws.Role{ARN: r.arn, TrustPolicy: trust, PermissionPolicies: []localaws.Policy{perms}})
	}
	sts, err := localaws.NewSTSServer(dir, localaws.STSConfig{
		Region: region,
		Issuer: &localaws.MinIOIssuer{Endpoint: m.url, AccessKey: m.user, SecretKey: m.password, Region: region, HTTPClient: awshttp.NewBuildableClient()},
	})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := platform.NewHTTPServer(sts, platform.HTTPTimeouts{})
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = srv.Close()
		}
	}, nil
}

// infra is the real components every mode runs against.
type infra struct {
	nats, redis *proc
	minio       *minio
	natsURL     string
	natsOps     string // pprof of nats-server
	redisURL    string
	gateURL     string
	stopGate    func()
}

func startInfra(ctx context.Context, dir string) (*infra, error) {
	in := &infra{}
	var err error
	for _, d := range []string{"nats", "redis", "minio"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return in, err
		}
	}
	if in.nats, in.natsURL, in.natsOps, err = startNATS(ctx, filepath.Join(dir, "nats")); err != nil {
		return in, err
	}
	if in.redis, in.redisURL, err = startRedis(ctx, filepath.Join(dir, "redis")); err != nil {
		return in, err
	}
	if in.minio, err = startMinIO(ctx, filepath.Join(dir, "minio")); err != nil {
		return in, err
	}
	if in.gateURL, in.stopGate, err = startGate(in.minio); err != nil {
		return in, err
	}
	_, err = in.minio.s3().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(customerBucket)})
	return in, err
}

func (in *infra) stop() {
	if in.stopGate != nil {
		in.stopGate()
	}
	for _, p := range []*proc{in.nats, in.redis} {
		if p != nil {
			p.stop(10 * time.Second)
		}
	}
	if in.minio != nil && in.minio.proc != nil {
		in.minio.stop(10 * time.Second)
	}
}

// processes is every measured process of the infrastructure, by name.
func (in *infra) processes() map[string]int {
	return map[string]int{"nats-server": in.nats.pid(), "redis-server": in.redis.pid(), "minio": in.minio.pid()}
}
