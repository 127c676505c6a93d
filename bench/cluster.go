package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go"
	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/procfile"
)

// clusterResult is what -cluster measured on the local R3 cluster of deploy/local (every Procfile line a
// process of its own), written to cluster.json and cluster.md.
type clusterResult struct {
	StartedAt  time.Time `json:"started_at"`
	Machine    machine   `json:"machine"`
	Partitions int       `json:"partitions"`
	Replicas   int       `json:"stream_replicas"`
	Processes  []string  `json:"processes"`
	Clients    int       `json:"segment_go_clients"`
	Sources    int       `json:"sources"`
	FlushS     float64   `json:"flush_interval_s"`
	Events     string    `json:"events"` // padded or realistic (-events)

	// Raw R3 JetStream publish on the same cluster, the same run: one stream (one leader) of the
	// /v1/batch bodies, async.
	RawR3PublishEventsPerS float64 `json:"raw_r3_publish_events_per_s"`
	RawR3PublishMBPerS     float64 `json:"raw_r3_publish_mb_per_s"`

	AcceptedEvents      int64   `json:"accepted_events"`
	FailedEvents        int64   `json:"client_failed_events"`
	DeliveredEvents     int64   `json:"delivered_events"`
	MissingEvents       int64   `json:"missing_events"`
	DuplicateEvents     int64   `json:"duplicate_events"`
	UnknownLines        int64   `json:"unknown_lines"`
	LoadSeconds         float64 `json:"load_s"`
	DeliverySeconds     float64 `json:"first_send_to_last_delivery_s"`
	AcceptedEventsPerS  float64 `json:"accepted_events_per_s"`
	DeliveredEventsPerS float64 `json:"delivered_events_per_s"`
	DeliveredVsRawR3    float64 `json:"delivered_over_raw_r3_publish"`
	// Latency phase, after the throughput one: cfg.latencyRate events/s spread over the sources and ingest
	// replicas, each event's time from its 200 to its object's LastModified in the bucket.
	LatencyRate   int     `json:"latency_rate_events_per_s"`
	LatencyEvents int     `json:"latency_events"`
	LatencyP50S   float64 `json:"latency_p50_s"`
	LatencyP99S   float64 `json:"latency_p99_s"`
	LatencyMaxS   float64 `json:"latency_max_s"`
	// EventsStreamBytesPerEvent is what the EVENTS streams stored per accepted event, per replica (each
	// of the three nodes writes it; the leader sends it to two followers).
	EventsStreamBytesPerEvent float64 `json:"events_stream_bytes_per_event"`

	// CPU over first send to last delivery, summed per kind of process (nats = the three nodes).
	CPUSeconds map[string]float64 `json:"cpu_s"`
	// MachineBusyCPUSeconds is what every process on the machine used over the same window
	// (/proc/stat): the cluster's share of a machine that others use too.
	MachineBusyCPUSeconds float64 `json:"machine_busy_cpu_s"`
	// Restarted names the lines started again because they exited before the bootstrap was done.
	Restarted            []string           `json:"restarted_at_start,omitempty"`
	CPUSPerMillionEvents map[string]float64 `json:"cpu_s_per_million_events"`
	Leaders              map[string]string  `json:"events_stream_leaders"`
	Passed               bool               `json:"passed"`
}

// localCluster is deploy/local/Procfile running with free ports and its state in a temp dir, each line
// a process started here (as the cluster test and the chaos suite do, not foreman).
type localCluster struct {
	env     map[string]string
	environ []string
	lines   []procfile.Line
	procs   []*proc // by line
	pids    map[string]int
}

