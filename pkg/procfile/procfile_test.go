package procfile

import (
	"os"
	"path/filepath"
	"testing"
)

// The cluster's env file gives a NATS node's route port and the port it advertises the same value: after
// FreePorts they are still one port, and every other port is its own.
func TestFreePortsKeepsAPortThatVariablesShareShared(t *testing.T) {
	env := map[string]string{"A_ROUTE_PORT": "6231", "A_ROUTE_ADVERTISE_PORT": "6231", "B_PORT": "6232", "DIR": "x"}
	if err := FreePorts(env); err != nil {
		t.Fatal(err)
	}
	if env["A_ROUTE_PORT"] == "6231" || env["A_ROUTE_PORT"] != env["A_ROUTE_ADVERTISE_PORT"] {
		t.Errorf("A's route and advertised ports are %s and %s, want one new port", env["A_ROUTE_PORT"], env["A_ROUTE_ADVERTISE_PORT"])
	}
	if env["B_PORT"] == env["A_ROUTE_PORT"] || env["B_PORT"] == "6232" || env["DIR"] != "x" {
		t.Errorf("env after FreePorts: %v", env)
	}
}

// deploy/local's Procfile and env file read, and every variable a line uses is set.
func TestTheLocalClusterFilesReadAndEveryVariableIsSet(t *testing.T) {
	lines, err := Read(filepath.Join("..", "..", "deploy", "local", "Procfile"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := ReadEnv(filepath.Join("..", "..", "deploy", "local", "cluster.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		os.Expand(l.Command, func(name string) string {
			if _, ok := env[name]; !ok {
				t.Errorf("line %s uses ${%s}, which cluster.env does not set", l.Name, name)
			}
			return ""
		})
	}
}
