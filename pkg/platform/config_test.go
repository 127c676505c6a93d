package platform

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
