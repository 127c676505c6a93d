package allinone

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/s3dest/s3dest/pkg/procfile"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// Tilt cannot be installed on these machines, so the Tiltfile is evaluated here with go.starlark.net and
// stand-ins for the Tilt builtins it calls. A stand-in takes exactly the parameters Tilt documents for
// that builtin (a misspelled one fails) and records what it was given; a builtin without a stand-in is
// an undefined name, which fails the evaluation.

const tiltfilePath = "../../Tiltfile"

// tiltResource is one local_resource call: its keyword arguments as Go values (string, int, bool, nil,
// []any, map[string]any; a probe or action is a map of its fields).
type tiltResource map[string]any

// evalTiltfile runs the Tiltfile src as Tilt would from the repository root: read_file reads paths
// relative to root, except those in files, which stand in for the repository's. It returns the
// local_resources by name, in the order they were declared.
func evalTiltfile(src []byte, root string, files map[string]string) (map[string]tiltResource, []string, error) {
	resources := map[string]tiltResource{}
	var order []string
	builtin := func(name string, params []string, record func(kw map[string]starlark.Value) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			vals := make([]starlark.Value, len(params))
			pairs := make([]any, 0, 2*len(params))
			for i, p := range params {
				pairs = append(pairs, p, &vals[i])
			}
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
				return nil, err
			}
			kw := map[string]starlark.Value{}
			for i, p := range params {
				if vals[i] != nil {
					kw[strings.TrimSuffix(p, "?")] = vals[i]
				}
			}
			return record(kw)
		})
	}
	// struct returns the call's arguments as a struct value, as Tilt's probe and action values carry them.
	asStruct := func(name string) func(kw map[string]starlark.Value) (starlark.Value, error) {
		return func(kw map[string]starlark.Value) (starlark.Value, error) {
			return starlarkstruct.FromStringDict(starlark.String(name), starlark.StringDict(kw)), nil
		}
	}
	predeclared := starlark.StringDict{
		"read_file": builtin("read_file", []string{"paths", "default?"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
			p, ok := starlark.AsString(kw["paths"])
			if !ok {
				return nil, fmt.Errorf("read_file: paths must be a string, got %s", kw["paths"].Type())
			}
			if s, ok := files[p]; ok {
				return starlark.String(s), nil
			}
			data, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				return nil, fmt.Errorf("read_file: %w", err)
			}
			return starlark.String(data), nil
		}),
		"local_resource": builtin("local_resource", []string{"name", "cmd?", "deps?", "trigger_mode?", "resource_deps?",
			"ignore?", "auto_init?", "serve_cmd?", "cmd_bat?", "serve_cmd_bat?", "allow_parallel?", "links?", "tags?",
			"env?", "serve_env?", "readiness_probe?", "dir?", "serve_dir?", "labels?"},
			func(kw map[string]starlark.Value) (starlark.Value, error) {
				name, ok := starlark.AsString(kw["name"])
				if !ok {
					return nil, fmt.Errorf("local_resource: name must be a string")
				}
				if _, dup := resources[name]; dup {
					return nil, fmt.Errorf("local_resource: %q declared twice", name)
				}
				r := tiltResource{}
				for k, v := range kw {
					r[k] = goValue(v)
				}
				resources[name] = r
				order = append(order, name)
				return starlark.None, nil
			}),
		"probe": builtin("probe", []string{"initial_delay_secs?", "timeout_secs?", "period_secs?", "success_threshold?",
			"failure_threshold?", "exec?", "http_get?", "tcp_socket?"}, asStruct("probe")),
		"http_get_action":   builtin("http_get_action", []string{"port", "host?", "scheme?", "path?"}, asStruct("http_get_action")),
		"tcp_socket_action": builtin("tcp_socket_action", []string{"port", "host?"}, asStruct("tcp_socket_action")),
		"exec_action":       builtin("exec_action", []string{"command"}, asStruct("exec_action")),
	}
	opts := &syntax.FileOptions{TopLevelControl: true, GlobalReassign: true, While: true, Set: true, Recursion: true}
	thread := &starlark.Thread{Name: "tiltfile"}
	if _, err := starlark.ExecFileOptions(opts, thread, "Tiltfile", src, predeclared); err != nil {
		return nil, nil, err
	}
	return resources, order, nil
}