// startLocalCluster starts every Procfile line from the repository root (the lines run bin/…).
func startLocalCluster(ctx context.Context, dir string, overrides map[string]string) (*localCluster, error) {
	lines, err := procfile.Read("deploy/local/Procfile")
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	env, err := procfile.ReadEnv("deploy/local/cluster.env")
	if err != nil {
		return nil, err
	}
	for k := range env {
		if strings.HasSuffix(k, "_PORT") {
			addr, err := freeAddr()
			if err != nil {
				return nil, err
			}
			_, port, _ := net.SplitHostPort(addr)
			env[k] = port
		}
	}
	env["S3DEST_CLUSTER_DIR"] = dir
	for k, v := range overrides {
		env[k] = v
	}
	c := &localCluster{env: env, lines: lines, procs: make([]*proc, len(lines)), pids: map[string]int{}}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	c.environ = append(os.Environ(), "PATH="+filepath.Join(strings.TrimSpace(string(gopath)), "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	for k, v := range env {
		c.environ = append(c.environ, k+"="+v)
	}
	for i := range lines {
		if err := c.start(ctx, i); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// start runs line i, as sh does under foreman.
func (c *localCluster) start(ctx context.Context, i int) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", c.lines[i].Command)
	cmd.Env = c.environ
	p, err := startProc(c.lines[i].Name, cmd)
	if err != nil {
		return err
	}
	c.procs[i] = p
	c.pids[p.name] = p.pid() // every line ends in exec: the shell becomes the program
	return nil
}

// restartExited starts again every line whose process has exited (a service that gave up waiting for
// a cluster still electing its leaders, on a loaded machine), keeps what it said in dir, and says which.
func (c *localCluster) restartExited(ctx context.Context, dir string) ([]string, error) {
	var names []string
	for i, p := range c.procs {
		if p != nil && p.alive() != nil {
			names = append(names, p.name)
			_ = os.WriteFile(filepath.Join(dir, "cluster-"+p.name+"-exited.log"), []byte(p.out.String()), 0o644)
			if err := c.start(ctx, i); err != nil {
				return names, err
			}
		}
	}
	return names, nil
}

// stop stops the lines in reverse order: the services before the servers they use.
func (c *localCluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		if c.procs[i] != nil {
			c.procs[i].stop(30 * time.Second)
		}
	}
}

// clusterSummary is the part of summary.json the bench uses.
type clusterSummary struct {
	TrackingURLs []string `json:"trackingUrls"`
	NATSURLs     []string `json:"natsUrls"`
	AdminURL     string   `json:"adminUrl"`
	AdminToken   string   `json:"adminToken"`
	SourceID     string   `json:"sourceId"`
	WriteKey     string   `json:"writeKey"`
	Bucket       string   `json:"bucket"`
	RoleARN      string   `json:"roleArn"`
	Region       string   `json:"region"`
	S3Endpoint   string   `json:"s3Endpoint"`
	S3AccessKey  string   `json:"s3AccessKey"`
	S3SecretKey  string   `json:"s3SecretKey"`
	Destination  string   `json:"destinationId"`
}

// runCluster measures the local cluster: raw R3 publish, then delivered events/s under Segment's Go
// client at both ingest replicas, every line read back.
func runCluster(ctx context.Context, cfg config) error {
	began := time.Now()
	step := func(format string, args ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	if cfg.binDir != "bin" {
		return errors.New("-cluster runs deploy/local/Procfile, whose lines name bin/: run it from the repository root with -bin bin")
	}
	dir, err := os.MkdirTemp("", "s3dest-bench-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := &clusterResult{StartedAt: began.UTC(), Machine: describeMachine(), Partitions: cfg.partitions, FlushS: cfg.flush.Seconds(), Events: cfg.events,
		CPUSeconds: map[string]float64{}, CPUSPerMillionEvents: map[string]float64{}}
	step("starting deploy/local/Procfile with PARTITIONS=%d, every line a process", cfg.partitions)
	c, err := startLocalCluster(ctx, dir, map[string]string{"PARTITIONS": strconv.Itoa(cfg.partitions),
		"FLUSH_INTERVAL": cfg.flush.String(), "LOG_LEVEL": "warn"})
	if err != nil {
		return err
	}
	defer func() {
		c.stop()
		for _, p := range c.procs {
			if p == nil {
				continue
			}
			_ = os.WriteFile(filepath.Join(cfg.outDir, "cluster-"+p.name+".log"), []byte(p.out.String()), 0o644)
		}
	}()
	res.Replicas, _ = strconv.Atoi(c.env["REPLICAS"])
	res.Processes = sortedKeys(c.pids)
	for attempt := 1; ; attempt++ {
		boot := exec.CommandContext(ctx, "deploy/local/bootstrap", "--bootstrap-timeout", "90s")
		boot.Env = c.environ
		out, err := boot.CombinedOutput()
		if err == nil {
			break
		}
		restarted, rerr := c.restartExited(ctx, cfg.outDir)
		res.Restarted = append(res.Restarted, restarted...)
		if attempt == 3 || rerr != nil || len(restarted) == 0 {
			return fmt.Errorf("bootstrap: %v\n%s", errors.Join(err, rerr), out)
		}
		step("bootstrap: %s; started %v again", strings.TrimSpace(string(out)), restarted)
	}
	var sum clusterSummary
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		return fmt.Errorf("summary.json: %w", err)
	}
	step("cluster ready: %d NATS nodes, %d ingest replicas", len(sum.NATSURLs), len(sum.TrackingURLs))

	p, err := newPayloads(cfg.events)
	if err != nil {
		return err
	}
	step("limit: raw R3 JetStream async publish of the same /v1/batch bodies into one stream")
	if res.RawR3PublishEventsPerS, res.RawR3PublishMBPerS, err = jetStreamPublish(ctx, strings.Join(sum.NATSURLs, ","), p, cfg.limitsFor, res.Replicas); err != nil {
		return fmt.Errorf("raw R3 publish: %w", err)
	}

	// A source in every partition, each with its destination in the demo bucket.
	d := &deployment{adminURL: sum.AdminURL, adminToken: sum.AdminToken, trackingURL: sum.TrackingURLs[0]}
	parts := bus.Partitions(cfg.partitions)
	sources := map[int]source{parts.Of(sum.SourceID): {id: sum.SourceID, writeKey: sum.WriteKey, destinationID: sum.Destination}}
	for i := 0; len(sources) < cfg.partitions; i++ {
		if i == 50 {
			return fmt.Errorf("50 new sources left a partition of %d empty", cfg.partitions)
		}
		s, err := d.createSourceIf(ctx, fmt.Sprintf("bench-cluster-%d", i),
			map[string]string{"region": sum.Region, "s3Bucket": sum.Bucket, "iamRoleArn": sum.RoleARN}, sum.TrackingURLs, func(id string) bool {
				_, taken := sources[parts.Of(id)]
				return !taken
			})
		if err != nil {
			return err
		}
		if s.destinationID != "" {
			sources[parts.Of(s.id)] = s
		}
	}
	res.Sources = len(sources)
	if res.Leaders, err = eventsLeaders(ctx, sum.NATSURLs, parts); err != nil {
		return err
	}

	step("load: Segment's Go client, one per (source, ingest replica), for %s", cfg.duration)
	pids := map[string]int{"bench (Segment clients)": os.Getpid()}
	for name, pid := range c.pids {
		pids[name] = pid
	}
	cpu0, err := cpuSnapshot(pids)
	if err != nil {
		return err
	}
	busy0, err := machineBusyCPUSeconds()
	if err != nil {
		return err
	}
	events0, err := eventsStreamBytes(ctx, strings.Join(sum.NATSURLs, ","))
	if err != nil {
		return err
	}
	ld, err := newSegmentLoad(cfg.events)
	if err != nil {
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	n := 0
	for _, s := range sources {
		for _, url := range sum.TrackingURLs {
			wg.Add(1)
			go func(client int) {
				defer wg.Done()
				ld.run(ctx, url, s.writeKey, client, cfg.duration, 0)
			}(n)
			n++
		}
	}
	res.Clients = n
	wg.Wait()
	res.LoadSeconds = time.Since(start).Seconds()
	res.AcceptedEvents, res.FailedEvents = int64(len(ld.accepted)), ld.failed.Load()
	res.AcceptedEventsPerS = float64(res.AcceptedEvents) / res.LoadSeconds
	step("accepted %d events (%.0f/s, %d failed at the client); waiting for delivery", res.AcceptedEvents, res.AcceptedEventsPerS, res.FailedEvents)
	events1, err := eventsStreamBytes(ctx, strings.Join(sum.NATSURLs, ","))
	if err != nil {
		return err
	}
	res.EventsStreamBytesPerEvent = float64(events1-events0) / float64(max(res.AcceptedEvents, 1))

	var delivered int64
	if err := waitFor(ctx, cfg.deliverTimeout, "every accepted event to be delivered", func() bool {
		delivered = 0
		for _, s := range sources {
			n, err := d.deliveredEvents(ctx, s.destinationID)
			if err != nil {
				return false
			}
			delivered += n
		}
		return delivered >= res.AcceptedEvents
	}, c.procs...); err != nil {
		step("%v (status says %d of %d); reading back what arrived", err, delivered, res.AcceptedEvents)
	}
	res.DeliverySeconds = time.Since(start).Seconds()
	cpu1, err := cpuSnapshot(pids)
	if err != nil {
		return err
	}
	busy1, err := machineBusyCPUSeconds()
	if err != nil {
		return err
	}
	res.MachineBusyCPUSeconds = busy1 - busy0

	step("reading every delivered line back")
	cli := (&minio{url: sum.S3Endpoint, user: sum.S3AccessKey, password: sum.S3SecretKey}).s3()
	seen := map[string]int{}
	for _, s := range sources {
		if err := readBackMessageIDs(ctx, cli, sum.Bucket, s.id, seen, nil); err != nil {
			return err
		}
	}
	for id, times := range seen {
		if _, ok := ld.accepted[id]; !ok {
			res.UnknownLines += int64(times)
			continue
		}
		res.DeliveredEvents++
		res.DuplicateEvents += int64(times - 1)
	}
	res.MissingEvents = res.AcceptedEvents - res.DeliveredEvents
	res.DeliveredEventsPerS = float64(res.DeliveredEvents) / res.DeliverySeconds
	res.DeliveredVsRawR3 = res.DeliveredEventsPerS / res.RawR3PublishEventsPerS
	var total float64
	for name := range pids {
		kind := strings.TrimRight(name, "0123456789")
		res.CPUSeconds[kind] += cpu1[name] - cpu0[name]
	}
	for kind, s := range res.CPUSeconds {
		if !strings.HasPrefix(kind, "bench") {
			total += s // the cluster's own
		}
		res.CPUSPerMillionEvents[kind] = s * 1e6 / float64(max(res.DeliveredEvents, 1))
	}
	res.CPUSeconds["total (cluster)"] = total
	res.CPUSPerMillionEvents["total (cluster)"] = total * 1e6 / float64(max(res.DeliveredEvents, 1))
	if err := clusterLatency(ctx, cfg, res, d, cli, sum.Bucket, sources, sum.TrackingURLs, step, c.procs...); err != nil {
		return err
	}
	if res.Leaders, err = eventsLeaders(ctx, sum.NATSURLs, parts); err != nil {
		return err
	}
	res.Passed = res.MissingEvents == 0 && res.DuplicateEvents == 0 && res.AcceptedEvents > 0
	if err := writeClusterResults(cfg.outDir, res); err != nil {
		return err
	}
	step("delivered %d of %d accepted events at %.0f/s (raw R3 publish %.0f/s), %d duplicates; wrote %s",
		res.DeliveredEvents, res.AcceptedEvents, res.DeliveredEventsPerS, res.RawR3PublishEventsPerS, res.DuplicateEvents,
		filepath.Join(cfg.outDir, "cluster.md"))
	if !res.Passed {
		return errors.New("delivered != accepted: see " + filepath.Join(cfg.outDir, "cluster.md"))
	}
	return nil
}

// eventsLeaders is the node that leads each EVENTS stream.
func eventsLeaders(ctx context.Context, urls []string, parts bus.Partitions) (map[string]string, error) {
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	out := map[string]string{}
	for _, name := range parts.Streams() {
		msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+name, nil)
		if err != nil {
			return nil, fmt.Errorf("info of %s: %w", name, err)
		}
		var info struct {
			Cluster struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		}
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			return nil, err
		}
		out[name] = info.Cluster.Leader
	}
	return out, nil
}

