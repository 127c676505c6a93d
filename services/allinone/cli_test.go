package allinone

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// run runs the command line in process and returns what it printed, what it said on standard error,
// and the exit code main would give.
func run(t *testing.T, stdin string, args ...string) (out, errOut string, code int) {
	t.Helper()
	var o, e strings.Builder
	err := Execute(context.Background(), args, strings.NewReader(stdin), &o, &e)
	if err != nil {
		e.WriteString("s3dest: " + err.Error() + "\n")
	}
	return o.String(), e.String(), ExitCode(err)
}

// isolateLogin points the CLI's login file into a temp dir and clears the variables that name the
// admin API, so that nothing of the machine's user leaks in or gets written.
func isolateLogin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	for _, v := range []string{"S3DEST_ADMIN_URL", "S3DEST_ADMIN_TOKEN", "S3DEST_ADMIN_TOKEN_FILE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	return filepath.Join(dir, "s3dest", "config.json")
}

// walk calls f on every command of the tree under cmd.
func walk(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, c := range cmd.Commands() {
		walk(c, f)
	}
}

// path is a command's words after "s3dest".
func path(cmd *cobra.Command) []string { return strings.Fields(cmd.CommandPath())[1:] }

func TestEveryCommandAnswersDashHAndDashDashHelpWithItsUsage(t *testing.T) {
	isolateLogin(t)
	n := 0
	walk(NewCLI(nil, nil, nil), func(cmd *cobra.Command) {
		for _, h := range []string{"-h", "--help"} {
			args := append(path(cmd), h)
			out, errOut, code := run(t, "", args...)
			if code != ExitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, cmd.CommandPath()) {
				t.Errorf("s3dest %s: exit %d, printed:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
			}
		}
		n++
	})
	if n < 30 {
		t.Fatalf("walked %d commands: the tree is not what this test thinks", n)
	}
	// The root's help documents the exit codes; a run command's lists its service flags with their variables.
	if out, _, _ := run(t, "", "-h"); !strings.Contains(out, exitCodesHelp) {
		t.Errorf("s3dest -h does not document the exit codes:\n%s", out)
	}
	if out, _, _ := run(t, "", "dev", "-h"); !strings.Contains(out, "--flush-interval duration") || !strings.Contains(out, "S3DEST_FLUSH_INTERVAL") {
		t.Errorf("s3dest dev -h does not list its flags:\n%s", out)
	}
}

func TestAWrongCommandLineExitsWith2AndSaysWhatIsWrong(t *testing.T) {
	isolateLogin(t)
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"bogus"}, `unknown command "bogus" for "s3dest"`},
		{[]string{"sourcs"}, "did you mean sources?"},
		{[]string{"sources"}, "s3dest sources: give a command"},
		{[]string{"sources", "bogus"}, `unknown command "bogus" for "s3dest sources"`},
		{[]string{"sources", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"sources", "get"}, "missing <sourceId>"},
		{[]string{"sources", "get", "a", "b"}, `unexpected argument "b"`},
		{[]string{"sources", "update", "src-1"}, "give at least one of --name, --slug, --enabled"},
		{[]string{"sources", "rotate-key", "src-1", "key", "--grace", "soon"}, `invalid argument "soon"`},
		{[]string{"destinations", "extend-retention", "d-1"}, "give --by DURATION"},
		{[]string{"status", "--admin-url", "ftp://x"}, `admin-url: "ftp://x" is not an http(s) URL`},
		{[]string{"migrate", "--token", "t"}, "source: the source to migrate is required"},
		{[]string{"dev", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"dev", "extra"}, `unexpected argument "extra"`},
		{[]string{"dev", "-flush-interval", "1ms"}, "flush-interval: must be at least 100ms"}, // Go's single dash still parses
		{[]string{"await"}, "name at least one Procfile line"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		out, errOut, code := run(t, "", c.args...)
		if code != ExitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("s3dest %s: exit %d, want 2 with %q; stdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, c.want, out, errOut)
		}
	}
	// A service setting from the environment is checked as its flag is.
	t.Setenv("S3DEST_FLUSH_INTERVAL", "1ms")
	if _, errOut, code := run(t, "", "dev"); code != ExitUsage || !strings.Contains(errOut, "flush-interval: must be at least 100ms") {
		t.Errorf("S3DEST_FLUSH_INTERVAL=1ms s3dest dev: exit %d\n%s", code, errOut)
	}
}

func TestAnUnreachableAdminAPIOrAMissingTokenExitsWith4(t *testing.T) {
	isolateLogin(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, args := range [][]string{
		{"status", "--admin-url", closed, "--token", "t"},
		{"sources", "list", "--admin-url", closed, "--token", "t", "--json"},
		{"validate", "d-1", "--admin-url", closed, "--token", "t"},
		{"login", "--url", closed, "--token", "t"},
		{"status", "--admin-url", closed}, // no token anywhere
	} {
		out, errOut, code := run(t, "", args...)
		if code != ExitUnreachable || out != "" {
			t.Errorf("s3dest %s: exit %d, want 4 and nothing on stdout; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
		}
	}
}

func TestClientCommandsTakeGoStyleSingleDashFlags(t *testing.T) {
	out, _, code := run(t, "", "version", "-json")
	var v versionInfo
	if code != ExitOK || json.Unmarshal([]byte(out), &v) != nil || v.GoVersion == "" {
		t.Fatalf("s3dest version -json: exit %d, printed:\n%s", code, out)
	}
}

func TestTablesStayAlignedWhateverTheWidthOfACell(t *testing.T) {
	wide := strings.Repeat("a", 64)
	var out strings.Builder
	err := table(&out, []string{"ID", "NAME", "ENABLED"}, [][]string{
		{wide, "Web shop", "yes"},
		{"short", "tab\there, newline\nthere", "no"},
		{"ünïcödé-" + wide[:10], "x", "yes"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("a cell's newline broke the table into %d lines:\n%s", len(lines), out.String())
	}
	// Every row's second and third columns start where the header's do (counted in characters).
	col := func(line, cell string) int { return len([]rune(line[:strings.Index(line, cell)])) }
	name, enabled := col(lines[0], "NAME"), col(lines[0], "ENABLED")
	for i, cells := range [][]string{{"Web shop", "yes"}, {"tab here, newline there", "no"}, {"x", "yes"}} {
		line := lines[i+1]
		if col(line, cells[0]) != name || col(line, cells[1]) != enabled {
			t.Errorf("row %d is not aligned with the header:\n%s", i+1, out.String())
		}
	}
	if name != 64+2 {
		t.Errorf("the NAME column starts at %d, want after the 64-character ID and two spaces:\n%s", name, out.String())
	}
}

func TestVersionPrintsTheBuildInfo(t *testing.T) {
	out, _, code := run(t, "", "version")
	if code != ExitOK || !strings.Contains(out, "go1.") || !strings.Contains(out, "platform") {
		t.Fatalf("s3dest version: exit %d\n%s", code, out)
	}
}

func TestCompletionScriptsAreGeneratedForEachShell(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_s3dest", "zsh": "#compdef s3dest", "fish": "complete -c s3dest"} {
		out, errOut, code := run(t, "", "completion", shell)
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("s3dest completion %s: exit %d, no %q\n%s", shell, code, want, errOut)
		}
	}
	// A run command completes its service flags (cobra leaves them to it).
	out, _, _ := run(t, "", cobra.ShellCompRequestCmd, "dev", "--flush")
	if !strings.Contains(out, "--flush-interval") {
		t.Errorf("completing s3dest dev --flush gave:\n%s", out)
	}
}