// goValue converts what a Tiltfile passes to a builtin into plain Go values.
func goValue(v starlark.Value) any {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.String:
		return string(v)
	case starlark.Bool:
		return bool(v)
	case starlark.Int:
		n, _ := v.Int64()
		return int(n)
	case *starlark.List:
		out := []any{}
		for i := range v.Len() {
			out = append(out, goValue(v.Index(i)))
		}
		return out
	case starlark.Tuple:
		out := []any{}
		for _, e := range v {
			out = append(out, goValue(e))
		}
		return out
	case *starlark.Dict:
		out := map[string]any{}
		for _, kv := range v.Items() {
			k, _ := starlark.AsString(kv[0])
			out[k] = goValue(kv[1])
		}
		return out
	case *starlarkstruct.Struct:
		d := starlark.StringDict{}
		v.ToStringDict(d)
		out := map[string]any{}
		for k, e := range d {
			out[k] = goValue(e)
		}
		return out
	}
	return v.String()
}

// strings of a Tiltfile list value, or nil when it is not a list of strings.
func stringList(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := []string{}
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// shellCommand is one `&&`-joined part of an expanded Procfile command: VAR=value assignments, an
// optional exec, then a program and its arguments.
type shellCommand struct {
	assigns map[string]string
	program string
	args    []string
}

// splitCommand splits an expanded Procfile command the way sh does for the words these lines use:
// whitespace-separated, with ” as the empty word. Any other quoting is refused rather than guessed.
func splitCommand(cmd string) ([]shellCommand, error) {
	var parts []shellCommand
	cur := shellCommand{assigns: map[string]string{}}
	assigning := true
	for _, w := range strings.Fields(cmd) {
		if w == "''" {
			w = ""
		} else if strings.ContainsAny(w, `'"\`+"`") {
			return nil, fmt.Errorf("word %q: quoting other than '' is not understood", w)
		}
		switch {
		case w == "&&":
			parts = append(parts, cur)
			cur, assigning = shellCommand{assigns: map[string]string{}}, true
		case assigning && w == "exec":
		case assigning && regexp.MustCompile(`^[A-Za-z_]\w*=`).MatchString(w):
			k, v, _ := strings.Cut(w, "=")
			cur.assigns[k] = v
		case assigning:
			cur.program, assigning = w, false
		default:
			cur.args = append(cur.args, w)
		}
	}
	return append(parts, cur), nil
}

// awaitedLines is what a line awaits: the names after `bin/s3dest await`, before its `&&`.
func awaitedLines(cmd string) []string {
	parts, err := splitCommand(cmd)
	if err != nil || len(parts) < 2 || parts[0].program != "bin/s3dest" || len(parts[0].args) == 0 || parts[0].args[0] != "await" {
		return nil
	}
	return parts[0].args[1:]
}

// repoBinaries is what `make build` writes to bin/: s3dest and one binary per name of the Makefile's
// SERVICES.
func repoBinaries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^SERVICES := (.+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the Makefile has no SERVICES := line")
	}
	return append([]string{"s3dest"}, strings.Fields(string(m[1]))...)
}

