package platform

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestASecretSettingIsReadFromTheFileItsFlagOrVariableNames(t *testing.T) {
	var cfg struct {
		Token string `flag:"token" env:"S3DEST_TEST_TOKEN" secret:"true" help:"a secret"`
		Plain string `flag:"plain" env:"S3DEST_TEST_PLAIN" help:"not a secret"`
	}
	dir := t.TempDir()
	fromEnv, fromFlag := filepath.Join(dir, "env"), filepath.Join(dir, "flag")
	_ = os.WriteFile(fromEnv, []byte("  secret-from-the-env-file\n"), 0o600)
	_ = os.WriteFile(fromFlag, []byte("secret-from-the-flag-file\n"), 0o600)
	t.Setenv("S3DEST_TEST_TOKEN_FILE", fromEnv)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	if err := Bind(fs, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Token != "secret-from-the-env-file" {
		t.Fatalf("from S3DEST_TEST_TOKEN_FILE: %q", cfg.Token)
	}
	if err := fs.Parse([]string{"--token-file", fromFlag}); err != nil {
		t.Fatal(err)
	}
	if cfg.Token != "secret-from-the-flag-file" {
		t.Fatalf("from --token-file: %q", cfg.Token)
	}
	if fs.Lookup("plain-file") != nil {
		t.Fatal("a setting not tagged secret has a -file flag")
	}
	err := fs.Parse([]string{"--token-file", filepath.Join(dir, "missing")})
	if err == nil || !strings.Contains(err.Error(), "token-file") {
		t.Fatalf("a missing file: %v", err)
	}
}

func TestARenamedSettingStillTakesItsOldFlagAndVariableAndWarnsNamingTheNewOne(t *testing.T) {
	type config struct {
		Addr   string `flag:"tracking-addr" env:"S3DEST_TEST_TRACKING_ADDR" oldflag:"http-addr" oldenv:"S3DEST_TEST_HTTP_ADDR" default:"127.0.0.1:1" help:"an address"`
		Token  string `flag:"admin-token" env:"S3DEST_TEST_ADMIN_TOKEN" oldflag:"token" secret:"true" help:"a secret"`
		Strict bool   `flag:"strict" env:"S3DEST_TEST_STRICT" oldflag:"old-strict" help:"a switch"`
	}
	bind := func(t *testing.T, args ...string) (config, string) {
		t.Helper()
		var cfg config
		var out strings.Builder
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(&out)
		if err := Bind(fs, &cfg); err != nil {
			t.Fatal(err)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cfg, out.String()
	}

	t.Setenv("S3DEST_TEST_HTTP_ADDR", "127.0.0.1:2")
	cfg, out := bind(t)
	if cfg.Addr != "127.0.0.1:2" || !strings.Contains(out, "S3DEST_TEST_HTTP_ADDR is deprecated: use S3DEST_TEST_TRACKING_ADDR") {
		t.Fatalf("old variable: addr %q, output %q", cfg.Addr, out)
	}
	t.Setenv("S3DEST_TEST_TRACKING_ADDR", "127.0.0.1:3")
	if cfg, out = bind(t); cfg.Addr != "127.0.0.1:3" || out != "" {
		t.Fatalf("the new variable must win without a warning: addr %q, output %q", cfg.Addr, out)
	}

	file := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(file, []byte("from-the-old-file-flag\n"), 0o600)
	cfg, out = bind(t, "--http-addr", "127.0.0.1:4", "--token-file", file, "--old-strict")
	if cfg.Addr != "127.0.0.1:4" || cfg.Token != "from-the-old-file-flag" || !cfg.Strict {
		t.Fatalf("old flags: %+v", cfg)
	}
	for _, want := range []string{"--http-addr is deprecated: use --tracking-addr", "--token-file is deprecated: use --admin-token-file", "--old-strict is deprecated: use --strict"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if cfg, out = bind(t, "--tracking-addr", "127.0.0.1:5", "--admin-token", "x"); cfg.Addr != "127.0.0.1:5" || out != "" {
		t.Fatalf("new flags: addr %q, output %q", cfg.Addr, out)
	}
}

func TestANATSClientCertificateNeedsItsKey(t *testing.T) {
	c := Common{AckWait: 30 * time.Second, Replicas: 1, NATSCert: "/etc/s3dest/nats/tls.crt"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "nats-cert and nats-key") {
		t.Fatalf("a certificate without its key: %v", err)
	}
	c.NATSKey = "/etc/s3dest/nats/tls.key"
	if err := c.Validate(); err != nil {
		t.Fatalf("a certificate with its key: %v", err)
	}
	if n := len(c.NATSOptions()); n != 1 {
		t.Fatalf("want one option (the client certificate), got %d", n)
	}
	c.NATSCreds, c.NATSCA = "/etc/s3dest/secrets/nats-creds", "/etc/s3dest/nats-tls/ca.crt"
	if n := len(c.NATSOptions()); n != 3 {
		t.Fatalf("want credentials, CA and certificate options, got %d", n)
	}
}
