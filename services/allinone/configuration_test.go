package allinone

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/services/admin"
	"github.com/s3dest/s3dest/services/batcher"
	"github.com/s3dest/s3dest/services/copier"
	"github.com/s3dest/s3dest/services/ingest"
	"github.com/s3dest/s3dest/services/stager"
	"github.com/s3dest/s3dest/services/validator"
)

// configuredCommands is every command that takes settings by flag and environment, with its config: the
// six service binaries and the s3dest commands. docs/configuration.md is written from it, and the Helm
// chart's test (deploy/helm/charttest) reads that file to check every argument and variable it renders.
var configuredCommands = []struct {
	command string
	cfg     any
}{
	{"ingest", &ingest.Config{}},
	{"batcher", &batcher.Config{}},
	{"stager", &stager.Config{}},
	{"copier", &copier.Config{}},
	{"validator", &validator.Config{}},
	{"admin", &admin.Config{}},
	{"s3dest dev", &DevConfig{}},
	{"s3dest sts-gate", &GateConfig{}},
	{"s3dest cluster-bootstrap", &BootstrapConfig{}},
	{"s3dest sources, destinations, status, workspace, validate, migrate, replay, login", &ClientConfig{}},
}

// configurationDoc is the path of the configuration reference, from this package.
var configurationDoc = filepath.Join("..", "..", "docs", "configuration.md")

const configurationDocHead = `# Configuration

Every setting has one name, the same in every binary: the flag ` + "`--name`" + ` and the environment variable
` + "`S3DEST_NAME`" + ` (upper case, ` + "`-`" + ` as ` + "`_`" + `). A flag overrides the variable, and the variable the default.
A secret (marked 🔒) can also be read from a file, so that it shows in no ` + "`ps`" + ` and no environment:
` + "`--name-file PATH`" + ` or ` + "`S3DEST_NAME_FILE=PATH`" + ` (the file's content without surrounding whitespace; the
Helm chart mounts its Secrets as such files). ` + "`--redis-url`" + ` is a secret because it may hold Redis's password
(` + "`redis://:PASSWORD@host:6379/0`" + `, or ` + "`rediss://`" + ` for TLS); NATS authenticates with a credentials file
(` + "`--nats-creds`" + `) and verifies its servers with ` + "`--nats-ca`" + ` (` + "`tls://`" + ` URLs), optionally presenting a client
certificate (` + "`--nats-cert`" + `, ` + "`--nats-key`" + `).

A renamed setting keeps its former names (last column) so that a cluster being upgraded keeps working: a
former flag or variable still sets the value and logs ` + "`warning: OLD is deprecated: use NEW`" + ` (the new
variable wins over a former one). Move to the new names; the former ones will be removed in a later release.

This file is generated from the config structs by ` + "`TestEverySettingHasOneNameAndIsDocumented`" + `
(services/allinone), which fails when it differs: after changing a setting, run
` + "`go test ./services/allinone -run TestEverySettingHasOneNameAndIsDocumented -update`" + `.
`

// envName is the one environment variable of a flag.
func envName(flag string) string {
	return "S3DEST_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func TestEverySettingHasOneNameAndIsDocumented(t *testing.T) {
	cell := strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;")
	var b strings.Builder
	b.WriteString(configurationDocHead)
	envOf := map[string]string{} // flag → env, across every command
	for _, c := range configuredCommands {
		settings, err := platform.Settings(c.cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.command, err)
		}
		fmt.Fprintf(&b, "\n## %s\n\n| flag | environment variable | default | description | former names |\n|---|---|---|---|---|\n", c.command)
		seen := map[string]string{}
		for _, s := range settings {
			if s.Env != envName(s.Flag) {
				t.Errorf("%s: --%s is read from %s, not %s", c.command, s.Flag, s.Env, envName(s.Flag))
			}
			if prev, ok := envOf[s.Flag]; ok && prev != s.Env {
				t.Errorf("%s: --%s maps to %s here and to %s elsewhere", c.command, s.Flag, s.Env, prev)
			}
			envOf[s.Flag] = s.Env
			names := []string{"--" + s.Flag, s.Env}
			var former []string
			for _, f := range s.OldFlags {
				names, former = append(names, "--"+f), append(former, "`--"+f+"`")
			}
			for _, e := range s.OldEnvs {
				names, former = append(names, e), append(former, "`"+e+"`")
			}
			for _, n := range names {
				if other, ok := seen[n]; ok {
					t.Errorf("%s: %s names two settings, %s and %s", c.command, n, other, s.Flag)
				}
				seen[n] = s.Flag
			}
			if s.Help == "" {
				t.Errorf("%s: --%s has no help", c.command, s.Flag)
			}
			def := ""
			if s.Default != "" {
				def = "`" + s.Default + "`"
			}
			flagCell, envCell := "`--"+s.Flag+"`", "`"+s.Env+"`"
			if s.Secret {
				flagCell += " 🔒 (`--" + s.Flag + "-file`)"
				envCell += " (`" + s.Env + "_FILE`)"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", flagCell, envCell, def, cell.Replace(s.Help), strings.Join(former, ", "))
		}
	}
	want := b.String()
	if *update {
		if err := os.WriteFile(configurationDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatalf("read the configuration reference: %v (run with -update to write it)", err)
	}
	if string(got) != want {
		t.Errorf("docs/configuration.md differs from the config structs; run go test ./services/allinone -run TestEverySettingHasOneNameAndIsDocumented -update and review the diff")
	}
}
