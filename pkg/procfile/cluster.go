package procfile

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Cluster runs the lines of a Procfile as local processes, as foreman would (sh -c, in one directory,
// with the env file's variables) but each line in its own process group and on its own: one line can be
// killed (SIGKILL), stopped (SIGSTOP), resumed and started again while the others run. Foreman stops
// every process when one exits, which is right for `make cluster` and wrong for the tests and the
// chaos suite (DESIGN.md §8). Safe for concurrent use.
type Cluster struct {
	dir   string
	lines []Line
	env   map[string]string
	base  []string
	// LogDir, when set before the first Start, gets each line's output in <name>.log (appended, so a
	// restarted line's log follows its predecessor's).
	LogDir string

	mu      sync.Mutex
	procs   map[string]*process
	lineEnv map[string]map[string]string
}

// process is one started line; done closes when it has exited and err holds how.
type process struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	log  *os.File
	done chan struct{}
	err  error
}

// NewCluster runs lines from dir with env (the env file's variables, ports already chosen) on top of
// base (the parent's environment and whatever every line needs, e.g. PATH). It starts nothing.
func NewCluster(dir string, lines []Line, env map[string]string, base []string) *Cluster {
	return &Cluster{dir: dir, lines: lines, env: env, base: base, procs: map[string]*process{}, lineEnv: map[string]map[string]string{}}
}

// Lines is the Procfile's lines, in order.
func (c *Cluster) Lines() []Line { return slices.Clone(c.lines) }

// Env is the value of a variable of the env file, as every line but one given its own sees it.
func (c *Cluster) Env(name string) string { return c.env[name] }

// Command is a line's expanded command, as the cluster runs it (its own variables included).
func (c *Cluster) Command(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.line(name)
	if !ok {
		return ""
	}
	return l.Expand(c.varsOf(name))
}

// SetLineEnv gives one line values of its own for some of the env file's variables, from its next
// start: e.g. a fault proxy's port in place of a server's, for the clients of that server only. The
// Procfile stays the one topology; only what a variable means to one process changes.
func (c *Cluster) SetLineEnv(name string, vars map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lineEnv[name] = vars
}

func (c *Cluster) line(name string) (Line, bool) {
	i := slices.IndexFunc(c.lines, func(l Line) bool { return l.Name == name })
	if i < 0 {
		return Line{}, false
	}
	return c.lines[i], true
}

// varsOf is the env file's variables as the named line sees them. Called with c.mu held.
func (c *Cluster) varsOf(name string) map[string]string {
	vars := make(map[string]string, len(c.env))
	for k, v := range c.env {
		vars[k] = v
	}
	for k, v := range c.lineEnv[name] {
		vars[k] = v
	}
	return vars
}

// StartAll starts every line.
func (c *Cluster) StartAll() error {
	for _, l := range c.lines {
		if err := c.Start(l.Name); err != nil {
			return err
		}
	}
	return nil
}

// Start starts one line in a process group of its own. The line must not be running.
func (c *Cluster) Start(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.line(name)
	if !ok {
		return fmt.Errorf("no line %q in the Procfile", name)
	}
	if p := c.procs[name]; p != nil && !p.exited() {
		return fmt.Errorf("start %s: it is running (pid %d)", name, p.cmd.Process.Pid)
	}
	cmd := exec.Command("sh", "-c", l.Command)
	cmd.Dir = c.dir
	cmd.Env = slices.Clone(c.base)
	for k, v := range c.varsOf(name) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Its own group, so a signal reaches the line's every process (sh and what it runs) and no other;
	// and killed if this process dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, out: &tailBuffer{}, done: make(chan struct{})}
	var out io.Writer = p.out
	if c.LogDir != "" {
		if err := os.MkdirAll(c.LogDir, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(c.LogDir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		p.log, out = f, io.MultiWriter(p.out, f)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		if p.log != nil {
			p.log.Close()
		}
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		if p.log != nil {
			p.log.Close()
		}
		close(p.done)
	}()
	c.procs[name] = p
	return nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process group of a running line.
func (c *Cluster) Signal(name string, sig syscall.Signal) error {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil || p.exited() {
		return fmt.Errorf("signal %s: it is not running", name)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %s: %w", name, err)
	}
	return nil
}

// Kill SIGKILLs a line's process group and returns once its process has exited. A line that is not
// running is left as it is.
func (c *Cluster) Kill(name string) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether a started line's process has exited, and how.
func (c *Cluster) Exited(name string) (bool, error) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil || !p.exited() {
		return false, nil
	}
	return true, p.err
}

// Done is closed once the latest start of a line has exited (at once when it was never started).
func (c *Cluster) Done(name string) <-chan struct{} {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return p.done
}

// Pid is the process ID of a running line (its process group's ID), 0 if it is not running.
func (c *Cluster) Pid(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[name]; p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Output is the last 64 KB a line's process (its latest start) wrote.
func (c *Cluster) Output(name string) string {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.out.String()
}

// Await waits until the readiness probe of every named line (every line when none is named) passes.
// A probe reads the env file's variables as the cluster has them: the server's own address.
func (c *Cluster) Await(ctx context.Context, names ...string) error {
	return Await(ctx, c.lines, c.env, names)
}

// Stop SIGKILLs every line's process group and waits for them all.
func (c *Cluster) Stop() {
	for _, l := range c.lines {
		c.Kill(l.Name)
	}
}

// tailBuffer keeps the last 64 KB written to it.
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

// GoBin is $(go env GOPATH)/bin, where `make deps` installs nats-server and MinIO; the empty string when
// go cannot tell.
func GoBin() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin")
}

// LookPath finds a program on PATH or in GoBin, where `make deps` installs nats-server and MinIO.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return exec.LookPath(filepath.Join(GoBin(), name))
}