// segmentLoad sends track events with Segment's Go client as fast as the pipeline takes them: each
// client keeps at most window events unanswered, so the load is closed-loop (the client drops batches
// past 1,000 concurrent requests, which would measure the client, not s3dest).
type segmentLoad struct {
	mu       sync.Mutex
	accepted map[string]time.Time // messageId → when its 200 came
	failed   atomic.Int64
	// realistic, when set (-events realistic), are the properties of the events sent, in turn: each a
	// realistic event (realisticEvents) whole, so the bytes compress as real events do. Without it each
	// event carries the repeated padding.
	realistic []analytics.Properties
}

const segmentWindow = 4000

func newSegmentLoad(kind string) (*segmentLoad, error) {
	l := &segmentLoad{accepted: map[string]time.Time{}}
	if kind != "realistic" {
		return l, nil
	}
	events, err := realisticEvents(4096)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		var props analytics.Properties
		if err := json.Unmarshal(append(append([]byte("{"), e...), '}'), &props); err != nil {
			return nil, err
		}
		l.realistic = append(l.realistic, props)
	}
	return l, nil
}

// callback counts the client's outcomes and frees a slot of its window.
type callback struct {
	l     *segmentLoad
	slots chan struct{}
}

func (c callback) Success(m analytics.Message) {
	c.l.mu.Lock()
	c.l.accepted[m.(analytics.Track).MessageId] = time.Now()
	c.l.mu.Unlock()
	<-c.slots
}

