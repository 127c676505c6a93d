package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// localCluster is deploy/local/Procfile running with every port of cluster.env replaced by a free one
// and all state in a temp dir: each line started by the test in its own process group (not foreman), so
// that one line can be killed and started again alone.
type localCluster struct {
	root  string // holds bin/, as the repository does after make build
	env   map[string]string
	lines []ProcfileLine
	kills map[string]func()
}

const (
	procfilePath = "../../deploy/local/Procfile"
	envFilePath  = "../../deploy/local/cluster.env"
)

func startLocalCluster(t *testing.T, overrides map[string]string) *localCluster {
	t.Helper()
	for _, p := range []string{"nats-server", "redis-server", "minio"} {
		if _, err := lookProgram(p); err != nil {
			t.Fatalf("needs %s (make deps installs it): %v", p, err)
		}
	}
	lines, env := readClusterFiles(t)
	for k := range env {
		if strings.HasSuffix(k, "_PORT") {
			env[k] = strconv.Itoa(testenv.FreePort(t))
		}
	}
	env["S3DEST_CLUSTER_DIR"] = t.TempDir()
	for k, v := range overrides {
		env[k] = v
	}
	c := &localCluster{root: t.TempDir(), env: env, lines: lines, kills: map[string]func(){}}
	build := exec.Command("go", "build", "-o", filepath.Join(c.root, "bin")+"/", "./services/allinone/cmd/s3dest",
		"./services/ingest/cmd/ingest", "./services/batcher/cmd/batcher", "./services/stager/cmd/stager",
		"./services/copier/cmd/copier", "./services/validator/cmd/validator", "./services/admin/cmd/admin")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the binaries: %v\n%s", err, out)
	}
	for _, l := range lines {
		c.start(t, l.Name)
	}
	return c
}

// lookProgram finds a program on PATH or in $(go env GOPATH)/bin, where make deps installs them.
func lookProgram(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return exec.LookPath(filepath.Join(gopathBin(), name))
}

func gopathBin() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin")
}

func (c *localCluster) environ() []string {
	procfile, _ := filepath.Abs(procfilePath)
	envFile, _ := filepath.Abs(envFilePath)
	env := append(os.Environ(), "PATH="+gopathBin()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"S3DEST_PROCFILE="+procfile, "S3DEST_ENV_FILE="+envFile)
	for k, v := range c.env {
		env = append(env, k+"="+v)
	}
	return env
}

// start runs one Procfile line as sh does under foreman: in the root, with the env file's variables.
func (c *localCluster) start(t *testing.T, name string) {
	t.Helper()
	for _, l := range c.lines {
		if l.Name == name {
			cmd := exec.Command("sh", "-c", l.Command)
			cmd.Dir, cmd.Env = c.root, c.environ()
			c.kills[name] = startProcess(t, name, cmd)
			return
		}
	}
	t.Fatalf("no line %q in the Procfile", name)
}

// bootstrap runs deploy/local/bootstrap with the binaries just built and returns the summary it wrote.
func (c *localCluster) bootstrap(t *testing.T) ClusterSummary {
	t.Helper()
	cmd := exec.Command("../../deploy/local/bootstrap", "--timeout", "60s")
	cmd.Env = append(c.environ(), "S3DEST_BIN="+filepath.Join(c.root, "bin"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(c.env["S3DEST_CLUSTER_DIR"], "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum ClusterSummary
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// The local cluster of deploy/local (three NATS nodes, two replicas of every stage) takes events at both
// ingest replicas from Segment's Go client and delivers each exactly once; EVENTS is replicated on all
// three nodes.
func TestTheLocalClusterDeliversEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole local cluster as processes: skipped under -short")
	}
	c := startLocalCluster(t, map[string]string{"FLUSH_INTERVAL": "1s", "LOG_LEVEL": "warn"})
	sum := c.bootstrap(t)
	if len(sum.TrackingURLs) != 2 || len(sum.NATSURLs) != 3 {
		t.Fatalf("summary has tracking URLs %v and NATS URLs %v, want 2 and 3", sum.TrackingURLs, sum.NATSURLs)
	}
	for field, v := range map[string]string{"trackingUrl": sum.TrackingURL, "adminUrl": sum.AdminURL, "adminToken": sum.AdminToken,
		"grpcAddr": sum.GRPCAddr, "s3Endpoint": sum.S3Endpoint, "s3AccessKey": sum.S3AccessKey, "s3SecretKey": sum.S3SecretKey,
		"stsEndpoint": sum.STSEndpoint, "workspaceId": sum.WorkspaceID, "intermediateRoleArn": sum.IntermediateRoleARN,
		"sourceId": sum.SourceID, "writeKey": sum.WriteKey, "region": sum.Region, "bucket": sum.Bucket, "roleArn": sum.RoleARN,
		"destinationId": sum.DestinationID} {
		if v == "" {
			t.Errorf("summary.json has no %s", field)
		}
	}

	const perReplica = 500
	for r, url := range sum.TrackingURLs {
		client, err := analytics.NewWithConfig(sum.WriteKey, analytics.Config{Endpoint: url, BatchSize: 100, Interval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i := range perReplica {
			if err := client.Enqueue(analytics.Track{MessageId: fmt.Sprintf("cluster-%d", r*perReplica+i), UserId: "cluster-user",
				Event: "Cluster Event", Properties: analytics.NewProperties().Set("replica", r)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := client.Close(); err != nil {
			t.Fatal(err)
		}
	}
	total := 2 * perReplica
	counts := deliveredIDs(t, sum.Summary, total)
	for i := range total {
		if n := counts["cluster-"+strconv.Itoa(i)]; n != 1 {
			t.Errorf("event cluster-%d delivered %d times, want once", i, n)
		}
	}
	if len(counts) != total {
		t.Errorf("%d distinct events in the bucket, want %d", len(counts), total)
	}

	nc, err := nats.Connect(strings.Join(sum.NATSURLs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if info := s.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Errorf("EVENTS has %d replicas (cluster %+v), want 3: a leader and two followers", info.Config.Replicas, info.Cluster)
	}
}
