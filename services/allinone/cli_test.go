package allinone

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3dest/s3dest/services/admin"
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
		{[]string{"migrate", "--admin-token", "t"}, "source: the source to migrate is required"},
		{[]string{"dev", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"dev", "extra"}, `unexpected argument "extra"`},
		{[]string{"dev", "-flush-interval", "1ms"}, "flush-interval: must be at least 100ms"}, // Go's single dash still parses
		{[]string{"await"}, "name at least one Procfile line"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"completion", "tcsh"}, `unknown command "tcsh" for "s3dest completion"`},
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
		{"status", "--admin-url", closed, "--admin-token", "t"},
		{"sources", "list", "--admin-url", closed, "--admin-token", "t", "--json"},
		{"validate", "d-1", "--admin-url", closed, "--admin-token", "t"},
		{"login", "--url", closed, "--admin-token", "t"},
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

func TestEveryPrintingCommandPrintsJSONAndEachFailureHasItsExitCodeAgainstDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	login := isolateLogin(t)
	const ws = "ws-cli-json"
	ext := `{"StringEquals":{"sts:ExternalId":"` + ws + `"}}`
	cfg := devConfig(t, t.TempDir())
	cfg.WorkspaceID = ws
	cfg.DevAWSConfig = devAWSConfig(t, map[string]any{
		"buckets": []any{map[string]any{"name": "cli-bucket", "account": rowsAccount}},
		"roles": []any{
			role("cli-healthy", admin.TrustPolicy(testIntermediate, ws), admin.PermissionPolicy("aws", "cli-bucket", "")),
			role("cli-no-put", trustDoc(testIntermediate, ext), allowDoc("s3:GetObject", "arn:aws:s3:::cli-bucket/segment-logs/*")),
		},
	})
	sum, _ := runDev(t, cfg)
	conn := []string{"--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken}

	// jsonOf runs a command with --json and the connection, and decodes what it printed.
	jsonOf := func(wantCode int, args ...string) map[string]any {
		t.Helper()
		args = append(args, "--json")
		if args[0] != "version" && args[0] != "logout" { // the commands that call no admin API
			args = append(args, conn...)
		}
		out, errOut, code := run(t, "", args...)
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != wantCode {
			t.Fatalf("s3dest %s --json: exit %d (want %d), %v; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, err, out, errOut)
		}
		return got
	}
	str := func(v any, keys ...string) string {
		for _, k := range keys {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		s, _ := v.(string)
		return s
	}
	covered := map[string]bool{}
	cover := func(wantCode int, args ...string) map[string]any {
		t.Helper()
		words := []string{}
		for _, a := range args {
			if strings.HasPrefix(a, "-") || strings.ContainsAny(a, "0123456789:/") {
				break
			}
			words = append(words, a)
		}
		covered[strings.Join(words, " ")] = true
		return jsonOf(wantCode, args...)
	}

	// A wrong token: exit 4, nothing on stdout.
	if out, errOut, code := run(t, "", "status", "--admin-url", sum.AdminURL, "--admin-token", "not-the-token"); code != ExitUnreachable || out != "" || !strings.Contains(errOut, "refused the token") {
		t.Fatalf("status with a wrong token: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// The former --token still works, and says what it is called now.
	if out, errOut, code := run(t, "", "status", "--admin-url", sum.AdminURL, "--token", sum.AdminToken); code != ExitOK || out == "" || strings.Contains(out, "deprecated") || !strings.Contains(errOut, "warning: --token is deprecated: use --admin-token") {
		t.Errorf("status with the former --token: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	cover(0, "version")
	if got := cover(0, "workspace", "--bucket", "cli-bucket"); str(got, "iamSetup", "externalId") != ws {
		t.Errorf("workspace --json: %v", got)
	}
	cover(0, "sources", "list")
	src := cover(0, "sources", "create", "--slug", "cli-json")
	srcID := str(src, "source", "id")
	cover(0, "sources", "get", srcID)
	cover(0, "sources", "update", srcID, "--name", "CLI JSON")
	key := str(cover(0, "sources", "create-key", srcID), "writeKey")
	rotated := str(cover(0, "sources", "rotate-key", srcID, key, "--grace", "1h"), "writeKey")
	cover(0, "sources", "revoke-key", srcID, rotated)
	dest := cover(0, "destinations", "create", "--source", srcID, "--region", "us-east-1", "--bucket", "cli-bucket", "--role-arn", roleARN("cli-healthy"))
	destID := str(dest, "destination", "id")
	cover(0, "destinations", "list")
	cover(0, "destinations", "get", destID)
	cover(0, "destinations", "update", destID, "--name", "CLI bucket")
	if got := cover(0, "destinations", "update", destID, "--format", "parquet"); str(got, "destination", "settings", "format") != "parquet" {
		t.Errorf("destinations update --format parquet --json: %v", got)
	}
	if _, errOut, code := run(t, "", append([]string{"destinations", "update", destID, "--format", "csv"}, conn...)...); code != ExitUsage || !strings.Contains(errOut, "settings.format") {
		t.Errorf("destinations update --format csv: exit %d, want %d naming settings.format\n%s", code, ExitUsage, errOut)
	}
	cover(0, "destinations", "update", destID, "--format", "json")
	if got := cover(0, "destinations", "validate", destID); str(got, "validation", "code") != "VALIDATION_CODE_OK" {
		t.Errorf("destinations validate --json of the healthy role: %v", got)
	}
	cover(0, "validate", destID)
	cover(0, "destinations", "extend-retention", destID, "--by", "1h")
	if got := cover(0, "status"); len(got["statuses"].([]any)) != 2 {
		t.Errorf("status --json: want the demo's and the new destination's: %v", got)
	}
	// migrate --json tells its steps and its error in one object; here it stops at once for want of a bucket.
	if got := cover(ExitUsage, "migrate", "--source", srcID); !strings.Contains(str(got, "error"), "bucket and region") || len(got["steps"].([]any)) != 1 {
		t.Errorf("migrate --json: %v", got)
	}

	// A role without s3:PutObject fails validation: exit 3, in text and in JSON.
	bad := cover(0, "sources", "create", "--slug", "cli-bad")
	badDest := str(cover(0, "destinations", "create", "--source", str(bad, "source", "id"), "--region", "us-east-1", "--bucket", "cli-bucket",
		"--role-arn", roleARN("cli-no-put")), "destination", "id")
	out, errOut, code := run(t, "", append([]string{"validate", badDest}, conn...)...)
	if code != ExitCheckFailed || !strings.Contains(out, "[FAIL] upload segment-logs/dummy-object.txt") || !strings.Contains(errOut, "VALIDATION_CODE_PUT_OBJECT_DENIED") {
		t.Errorf("validate of a role without PutObject: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got := jsonOf(ExitCheckFailed, "validate", badDest); got["validation"].(map[string]any)["ok"] == true {
		t.Errorf("validate --json of a failing role: %v", got)
	}

	// login stores the URL and token in a private file; the other commands then need no flags.
	got := cover(0, "login", "--url", sum.AdminURL)
	if str(got, "workspaceId") != ws || str(got, "configFile") != login {
		t.Errorf("login --json: %v", got)
	}
	checkMode(t, login, 0o600)
	checkMode(t, filepath.Dir(login), 0o700)
	if out, errOut, code := run(t, "", "status", destID); code != ExitOK || !strings.Contains(out, destID) {
		t.Errorf("status after login, without flags: exit %d\n%s\n%s", code, out, errOut)
	}
	// The stored token goes only to the stored URL.
	if _, errOut, code := run(t, "", "status", "--admin-url", "http://127.0.0.1:1"); code != ExitUnreachable || !strings.Contains(errOut, "no admin token for http://127.0.0.1:1") {
		t.Errorf("status at another URL after login: exit %d\n%s", code, errOut)
	}
	if got := cover(0, "logout"); got["removed"] != true {
		t.Errorf("logout --json: %v", got)
	}
	if _, err := os.Stat(login); !os.IsNotExist(err) {
		t.Errorf("logout left %s: %v", login, err)
	}
	// The token on standard input, as a script pipes it.
	if out, errOut, code := run(t, sum.AdminToken+"\n", "login", "--url", sum.AdminURL); code != ExitOK || !strings.Contains(out, "Logged in to "+sum.AdminURL) {
		t.Errorf("login with the token on stdin: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := run(t, "wrong-token\n", "login", "--url", sum.AdminURL); code != ExitUnreachable {
		t.Errorf("login with a wrong token: exit %d\n%s", code, errOut)
	}

	cover(0, "destinations", "delete", destID)
	cover(0, "sources", "delete", srcID)

	// Every command with --json was run with it above, except those that need more than this stack.
	elsewhere := map[string]string{
		"dev":               "TestDevLogsTheCLIInSoThatCommandsNeedNoFlags runs the binary with --json",
		"cluster-bootstrap": "needs the local cluster of deploy/local/Procfile",
		"replay status":     "TestReplayFromTheCLIRefillsAnEmptiedBucketAndSaysWhatItDid runs the replay commands on a source with events",
		"replay list":       "TestReplayFromTheCLIRefillsAnEmptiedBucketAndSaysWhatItDid",
		"replay cancel":     "TestReplayFromTheCLIRefillsAnEmptiedBucketAndSaysWhatItDid",
		"replay resume":     "TestReplayFromTheCLIRefillsAnEmptiedBucketAndSaysWhatItDid",
	}
	walk(NewCLI(nil, nil, nil), func(cmd *cobra.Command) {
		name := strings.Join(path(cmd), " ")
		if cmd.HasSubCommands() || cmd.Flags().Lookup("json") == nil && cmd.InheritedFlags().Lookup("json") == nil {
			return
		}
		if !covered[name] && elsewhere[name] == "" {
			t.Errorf("s3dest %s has --json but this test never ran it: add a case", name)
		}
	})
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s has mode %o, want %o", path, fi.Mode().Perm(), want)
	}
}

// TestDevLogsTheCLIInSoThatCommandsNeedNoFlags runs the binary as a user does: `s3dest dev`, then client
// commands with no flags and no S3DEST_ADMIN_* variables, in a home of their own.
func TestDevLogsTheCLIInSoThatCommandsNeedNoFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs s3dest in processes of their own: skipped under -short")
	}
	exe := buildS3dest(t)
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "S3DEST_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	login := filepath.Join(home, ".config", "s3dest", "config.json")

	dev := exec.Command(exe, "dev", "--json", "--data-dir", filepath.Join(home, "data"), "--log-level", "warn",
		"--tracking-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--admin-grpc-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0",
		"--sts-addr", "127.0.0.1:0", "--nats-addr", "127.0.0.1:0", "--redis-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0")
	dev.Env = env
	logs := &lockedBuffer{}
	dev.Stderr = logs
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = dev.Process.Kill()
		if t.Failed() {
			t.Logf("s3dest dev's log:\n%s", logs.String())
		}
	})
	// --json: one line, the summary, once ready; nothing else on stdout.
	summary := make(chan Summary, 1)
	go func() {
		var sum Summary
		err := json.NewDecoder(stdout).Decode(&sum)
		if err == nil {
			summary <- sum
		}
		exited <- dev.Wait()
	}()
	var sum Summary
	select {
	case sum = <-summary:
	case err := <-exited:
		t.Fatalf("s3dest dev --json exited before printing its summary: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("s3dest dev --json printed no summary within 90 s")
	}
	if sum.AdminURL == "" || sum.DestinationID == "" {
		t.Fatalf("s3dest dev --json printed %+v", sum)
	}
	checkMode(t, login, 0o600)

	s3dest := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(exe, args...)
		cmd.Env = env
		out, err := cmd.Output()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out) + string(exit.Stderr), exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := s3dest("status"); code != 0 || !strings.Contains(out, sum.DestinationID) {
		t.Fatalf("s3dest status after s3dest dev, without flags: exit %d\n%s", code, out)
	}
	var list struct {
		Sources []apiSource `json:"sources"`
	}
	if out, code := s3dest("sources", "list", "--json"); code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Sources) != 1 || list.Sources[0].ID != sum.SourceID {
		t.Fatalf("s3dest sources list --json: exit %d\n%s", code, out)
	}
	// main's exit codes, as a shell sees them.
	if out, code := s3dest("sources", "-h"); code != 0 || !strings.Contains(out, "s3dest sources <command>") {
		t.Errorf("s3dest sources -h: exit %d\n%s", code, out)
	}
	if out, code := s3dest("sources", "bogus"); code != 2 {
		t.Errorf("s3dest sources bogus: exit %d\n%s", code, out)
	}
	if err := dev.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("s3dest dev did not stop cleanly: %v", err)
	}
	if out, code := s3dest("status"); code != 4 || !strings.Contains(out, "reach the admin API") {
		t.Errorf("s3dest status with dev stopped: exit %d, want 4\n%s", code, out)
	}
}

func TestStatusPutsAWideDestinationIDOnALineOfItsOwnSoNoColumnWidens(t *testing.T) {
	id := strings.Repeat("d", 64)
	st := apiStatus{DestinationID: id, Enabled: true, Days: []apiDay{{ReceivedDayMs: "1796169600000", Files: "2", Events: "10", Bytes: "300",
		LastDeliveryAt: "2026-12-02T10:55:33.123456Z"}}, Retention: &apiRetention{Retention: "604800s", WaitingFiles: "0"}}
	block, err := statusBlock(id, st)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
	if lines[0] != "DESTINATION "+id {
		t.Fatalf("first line %q, want the ID alone:\n%s", lines[0], block)
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, id) || len(l) > 120 {
			t.Errorf("a line below the ID holds it or is wider than 120 columns:\n%s", block)
		}
	}
	for _, want := range []string{"2026-12-02 (1796169600000)", "2026-12-02T10:55:33Z", "168h0m0s", "not validated yet"} {
		if !strings.Contains(block, want) {
			t.Errorf("status lacks %q:\n%s", want, block)
		}
	}
}