func (c callback) Failure(m analytics.Message, err error) {
	c.l.failed.Add(1)
	<-c.slots
}

var padding = strings.Repeat("s3dest cluster bench padding ", 24)

// run sends events through one Segment client for d: as fast as its window allows, or one every pace.
func (l *segmentLoad) run(ctx context.Context, url, writeKey string, client int, d, pace time.Duration) {
	cb := callback{l: l, slots: make(chan struct{}, segmentWindow)}
	c, err := analytics.NewWithConfig(writeKey, analytics.Config{Endpoint: url, BatchSize: eventsPerRequest, Interval: 50 * time.Millisecond,
		Callback: cb, Logger: analytics.StdLogger(log.New(io.Discard, "", 0))}) // failures are counted by the callback; StdLogger(nil) panics on the first error it logs
	if err != nil {
		l.failed.Add(1)
		return
	}
	deadline := time.Now().Add(d)
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(pace)
		defer t.Stop()
		tick = t.C
	}
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		if tick != nil {
			<-tick
		}
		cb.slots <- struct{}{}
		props := analytics.NewProperties().Set("i", i).Set("pad", padding)
		if l.realistic != nil {
			props = l.realistic[(client*7919+i)%len(l.realistic)]
		}
		if err := c.Enqueue(analytics.Track{MessageId: fmt.Sprintf("cl%d-%d", client, i), UserId: "bench-user", Event: "Cluster Bench",
			Properties: props}); err != nil {
			l.failed.Add(1)
			<-cb.slots
		}
	}
	_ = c.Close() // sends what is queued and waits for the answers
}