// tiltfileProblems compares the Tiltfile's resources with the Procfile and env file: one local_resource
// a line running exactly its command with the env file's variables, the probe s3dest await uses, the
// awaited lines (and the build, for a line that runs one of our binaries) as resource_deps, a restart when
// its binary changes; and a build resource running make build on a code change. Each problem is a
// sentence naming the resource and the field.
func tiltfileProblems(resources map[string]tiltResource, lines []procfile.Line, env map[string]string, binaries []string) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	build, ok := resources["build"]
	switch {
	case !ok:
		bad("no local_resource 'build'")
	default:
		if build["cmd"] != "make build" {
			bad("build: cmd is %q, want %q", build["cmd"], "make build")
		}
		if build["serve_cmd"] != nil && build["serve_cmd"] != "" {
			bad("build: has a serve_cmd %q; it only builds", build["serve_cmd"])
		}
		deps := stringList(build["deps"])
		for _, dir := range []string{"pkg", "services", "proto"} {
			if !slices.Contains(deps, dir) {
				bad("build: deps %v do not watch %s/, so a change there does not rebuild", deps, dir)
			}
		}
	}
	names := map[string]bool{"build": true}
	for _, l := range lines {
		names[l.Name] = true
	}
	for name := range resources {
		if !names[name] {
			bad("local_resource %q is no line of the Procfile", name)
		}
	}

	for _, l := range lines {
		r, ok := resources[l.Name]
		if !ok {
			bad("Procfile line %s: no local_resource", l.Name)
			continue
		}
		if r["serve_cmd"] != l.Command {
			bad("%s: serve_cmd is %q, want the Procfile's command %q", l.Name, r["serve_cmd"], l.Command)
		}
		if c := r["cmd"]; c != nil && c != "" {
			bad("%s: has a cmd %q; a line only serves", l.Name, c)
		}
		if got, ok := r["serve_env"].(map[string]any); !ok || !maps.EqualFunc(got, env, func(a any, b string) bool { return a == b }) {
			bad("%s: serve_env is %v, want exactly cluster.env's variables", l.Name, r["serve_env"])
		}

		expanded := l.Expand(env)
		parts, err := splitCommand(expanded)
		if err != nil {
			bad("%s: %v", l.Name, err)
			continue
		}
		prog := parts[len(parts)-1].program
		ours := strings.HasPrefix(prog, "bin/")
		if ours && !slices.Contains(binaries, strings.TrimPrefix(prog, "bin/")) {
			bad("%s: runs %s, which make build does not write", l.Name, prog)
		}

		wantDeps := awaitedLines(l.Command)
		for _, a := range wantDeps {
			if !names[a] || a == "build" {
				bad("%s: awaits %q, which is no line of the Procfile", l.Name, a)
			}
		}
		var wantFiles []string
		if ours {
			wantDeps = append(wantDeps, "build")
			wantFiles = []string{prog}
		}
		if got := stringList(r["resource_deps"]); !sameSet(got, wantDeps) {
			bad("%s: resource_deps are %v, want %v (the lines it awaits, and build for our binaries)", l.Name, r["resource_deps"], wantDeps)
		}
		if got := stringList(r["deps"]); !sameSet(got, wantFiles) {
			bad("%s: deps are %v, want %v (a rebuilt binary restarts the line)", l.Name, r["deps"], wantFiles)
		}

		problems = append(problems, probeProblems(l.Name, r["readiness_probe"], procfile.ProbeOf(expanded))...)
	}
	return problems
}

// probeProblems compares a Tiltfile readiness probe with the one s3dest await and the bootstrap use.
func probeProblems(name string, got any, want procfile.Probe) []string {
	p, ok := got.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: no readiness_probe", name)}
	}
	var host, port, path string
	var kind string
	if a, ok := p["http_get"].(map[string]any); ok {
		kind, host, port, path = "http_get", fmt.Sprint(a["host"]), fmt.Sprint(a["port"]), fmt.Sprint(a["path"])
	} else if a, ok := p["tcp_socket"].(map[string]any); ok {
		kind, host, port = "tcp_socket", fmt.Sprint(a["host"]), fmt.Sprint(a["port"])
	}
	var wantKind, wantHost, wantPort, wantPath string
	switch {
	case want.URL != "":
		u, err := url.Parse(want.URL)
		if err != nil {
			return []string{fmt.Sprintf("%s: s3dest's probe %q: %v", name, want.URL, err)}
		}
		wantKind, wantHost, wantPort, wantPath = "http_get", u.Hostname(), u.Port(), u.Path
	case want.TCP != "":
		h, pt, err := net.SplitHostPort(want.TCP)
		if err != nil {
			return []string{fmt.Sprintf("%s: s3dest's probe %q: %v", name, want.TCP, err)}
		}
		wantKind, wantHost, wantPort = "tcp_socket", h, pt
	default:
		return []string{fmt.Sprintf("%s: s3dest has no readiness probe for this line", name)}
	}
	if kind != wantKind || host != wantHost || port != wantPort || path != wantPath {
		return []string{fmt.Sprintf("%s: readiness_probe is %s %s:%s%s, want %s %s:%s%s (what s3dest await probes)",
			name, kind, host, port, path, wantKind, wantHost, wantPort, wantPath)}
	}
	return nil
}

