// Package procfile is the local cluster as data (DESIGN.md §8): deploy/local/Procfile, one process a
// line (`name: command`), whose commands use only the variables of deploy/local/cluster.env. Everything
// that runs or inspects the cluster (make cluster through foreman, the bootstrap, `s3dest await`, the
// tests, the chaos suite) reads those two files with this package rather than naming a port of its own,
// and the tests and the chaos suite run the lines with Cluster: each its own process group, so that one
// line can be killed, stopped or started again alone.
package procfile

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Line is one process of the Procfile: its name and its shell command.
type Line struct {
	Name, Command string
}

// Expand is the command with the environment's ${VAR} and $VAR replaced, as sh would.
func (l Line) Expand(env map[string]string) string {
	return os.Expand(l.Command, func(k string) string { return env[k] })
}

var (
	lineName = regexp.MustCompile(`^[\w-]+$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Read reads a Procfile: `name: command` lines; blank lines and # comments are skipped.
func Read(path string) ([]Line, error) {
	var lines []Line
	err := eachLine(path, func(n int, s string) error {
		name, cmd, ok := strings.Cut(s, ":")
		if !ok || !lineName.MatchString(name) {
			return fmt.Errorf("%s:%d: want `name: command`", path, n)
		}
		lines = append(lines, Line{Name: name, Command: strings.TrimSpace(cmd)})
		return nil
	})
	return lines, err
}

// ReadEnv reads an env file (`NAME=value` lines, # comments; no quoting, no expansion, as foreman
// reads it).
func ReadEnv(path string) (map[string]string, error) {
	env := map[string]string{}
	err := eachLine(path, func(n int, s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || !envName.MatchString(k) {
			return fmt.Errorf("%s:%d: want NAME=value", path, n)
		}
		env[k] = v
		return nil
	})
	return env, err
}

func eachLine(path string, f func(n int, s string) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if err := f(n, s); err != nil {
			return err
		}
	}
	return sc.Err()
}

// FlagValue is the value of a flag (`--name value` or `--name=value`) in an expanded command.
func FlagValue(cmd, name string) string {
	m := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(name) + `[\s=](\S+)`).FindStringSubmatch(cmd)
	if m == nil {
		return ""
	}
	return m[1]
}

// Program is the program an expanded command runs: what follows its last `exec`, else its first word
// that is not VAR=value.
func Program(cmd string) string {
	if i := strings.LastIndex(cmd, "exec "); i >= 0 {
		cmd = cmd[i+len("exec "):]
	}
	for _, w := range strings.Fields(cmd) {
		if !strings.Contains(w, "=") {
			return filepath.Base(w)
		}
	}
	return ""
}

// Probe is how to tell that a line's process serves: an HTTP GET answering 200, or (Redis) a TCP
// connection. The empty probe means the line has none.
type Probe struct {
	URL, TCP string
}

// ProbeOf is the readiness probe of an expanded command, by the program it runs.
func ProbeOf(cmd string) Probe {
	switch p := Program(cmd); p {
	case "nats-server":
		return Probe{URL: "http://127.0.0.1:" + FlagValue(cmd, "-m") + "/healthz"}
	case "redis-server":
		return Probe{TCP: "127.0.0.1:" + FlagValue(cmd, "--port")}
	case "minio":
		return Probe{URL: "http://" + FlagValue(cmd, "--address") + "/minio/health/ready"}
	case "s3dest":
		return Probe{URL: "http://" + FlagValue(cmd, "--sts-gate-addr") + "/readyz"}
	default:
		if ops := FlagValue(cmd, "--ops-addr"); ops != "" {
			return Probe{URL: "http://" + ops + "/readyz"}
		}
	}
	return Probe{}
}

// Ready reports whether the probe passes now.
func (p Probe) Ready(ctx context.Context) bool {
	switch {
	case p.URL != "":
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	case p.TCP != "":
		c, err := net.DialTimeout("tcp", p.TCP, 2*time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	return true
}

// Await waits until the probe of every named line (every line when names is empty) passes, or ctx
// ends.
func Await(ctx context.Context, lines []Line, env map[string]string, names []string) error {
	for _, name := range names {
		if !slices.ContainsFunc(lines, func(l Line) bool { return l.Name == name }) {
			return fmt.Errorf("no line %q in the Procfile", name)
		}
	}
	for _, l := range lines {
		if len(names) > 0 && !slices.Contains(names, l.Name) {
			continue
		}
		probe := ProbeOf(l.Expand(env))
		for !probe.Ready(ctx) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s is not ready (%s%s): %w", l.Name, probe.URL, probe.TCP, context.Cause(ctx))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// FreePort returns a free TCP port on 127.0.0.1 for a process started later. It is taken below the
// kernel's ephemeral range: a port from ":0" is free only until the next ":0" listener anywhere on the
// machine (other test packages run at once) is handed the same one, before our process binds it. Within
// this process a port is never handed out twice.
func FreePort() (int, error) {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 10000 + rand.IntN(low-10000)
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port below the ephemeral range after 1000 tries")
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// FreePorts replaces the value of every *_PORT variable of env with a free port: the local cluster
// on ports no other run uses. Variables that share a port in env share the new one.
func FreePorts(env map[string]string) error {
	chosen := map[string]string{} // old value → new port
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if !strings.HasSuffix(k, "_PORT") {
			continue
		}
		if p, ok := chosen[env[k]]; ok {
			env[k] = p
			continue
		}
		p, err := FreePort()
		if err != nil {
			return err
		}
		chosen[env[k]] = strconv.Itoa(p)
		env[k] = chosen[env[k]]
	}
	return nil
}