// readBackMessageIDs counts every line of a source's objects in the bucket by messageId, and tells
// visible (if set) each line's messageId with its object's LastModified.
func readBackMessageIDs(ctx context.Context, cli *s3.Client, bucket, sourceID string, seen map[string]int, visible func(id string, at time.Time)) error {
	pages := s3.NewListObjectsV2Paginator(cli, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("segment-logs/" + sourceID + "/")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/segment-logs/%s/: %w", bucket, sourceID, err)
		}
		for _, o := range page.Contents {
			out, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return fmt.Errorf("get %s: %w", aws.ToString(o.Key), err)
			}
			zr, err := gzip.NewReader(out.Body)
			if err != nil {
				out.Body.Close()
				return fmt.Errorf("gunzip %s: %w", aws.ToString(o.Key), err)
			}
			sc := bufio.NewScanner(zr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Bytes()
				i := bytes.Index(line, messageIDKey)
				if i < 0 {
					seen[""]++
					continue
				}
				rest := line[i+len(messageIDKey):]
				id := string(rest[:max(bytes.IndexByte(rest, '"'), 0)])
				seen[id]++
				if visible != nil {
					visible(id, aws.ToTime(o.LastModified))
				}
			}
			err = sc.Err()
			out.Body.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", aws.ToString(o.Key), err)
			}
		}
	}
	return nil
}

