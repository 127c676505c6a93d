package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
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
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/procfile"
	"github.com/s3dest/s3dest/pkg/testenv"
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
	cmd := exec.Command("../../deploy/local/bootstrap", "--bootstrap-timeout", "60s")
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
	sendThroughEveryReplica(t, sum.TrackingURLs, sum.WriteKey, "cluster-", perReplica)
	total := 2 * perReplica
	counts := deliveredIDs(t, sum.Summary, total)
	checkDeliveredOnce(t, counts, "cluster-", total)
	if len(counts) != total {
		t.Errorf("%d distinct events in the bucket, want %d", len(counts), total)
	}

	js := clusterJetStream(t, sum.NATSURLs)
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

// sendThroughEveryReplica sends perReplica track events with Segment's Go client to each tracking URL in
// turn, messageIds prefix0, prefix1, … across them all.
func sendThroughEveryReplica(t *testing.T, urls []string, writeKey, prefix string, perReplica int) {
	t.Helper()
	for r, url := range urls {
		client, err := analytics.NewWithConfig(writeKey, analytics.Config{Endpoint: url, BatchSize: 100, Interval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i := range perReplica {
			if err := client.Enqueue(analytics.Track{MessageId: fmt.Sprintf("%s%d", prefix, r*perReplica+i), UserId: "cluster-user",
				Event: "Cluster Event", Properties: analytics.NewProperties().Set("replica", r)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := client.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// clusterJetStream connects to the cluster's NATS nodes until the test ends.
func clusterJetStream(t *testing.T, urls []string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// checkDeliveredOnce fails unless each of prefix0 … prefix{total-1} was delivered exactly once.
func checkDeliveredOnce(t *testing.T, counts map[string]int, prefix string, total int) {
	t.Helper()
	for i := range total {
		if n := counts[prefix+strconv.Itoa(i)]; n != 1 {
			t.Errorf("event %s%d delivered %d times, want once", prefix, i, n)
		}
	}
}

// With PARTITIONS=3 every service line runs with --partitions 3: EVENTS is the three streams
// EVENTS-0..2 at R3, ingest moves their leaders onto the three nodes, one each, and events of sources in
// every partition, sent to both ingest replicas, are each delivered exactly once.
func TestThreePartitionsOnTheLocalClusterLeadFromEveryNodeAndDeliverEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole local cluster as processes: skipped under -short")
	}
	c := startLocalCluster(t, map[string]string{"FLUSH_INTERVAL": "1s", "LOG_LEVEL": "warn", "PARTITIONS": "3"})
	sum := c.bootstrap(t)
	parts := bus.Partitions(3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A source in every partition: the demo source, and new ones (into the demo bucket) until each
	// partition has one.
	api, err := newAPIClient(ClientConfig{AdminURL: sum.AdminURL, Token: sum.AdminToken})
	if err != nil {
		t.Fatal(err)
	}
	writeKeys := map[int]string{parts.Of(sum.SourceID): sum.WriteKey}
	for i := 0; len(writeKeys) < 3; i++ {
		if i == 40 {
			t.Fatalf("40 new sources left a partition empty: %v", writeKeys)
		}
		var created struct {
			Source apiSource `json:"source"`
		}
		if _, err := api.call(ctx, http.MethodPost, "/sources", map[string]any{"slug": fmt.Sprintf("part-%d", i), "name": "Partition test", "enabled": true}, &created); err != nil {
			t.Fatal(err)
		}
		p := parts.Of(created.Source.ID)
		if _, ok := writeKeys[p]; ok {
			continue
		}
		if _, err := api.call(ctx, http.MethodPost, "/destinations", map[string]any{
			"sourceId": created.Source.ID, "metadataId": layout.AWSS3MetadataID, "name": "Partition test", "enabled": true,
			"settings": apiSettings{Region: sum.Region, S3Bucket: sum.Bucket, IamRoleArn: sum.RoleARN},
		}, nil); err != nil {
			t.Fatal(err)
		}
		writeKeys[p] = created.Source.WriteKeys[0]
	}
	// Every ingest replica knows every write key once an empty event is refused for its content (400),
	// not its key (401).
	for _, url := range sum.TrackingURLs {
		for _, key := range writeKeys {
			testenv.Eventually(t, 30*time.Second, url+" to know the write key", func() bool {
				req, _ := http.NewRequest(http.MethodPost, url+"/v1/track", strings.NewReader("{}"))
				req.SetBasicAuth(key, "")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusBadRequest
			})
		}
	}

	js := clusterJetStream(t, sum.NATSURLs)
	// leaders is the leader of each partition's stream, "" while it has none.
	leaders := func() map[string]string {
		out := map[string]string{}
		for _, name := range parts.Streams() {
			out[name] = ""
			if s, err := js.Stream(ctx, name); err == nil && s.CachedInfo().Cluster != nil {
				out[name] = s.CachedInfo().Cluster.Leader
			}
		}
		return out
	}
	for _, name := range parts.Streams() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if info := s.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("%s has %d replicas (cluster %+v), want 3", name, info.Config.Replicas, info.Cluster)
		}
	}
	spread := func(l map[string]string) bool {
		nodes := map[string]bool{}
		for _, node := range l {
			nodes[node] = node != ""
		}
		return len(nodes) == 3 && !nodes[""]
	}
	// The cluster elects leaders at random (all three on one node one time in nine); ingest moves the
	// leader of EVENTS-p to the p-th node by name (bus.SpreadLeaders), which chance alone would give one
	// time in 27.
	want := map[string]string{"EVENTS-0": "nats-1", "EVENTS-1": "nats-2", "EVENTS-2": "nats-3"}
	testenv.Eventually(t, 90*time.Second, fmt.Sprintf("the EVENTS partitions led as %v", want), func() bool { return maps.Equal(leaders(), want) })
	if _, err := js.Stream(ctx, bus.StreamEvents); err == nil {
		t.Error("a stream EVENTS exists besides the three partitions")
	}

	const perReplica = 300
	for p := range 3 {
		sendThroughEveryReplica(t, sum.TrackingURLs, writeKeys[p], fmt.Sprintf("part%d-", p), perReplica)
	}
	counts := deliveredIDs(t, sum.Summary, 3*2*perReplica)
	for p := range 3 {
		checkDeliveredOnce(t, counts, fmt.Sprintf("part%d-", p), 2*perReplica)
	}
	if len(counts) != 3*2*perReplica {
		t.Errorf("%d distinct events in the bucket, want %d", len(counts), 3*2*perReplica)
	}
	for p, name := range parts.Streams() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			t.Errorf("%s holds no message: partition %d carried none of its source's events", name, p)
		}
	}
	if l := leaders(); !spread(l) {
		t.Errorf("after the load the leaders are %v, want one on every node", l)
	}
}
