package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/procfile"
)

// localCluster is deploy/local/Procfile running with every port of cluster.env replaced by a free one
// and all state in a temp dir: each line started by the test in its own process group (not foreman), so
// that one line can be killed and started again alone.
type localCluster struct {
	*procfile.Cluster
	root string // holds bin/, as the repository does after make build
	env  map[string]string
	base []string
}

const (
	procfilePath = "../../deploy/local/Procfile"
	envFilePath  = "../../deploy/local/cluster.env"
)

func startLocalCluster(t *testing.T, overrides map[string]string) *localCluster {
	t.Helper()
	for _, p := range []string{"nats-server", "redis-server", "minio"} {
		if _, err := procfile.LookPath(p); err != nil {
			t.Fatalf("needs %s (make deps installs it): %v", p, err)
		}
	}
	lines, err := procfile.Read(procfilePath)
	if err != nil {
		t.Fatal(err)
	}
	env, err := procfile.ReadEnv(envFilePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := procfile.FreePorts(env); err != nil {
		t.Fatal(err)
	}
	env["S3DEST_CLUSTER_DIR"] = t.TempDir()
	for k, v := range overrides {
		env[k] = v
	}
	root := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(root, "bin")+"/", "./services/allinone/cmd/s3dest",
		"./services/ingest/cmd/ingest", "./services/batcher/cmd/batcher", "./services/stager/cmd/stager",
		"./services/copier/cmd/copier", "./services/validator/cmd/validator", "./services/admin/cmd/admin")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the binaries: %v\n%s", err, out)
	}
	procfileAbs, _ := filepath.Abs(procfilePath)
	envFileAbs, _ := filepath.Abs(envFilePath)
	base := append(os.Environ(), "PATH="+procfile.GoBin()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"S3DEST_PROCFILE="+procfileAbs, "S3DEST_ENV_FILE="+envFileAbs)
	c := &localCluster{Cluster: procfile.NewCluster(root, lines, env, base), root: root, env: env, base: base}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, l := range lines {
				t.Logf("%s output:\n%s", l.Name, tail(c.Output(l.Name), 4000))
			}
		}
	})
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	return c
}

// bootstrap runs deploy/local/bootstrap with the binaries just built and returns the summary it wrote.
func (c *localCluster) bootstrap(t *testing.T) ClusterSummary {
	t.Helper()
	cmd := exec.Command("../../deploy/local/bootstrap", "--timeout", "60s")
	cmd.Env = slices.Clone(c.base)
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "S3DEST_BIN="+filepath.Join(c.root, "bin"))
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