func writeClusterResults(dir string, r *clusterResult) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# s3dest on the local R3 cluster (`make bench-cluster`)\n\n")
	fmt.Fprintf(&b, "%s, %s (%d cores, %s GB), %s. deploy/local/Procfile, every line its own process: 3 nats-server nodes, "+
		"streams at R%d, EVENTS in %d partition(s) (leaders: %s), two replicas each of ingest, batcher, stager and copier. "+
		"Load: Segment's Go client, %d clients (one per source and ingest replica, %d sources, one per partition), %d-event batches, "+
		"%.0f s; flush interval %.0f s; %s events. Every line read back from the bucket.\n\n",
		r.StartedAt.Format("2006-01-02 15:04 UTC"), r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryGB, r.Machine.Kernel,
		r.Replicas, r.Partitions, leadersText(r.Leaders), r.Clients, r.Sources, eventsPerRequest, r.LoadSeconds, r.FlushS, r.Events)
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| raw R3 JetStream publish, one stream, same run | %.0f events/s (%.1f MB/s) |\n", r.RawR3PublishEventsPerS, r.RawR3PublishMBPerS)
	fmt.Fprintf(&b, "| accepted (200 to the client) | %d events, %.0f/s over %.1f s |\n", r.AcceptedEvents, r.AcceptedEventsPerS, r.LoadSeconds)
	fmt.Fprintf(&b, "| **delivered**, first send to last delivery | **%d events, %.0f/s** over %.1f s (%.2f of raw R3 publish) |\n",
		r.DeliveredEvents, r.DeliveredEventsPerS, r.DeliverySeconds, r.DeliveredVsRawR3)
	fmt.Fprintf(&b, "| bytes stored in EVENTS per event, per replica (x3 on disk, x2 over routes) | %.0f |\n", r.EventsStreamBytesPerEvent)
	fmt.Fprintf(&b, "| latency from the 200 to the object, at %d events/s (p50 / p99 / max; target p99 ≤ flush + 2 s) | %.2f / %.2f / %.2f s over %d events |\n",
		r.LatencyRate, r.LatencyP50S, r.LatencyP99S, r.LatencyMaxS, r.LatencyEvents)
	fmt.Fprintf(&b, "| missing / duplicated / unknown lines / client failures | %d / %d / %d / %d |\n\n", r.MissingEvents, r.DuplicateEvents, r.UnknownLines, r.FailedEvents)
	fmt.Fprintf(&b, "CPU-seconds per million delivered events, by kind of process (summed over its replicas):\n\n| process | CPU-s | CPU-s per M events |\n|---|---|---|\n")
	for _, k := range sortedKeys(r.CPUSeconds) {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f |\n", k, r.CPUSeconds[k], r.CPUSPerMillionEvents[k])
	}
	fmt.Fprintf(&b, "\nOver the same %.1f s the machine's %d cores were busy for %.1f CPU-s in all (/proc/stat), the cluster's processes %.1f of them",
		r.DeliverySeconds, r.Machine.Cores, r.MachineBusyCPUSeconds, r.CPUSeconds["total (cluster)"])
	if len(r.Restarted) > 0 {
		fmt.Fprintf(&b, "; lines started again after exiting before the bootstrap was done: %s", strings.Join(r.Restarted, ", "))
	}
	fmt.Fprintf(&b, ".\n\nPassed (delivered == accepted, no duplicate): %v\n", r.Passed)
	return os.WriteFile(filepath.Join(dir, "cluster.md"), []byte(b.String()), 0o644)
}