func sameSet(a, b []string) bool {
	if a == nil || len(a) != len(b) {
		return false
	}
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// flagProblems runs every program a Procfile line names with the flags the line gives it, and reports
// what the program does not accept: our binaries must parse every flag and answer -h (which they do only
// when every flag before it is theirs) and document every S3DEST_* variable the line sets; nats-server
// and minio must list every flag in their help; redis-server must start with the line's directives.
func flagProblems(t *testing.T, lines []procfile.Line, env map[string]string, bins map[string]string) []string {
	t.Helper()
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	for _, l := range lines {
		parts, err := splitCommand(l.Expand(env))
		if err != nil {
			bad("%s: %v", l.Name, err)
			continue
		}
		for _, c := range parts {
			switch prog := filepath.Base(c.program); {
			case c.program == "mkdir":
			case strings.HasPrefix(c.program, "bin/"):
				exe, ok := bins[prog]
				if !ok {
					bad("%s: runs %s, which make build does not write", l.Name, c.program)
					continue
				}
				args := c.args
				if prog == "s3dest" && len(args) > 0 && args[0] == "await" {
					continue // its arguments are Procfile lines, checked with resource_deps
				}
				out, err := runFor(exe, append(args, "-h"), nil)
				if err != nil || !strings.Contains(out, "Usage") {
					bad("%s: %s does not accept %v: %v\n%s", l.Name, c.program, args, err, tail(out, 600))
					continue
				}
				for k := range c.assigns {
					if strings.HasPrefix(k, "S3DEST_") && !strings.Contains(out, "(env "+k+")") {
						bad("%s: sets %s, which %s does not read", l.Name, k, c.program)
					}
				}
			case prog == "nats-server" || prog == "minio":
				exe, err := procfile.LookPath(prog)
				if err != nil {
					bad("%s: needs %s (make deps installs it): %v", l.Name, prog, err)
					continue
				}
				helpArgs := []string{"--help"}
				if prog == "minio" && len(c.args) > 0 {
					helpArgs = []string{c.args[0], "--help"}
				}
				help, _ := runFor(exe, helpArgs, nil)
				for _, a := range c.args {
					if strings.HasPrefix(a, "-") && !regexp.MustCompile(`(?m)(^|[\s,])`+regexp.QuoteMeta(a)+`([\s,]|$)`).MatchString(help) {
						bad("%s: %s has no flag %s", l.Name, prog, a)
					}
				}
			case prog == "redis-server":
				problems = append(problems, redisProblems(t, l.Name, c.args)...)
			default:
				bad("%s: runs %s, which this test does not know how to check", l.Name, c.program)
			}
		}
	}
	return problems
}

// runFor runs a program to its end (at most 30 s) and returns its combined output.
func runFor(exe string, args, env []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// redisProblems starts redis-server with a line's directives (its port and dir replaced by a free port
// and a temp dir): it
// serves only when it accepts every one, and exits at once on one it does not know.
func redisProblems(t *testing.T, name string, args []string) []string {
	t.Helper()
	exe, err := procfile.LookPath("redis-server")
	if err != nil {
		return []string{fmt.Sprintf("%s: needs redis-server (make deps installs it): %v", name, err)}
	}
	port := testenv.FreePort(t)
	args = slices.Clone(args)
	for name, v := range map[string]string{"--port": strconv.Itoa(port), "--dir": t.TempDir()} {
		if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
			args[i+1] = v
		} else {
			args = append(args, name, v)
		}
	}
	out := &lockedBuffer{}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return []string{fmt.Sprintf("%s: start redis-server: %v", name, err)}
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()
	probe := procfile.Probe{TCP: "127.0.0.1:" + strconv.Itoa(port)}
	deadline := time.After(30 * time.Second)
	for {
		if probe.Ready(context.Background()) {
			return nil
		}
		select {
		case <-exited:
			return []string{fmt.Sprintf("%s: redis-server refuses %q: %s", name, args, tail(out.String(), 600))}
		case <-deadline:
			return []string{fmt.Sprintf("%s: redis-server %v did not serve within 30s", name, args)}
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readClusterFiles reads deploy/local's Procfile and env file.
func readClusterFiles(t *testing.T) ([]procfile.Line, map[string]string) {
	t.Helper()
	lines, err := procfile.Read(procfilePath)
	if err != nil {
		t.Fatal(err)
	}
	env, err := procfile.ReadEnv(envFilePath)
	if err != nil {
		t.Fatal(err)
	}
	return lines, env
}

// The Tiltfile runs exactly the local cluster of deploy/local: a local_resource a Procfile line, with the
// line's command unchanged and cluster.env as its environment, the probe s3dest await uses, the lines it
// awaits as resource_deps, and a restart when make build rewrites its binary. A Tiltfile that changes
// any of these fails the same checks.
func TestTheTiltfileRunsEachProcfileLineAsItIs(t *testing.T) {
	lines, env := readClusterFiles(t)
	src, err := os.ReadFile(tiltfilePath)
	if err != nil {
		t.Fatal(err)
	}
	binaries := repoBinaries(t)
	resources, order, err := evalTiltfile(src, "../..", nil)
	if err != nil {
		t.Fatalf("evaluate the Tiltfile: %v", err)
	}
	if len(order) != len(lines)+1 {
		t.Errorf("the Tiltfile declares %d resources %v, want %d: build and one a Procfile line", len(order), order, len(lines)+1)
	}
	for _, p := range tiltfileProblems(resources, lines, env, binaries) {
		t.Error(p)
	}

	for _, m := range []struct{ name, old, new, want string }{
		{"a changed command", "serve_cmd=cmd,", "serve_cmd=cmd.replace('--replicas', '--replica'),", "serve_cmd is"},
		{"a probe on the wrong port", "port(flag(words, '--ops-addr'))", "port(flag(words, '--ops-addr')) + 1", "readiness_probe is"},
		{"a probe on the wrong host", "host='127.0.0.1'", "host='localhost'", "readiness_probe is"},
		{"a dropped dependency", "+ awaited(words)", "", "resource_deps are"},
		{"an env left out", "serve_env=env,", "serve_env={},", "serve_env is"},
		{"no restart on a rebuild", "deps=(['bin/' + program(words)] if binary else []),", "", "deps are"},
		{"another build command", "cmd='make build'", "cmd='go build ./...'", "build: cmd is"},
		{"a line dropped", "for line in lines_of(PROCFILE):", "for line in lines_of(PROCFILE)[1:]:", "no local_resource"},
	} {
		t.Run("a Tiltfile with "+m.name+" fails", func(t *testing.T) {
			mutated := strings.Replace(string(src), m.old, m.new, 1)
			if mutated == string(src) {
				t.Fatalf("the Tiltfile has no %q to change", m.old)
			}
			resources, _, err := evalTiltfile([]byte(mutated), "../..", nil)
			if err != nil {
				t.Fatalf("evaluate the mutated Tiltfile: %v", err)
			}
			problems := tiltfileProblems(resources, lines, env, binaries)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, m.want) }) {
				t.Errorf("the checks found %q, want a problem saying %q", problems, m.want)
			}
		})
	}
	t.Run("a Tiltfile calling a builtin without a stand-in fails", func(t *testing.T) {
		_, _, err := evalTiltfile(append(slices.Clone(src), "\ndocker_build('s3dest', '.')\n"...), "../..", nil)
		if err == nil || !strings.Contains(err.Error(), "docker_build") {
			t.Errorf("evaluation returned %v, want an error naming docker_build", err)
		}
	})
	t.Run("a misspelled parameter of a builtin fails", func(t *testing.T) {
		_, _, err := evalTiltfile([]byte(strings.Replace(string(src), "readiness_probe=", "readyness_probe=", 1)), "../..", nil)
		if err == nil || !strings.Contains(err.Error(), "readyness_probe") {
			t.Errorf("evaluation returned %v, want an error naming readyness_probe", err)
		}
	})
	t.Run("a Procfile line the Tiltfile reads is one more resource", func(t *testing.T) {
		procfile, err := os.ReadFile(procfilePath)
		if err != nil {
			t.Fatal(err)
		}
		extra := string(procfile) + "copier3: bin/s3dest await redis && exec bin/copier --ops-addr 127.0.0.1:${COPIER2_OPS_PORT}\n"
		resources, _, err := evalTiltfile(src, "../..", map[string]string{"deploy/local/Procfile": extra})
		if err != nil {
			t.Fatal(err)
		}
		r, ok := resources["copier3"]
		if !ok || !sameSet(stringList(r["resource_deps"]), []string{"redis", "build"}) {
			t.Errorf("copier3 is %v, want a resource awaiting redis and build", r)
		}
	})
}

// Every program the Procfile runs exists, and takes every flag the line gives it: our binaries (as make
// build writes them) parse the line's flags and read the S3DEST_* variables it sets; nats-server and
// minio document each flag; redis-server starts with the line's directives. A changed flag fails.
func TestEveryProgramAndFlagOfTheProcfileExists(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and runs nats-server, minio and redis-server: skipped under -short")
	}
	lines, env := readClusterFiles(t)
	bins := map[string]string{}
	for _, b := range repoBinaries(t) {
		pkg := "./services/" + b + "/cmd/" + b
		if b == "s3dest" {
			pkg = "./services/allinone/cmd/s3dest"
		}
		bins[b] = buildBinary(t, pkg)
	}
	for _, p := range flagProblems(t, lines, env, bins) {
		t.Error(p)
	}

	for _, m := range []struct{ line, old, new, want string }{
		{"admin", "--replicas", "--replica", "does not accept"},
		{"copier1", "S3DEST_CREDENTIALS_KEY=", "S3DEST_CREDENTIAL_KEY=", "does not read"},
		{"nats1", "--cluster_name", "--cluster-name", "has no flag --cluster-name"},
		{"minio", "--console-address", "--console-addr", "has no flag --console-addr"},
		{"redis", "--appendonly", "--append-only", "redis-server refuses"},
		{"stager1", "exec bin/stager", "exec bin/stage", "which make build does not write"},
	} {
		t.Run(fmt.Sprintf("%s with %s fails", m.line, m.new), func(t *testing.T) {
			i := slices.IndexFunc(lines, func(l procfile.Line) bool { return l.Name == m.line })
			if i < 0 || !strings.Contains(lines[i].Command, m.old) {
				t.Fatalf("the Procfile has no line %s with %q", m.line, m.old)
			}
			mutated := lines[i]
			mutated.Command = strings.Replace(mutated.Command, m.old, m.new, 1)
			problems := flagProblems(t, []procfile.Line{mutated}, env, bins)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, m.want) }) {
				t.Errorf("the checks found %q, want a problem saying %q", problems, m.want)
			}
		})
	}
}
