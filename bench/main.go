// Command bench measures s3dest end to end on this machine against real components — NATS JetStream
// with file storage, redis-server, and MinIO (staging and customer bucket) behind the STS trust gate —
// next to the raw limits of those components, and writes bench/results/ (latest.json, report.md, charts).
//
// For each mode (all-in-one `s3dest dev`, and the services as separate processes) it runs two phases:
// throughput (senders post /v1/batch as fast as they can; every line is read back from the customer
// bucket and checked against the requests answered 200) and latency (a fixed moderate rate; each
// event's time from its 200 to its object being listed). It exits non-zero when delivered != accepted.
//
// With -cluster it measures the local R3 cluster instead (cluster.go): deploy/local/Procfile, every line
// a process, under Segment's Go client at both ingest replicas, next to raw R3 publish on that cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the benchmark's flags.
type config struct {
	quick          bool
	binDir         string
	outDir         string
	modes          []string
	flush          time.Duration
	duration       time.Duration
	latencyFor     time.Duration
	latencyRate    int
	conns          int
	limitsFor      time.Duration
	deliverTimeout time.Duration
	cluster        bool
	partitions     int
	events         string
}

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "all-in-one only, short phases: under 60 s in all")
	binDir := fs.String("bin", "bin", "where `make build` put s3dest and the service binaries")
	outDir := fs.String("out", "bench/results", "where latest.json, report.md and the charts go")
	modes := fs.String("modes", "", "comma-separated: allinone, separate (default: both; allinone with -quick)")
	flush := fs.Duration("flush-interval", 2*time.Second, "the batcher's flush interval in both phases")
	duration := fs.Duration("duration", 0, "throughput phase length (default 30s, 8s with -quick)")
	latencyFor := fs.Duration("latency-duration", 0, "latency phase length (default 20s, 6s with -quick)")
	latencyRate := fs.Int("latency-rate", 2000, "events/s in the latency phase")
	conns := fs.Int("connections", 8, "concurrent senders (keep-alive connections) in the throughput phase")
	cluster := fs.Bool("cluster", false, "instead: the local R3 cluster of deploy/local/Procfile, Segment's Go client at both ingest replicas, next to raw R3 publish; writes cluster.json and cluster.md")
	events := fs.String("events", "padded", "the events sent: padded (~1 KB track events, a padded note) or realistic (varied Segment track, identify and page events with nested properties and contexts)")
	partitions := fs.Int("partitions", 3, "with -cluster: EVENTS partitions (the Procfile's PARTITIONS)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	c := config{quick: *quick, binDir: *binDir, outDir: *outDir, flush: *flush, duration: *duration,
		latencyFor: *latencyFor, latencyRate: *latencyRate, conns: *conns, cluster: *cluster, partitions: *partitions, events: *events}
	pick := func(d *time.Duration, full, quick time.Duration) {
		if *d == 0 {
			*d = full
			if c.quick {
				*d = quick
			}
		}
	}
	pick(&c.duration, 30*time.Second, 8*time.Second)
	pick(&c.latencyFor, 20*time.Second, 6*time.Second)
	pick(&c.limitsFor, 3*time.Second, 1500*time.Millisecond)
	c.deliverTimeout = 90*time.Second + 4*c.duration
	switch {
	case *modes != "":
		c.modes = strings.Split(*modes, ",")
	case c.quick:
		c.modes = []string{"allinone"}
	default:
		c.modes = []string{"allinone", "separate"}
	}
	for _, m := range c.modes {
		if m != "allinone" && m != "separate" {
			return c, fmt.Errorf("-modes: unknown mode %q (allinone, separate)", m)
		}
	}
	if c.latencyRate < eventsPerRequest || c.conns < 1 || c.flush < 100*time.Millisecond {
		return c, errors.New("-latency-rate must be at least 100, -connections at least 1, -flush-interval at least 100ms")
	}
	return c, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "nats-server" {
		if err := natsServerMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench nats-server:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	for _, b := range []string{"s3dest", "ingest", "batcher", "stager", "copier", "admin", "validator"} {
		if _, err := os.Stat(filepath.Join(cfg.binDir, b)); err != nil {
			return fmt.Errorf("%s: run `make build` first", filepath.Join(cfg.binDir, b))
		}
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return err
	}
	if cfg.cluster {
		return runCluster(ctx, cfg)
	}
	work, err := os.MkdirTemp("", "s3dest-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	began := time.Now()
	res := &result{Mode: map[bool]string{true: "quick", false: "full"}[cfg.quick], StartedAt: began.UTC(), Machine: describeMachine(),
		FlushIntervalS: cfg.flush.Seconds(), Connections: cfg.conns, EventsPerRequest: eventsPerRequest, Runs: map[string]*modeResult{}}
	step := func(format string, args ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}

	step("starting nats-server (JetStream, file storage), redis-server, MinIO and the STS gate")
	in, err := startInfra(ctx, work)
	defer in.stop()
	if err != nil {
		return err
	}
	p, err := newPayloads(cfg.events)
	if err != nil {
		return err
	}
	res.Events = cfg.events
	res.EventBytes = float64(len(p.body(nil, "size", 0, 0))) / eventsPerRequest

	step("limit: JetStream async publish of the same /v1/batch bodies")
	if res.Limits.JetStreamPublishEventsPerS, res.Limits.JetStreamPublishMBPerS, err = jetStreamPublish(ctx, in.natsURL, p, cfg.limitsFor, 1); err != nil {
		return fmt.Errorf("jetstream limit: %w", err)
	}
	res.Limits.MinIOPutObjectMB = 8
	step("limit: MinIO PutObject, 8 MB objects, 4 at a time")
	if res.Limits.MinIOPutMBPerS, err = minioPut(ctx, in.minio.s3(), 8<<20, 4, cfg.limitsFor); err != nil {
		return fmt.Errorf("minio limit: %w", err)
	}

	var ndjson []byte
	for _, mode := range cfg.modes {
		m, sample, err := runMode(ctx, cfg, mode, in, p, step)
		if m != nil {
			res.Runs[mode] = m
		}
		if len(ndjson) == 0 {
			ndjson = sample
		}
		if err != nil {
			writeOutputs(cfg, res, step) // what was measured so far, for the post-mortem
			return fmt.Errorf("%s: %w", mode, err)
		}
	}

	if !cfg.quick {
		if res.BatcherRSS, err = batcherRSSByFileSize(ctx, cfg, in, p, step); err != nil {
			res.Passed = false
			writeOutputs(cfg, res, step)
			return fmt.Errorf("batcher RSS: %w", err)
		}
	}

	res.Limits.GzipLevel = batcherGzipLevel(cfg.binDir)
	step("limit: gzip (level %d, klauspost/compress as the batcher) of %.0f MB of the delivered NDJSON", res.Limits.GzipLevel, float64(len(ndjson))/1e6)
	if res.Limits.GzipMBPerS, res.Limits.GzipRatio, err = gzipSpeed(ndjson, res.Limits.GzipLevel, cfg.limitsFor); err != nil {
		return fmt.Errorf("gzip limit: %w", err)
	}
	res.Limits.GzipEventsPerS = res.Limits.GzipMBPerS * 1e6 / avgLine(ndjson)

	res.finish()
	writeOutputs(cfg, res, step)
	step("done in %.0fs", time.Since(began).Seconds())
	if !res.Passed {
		return errors.New("delivered != accepted: see " + filepath.Join(cfg.outDir, "report.md"))
	}
	return nil
}

// batcherGzipLevel is the default --gzip-level of the batcher binary, read from its -h so the gzip
// limit follows the batcher (1 when it cannot be read: the fastest level, the most generous limit).
func batcherGzipLevel(binDir string) int {
	out, _ := exec.Command(filepath.Join(binDir, "batcher"), "-h").CombinedOutput()
	_, rest, ok := strings.Cut(string(out), "-gzip-level int")
	if !ok {
		return 1
	}
	m := regexp.MustCompile(`\(default (\d)\)`).FindStringSubmatch(strings.SplitN(rest, "\n  -", 2)[0])
	if m == nil {
		return 1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func avgLine(ndjson []byte) float64 {
	n := strings.Count(string(ndjson), "\n")
	return float64(len(ndjson)) / float64(max(n, 1))
}

func writeOutputs(cfg config, res *result, step func(string, ...any)) {
	if err := writeResults(cfg.outDir, res); err != nil {
		fmt.Fprintln(os.Stderr, "bench: write results:", err)
		return
	}
	step("wrote %s, %s and charts", filepath.Join(cfg.outDir, "latest.json"), filepath.Join(cfg.outDir, "report.md"))
}