func leadersText(l map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(l) {
		parts = append(parts, k+" on "+l[k])
	}
	return strings.Join(parts, ", ")
}

// machineBusyCPUSeconds is the CPU time every process on the machine has used since boot: the first
// line of /proc/stat less idle and iowait, in clock ticks of 1/100 s.
func machineBusyCPUSeconds() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
	var busy float64
	for i, f := range fields[1:] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is counted in user already
			busy += v
		}
	}
	return busy / 100, nil
}

// clusterLatency runs the latency phase on the cluster: Segment's Go client at cfg.latencyRate events/s in
// all, one client per (source, ingest replica), for cfg.latencyFor; once all is delivered, each event's
// time from its 200 to the LastModified of the object holding it. A latency event missing or duplicated
// counts with the throughput phase's, and fails the run as they do.
func clusterLatency(ctx context.Context, cfg config, res *clusterResult, d *deployment, cli *s3.Client, bucket string, sources map[int]source, trackingURLs []string, step func(string, ...any), procs ...*proc) error {
	clients := len(sources) * len(trackingURLs)
	pace := time.Duration(float64(time.Second) * float64(clients) / float64(cfg.latencyRate))
	step("latency: %d events/s through %d Segment clients for %s", cfg.latencyRate, clients, cfg.latencyFor)
	ld, err := newSegmentLoad(cfg.events)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	n := 1000 // client numbers apart from the throughput phase's, so the messageIds are too
	for _, s := range sources {
		for _, url := range trackingURLs {
			wg.Add(1)
			go func(client int) {
				defer wg.Done()
				ld.run(ctx, url, s.writeKey, client, cfg.latencyFor, pace)
			}(n)
			n++
		}
	}
	wg.Wait()
	want := res.AcceptedEvents + int64(len(ld.accepted))
	if err := waitFor(ctx, cfg.deliverTimeout, "the latency phase's events to be delivered", func() bool {
		var delivered int64
		for _, s := range sources {
			n, err := d.deliveredEvents(ctx, s.destinationID)
			if err != nil {
				return false
			}
			delivered += n
		}
		return delivered >= want
	}, procs...); err != nil {
		return err
	}
	seen := map[string]int{}
	var lat []float64
	for _, s := range sources {
		if err := readBackMessageIDs(ctx, cli, bucket, s.id, seen, func(id string, at time.Time) {
			if acc, ok := ld.accepted[id]; ok {
				lat = append(lat, at.Sub(acc).Seconds())
			}
		}); err != nil {
			return err
		}
	}
	for id := range ld.accepted {
		switch n := seen[id]; {
		case n == 0:
			res.MissingEvents++
		case n > 1:
			res.DuplicateEvents += int64(n - 1)
		}
	}
	sort.Float64s(lat)
	res.LatencyRate, res.LatencyEvents = cfg.latencyRate, len(lat)
	if len(lat) > 0 {
		res.LatencyP50S, res.LatencyP99S, res.LatencyMaxS = quantile(lat, 0.50), quantile(lat, 0.99), lat[len(lat)-1]
	}
	step("latency: p50 %.2fs p99 %.2fs max %.2fs over %d events", res.LatencyP50S, res.LatencyP99S, res.LatencyMaxS, len(lat))
	return nil
}
