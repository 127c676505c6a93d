// Package procfile reads the local cluster's topology (DESIGN.md §8): deploy/local/Procfile, one process
// a line, whose commands use only the variables of deploy/local/cluster.env. Everything that runs or
// inspects the cluster (the bootstrap, the tests, the bench, the chaos suite) reads those two files
// with this code rather than naming a port of its own.
package procfile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Line is one process of a Procfile: its name and its shell command.
type Line struct {
	Name, Command string
}

// Expand is the command with the environment's ${VAR} and $VAR replaced, as sh would.
func (l Line) Expand(env map[string]string) string {
	return os.Expand(l.Command, func(k string) string { return env[k] })
}

// Read reads a Procfile: `name: command` lines; blank lines and # comments are skipped.
func Read(path string) ([]Line, error) {
	var lines []Line
	err := eachLine(path, func(n int, s string) error {
		name, cmd, ok := strings.Cut(s, ":")
		if !ok || !regexp.MustCompile(`^[\w-]+$`).MatchString(name) {
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
		if !ok || !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(k) {
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
