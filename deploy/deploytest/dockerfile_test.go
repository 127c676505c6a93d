package deploytest

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository's root, from this package.
var repoRoot = filepath.Join("..", "..")

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct{ cmd, args string }

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// shellWords splits s as a POSIX shell would for plain words and double- or single-quoted strings.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestTheImageBinariesAreStaticAsTheDockerfileBuildsThem builds every binary the Dockerfile builds, with its
// ENV and its `go build` flags read from the file (not copied here), and proves each ELF has no interpreter
// and needs no shared library, so it starts on distroless static. It also checks the layering the file
// promises: the module download is a layer of its own, before any source is copied, and the image runs as
// nonroot.
func TestTheImageBinariesAreStaticAsTheDockerfileBuildsThem(t *testing.T) {
	ins := readDockerfile(t)
	env := map[string]string{}
	var download, build, lastFrom, user string
	downloadAt, firstSourceCopy := -1, -1
	copied := map[string]int{}
	for i, in := range ins {
		switch in.cmd {
		case "ENV":
			for _, kv := range shellWords(in.args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("ENV %q: want KEY=VALUE", in.args)
				}
				env[k] = v
			}
		case "RUN":
			if strings.Contains(in.args, "go mod download") {
				download, downloadAt = in.args, i
			}
			if strings.Contains(in.args, "go build") {
				build = in.args
			}
		case "COPY":
			words := shellWords(in.args)
			for _, src := range words[:len(words)-1] {
				if strings.HasPrefix(src, "--") {
					continue
				}
				if strings.HasSuffix(src, "go.mod") || strings.HasSuffix(src, "go.sum") {
					copied[src] = i
				} else if firstSourceCopy < 0 && !strings.HasPrefix(words[0], "--from") {
					firstSourceCopy = i
				}
			}
		case "FROM":
			lastFrom, user = in.args, ""
		case "USER":
			user = in.args
		}
	}
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("the build stage sets CGO_ENABLED=%q, want 0", env["CGO_ENABLED"])
	}
	if !slices.Contains(strings.Fields(env["GOFLAGS"]), "-trimpath") {
		t.Errorf("the build stage's GOFLAGS %q lack -trimpath", env["GOFLAGS"])
	}
	if !strings.Contains(lastFrom, "distroless/static") || !strings.HasSuffix(lastFrom, ":nonroot") {
		t.Errorf("the image is FROM %q, want a distroless static nonroot base", lastFrom)
	}
	if user != "65532:65532" && user != "nonroot" && user != "nonroot:nonroot" {
		t.Errorf("the image runs as USER %q, want nonroot (65532)", user)
	}
	if downloadAt < 0 || firstSourceCopy < downloadAt {
		t.Errorf("go mod download (instruction %d) must run before any source is copied (instruction %d)", downloadAt, firstSourceCopy)
	}
	modules := regexp.MustCompile(`for m in ([^;]+);`).FindStringSubmatch(download)
	if modules == nil {
		t.Fatalf("the download step names no modules: %q", download)
	}
	for _, m := range strings.Fields(modules[1]) {
		for _, f := range []string{m + "/go.mod", m + "/go.sum"} {
			if at, ok := copied[f]; !ok || at > downloadAt {
				t.Errorf("%s is not copied before go mod download", f)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, ".dockerignore")); err != nil {
		t.Errorf("no .dockerignore: %v", err)
	}

	binaries := regexp.MustCompile(`for s in ([^;]+);`).FindStringSubmatch(build)
	flags := regexp.MustCompile(`go build (.*?) -o `).FindStringSubmatch(build)
	if binaries == nil || flags == nil {
		t.Fatalf("cannot read the binaries and flags of the build step: %q", build)
	}
	buildEnv := os.Environ()
	for k, v := range env {
		buildEnv = append(buildEnv, k+"="+v)
	}
	out := t.TempDir()
	for _, s := range strings.Fields(binaries[1]) {
		dir, name, ok := strings.Cut(s, ":")
		if !ok {
			name = dir
		}
		t.Run(name, func(t *testing.T) {
			exe := filepath.Join(out, name)
			args := append(append([]string{"build"}, shellWords(flags[1])...), "-o", exe, "./cmd/"+name)
			cmd := exec.Command("go", args...)
			cmd.Dir, cmd.Env = filepath.Join(repoRoot, "services", dir), buildEnv
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go %s in services/%s: %v\n%s", strings.Join(args, " "), dir, err, b)
			}
			f, err := elf.Open(exe)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s has an ELF interpreter (PT_INTERP): it is not static", name)
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("%s needs shared libraries %v", name, libs)
			}
		})
	}
}
