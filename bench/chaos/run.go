package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/s3dest/s3dest/pkg/procfile"
)

// runner drives the scenarios against one cluster under one load.
type runner struct {
	cfg  config
	c    *cluster
	js   jetstream.JetStream
	rdb  *redis.Client
	load *load
	dl   *deliveries

	mu      sync.Mutex
	samples []sample
}

// sample is the load's accepted and the copiers' delivered totals at one moment; accepted − delivered
// is the backlog.
type sample struct {
	at                  time.Time
	accepted, delivered int64
}

func (s sample) backlog() int64 { return s.accepted - s.delivered }

func (r *runner) sampleEvery(ctx context.Context, d time.Duration) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.mu.Lock()
			r.samples = append(r.samples, sample{now, r.load.total.Load(), r.dl.total.Load()})
			r.mu.Unlock()
		}
	}
}

func (r *runner) since(t time.Time) []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sample
	for _, s := range r.samples {
		if !s.at.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// scenarioResult is one row of the report.
type scenarioResult struct {
	Name  string `json:"name"`
	Fault string `json:"fault"`
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
	// Sent events were enqueued in the client; Accepted were answered 2xx; ClientGaveUp were dropped by
	// the client after its 10 attempts (never answered 2xx: not owed).
	Sent         int `json:"sent"`
	Accepted     int `json:"accepted"`
	ClientGaveUp int `json:"clientGaveUp"`
	// Delivered is the distinct accepted events found in the bucket; Lost the accepted ones not found
	// after the drain; Duplicated the events found more than once; DeliveredUnacked the events found
	// that the client never saw accepted (a response lost to the fault: allowed, they were stored).
	Delivered        int `json:"delivered"`
	Lost             int `json:"lost"`
	Duplicated       int `json:"duplicated"`
	DeliveredUnacked int `json:"deliveredUnacked"`
	// PreRate is the delivered events/s over the window before the fault; FaultS how long the fault
	// lasted; RecoverS the seconds from its end until the backlog (accepted − delivered) is back within
	// its pre-fault range and stays there for three flush intervals: delivery is back to its pre-fault
	// rate with what piled up during the fault delivered. Absent when it did not recover in time.
	PreRate  float64  `json:"preRateEventsPerS"`
	FaultS   float64  `json:"faultS"`
	RecoverS *float64 `json:"recoverS,omitempty"`
}

// runScenario runs one scenario under the running load: a pre-fault window, the fault, the recovery.
func (r *runner) runScenario(ctx context.Context, s scenario, step func(string, ...any)) *scenarioResult {
	res := &scenarioResult{Name: s.name, Fault: s.fault}
	r.load.tag.Store(&s.name)
	began := time.Now()
	if err := sleepCtx(ctx, r.cfg.pre); err != nil { // the pre-fault window: a timer
		res.Error = err.Error()
		return res
	}
	pre := r.since(began.Add(r.cfg.pre / 4)) // the first quarter still delivers the previous tag's backlog
	var maxBacklog int64
	for _, p := range pre {
		maxBacklog = max(maxBacklog, p.backlog())
	}
	if len(pre) > 1 {
		res.PreRate = float64(pre[len(pre)-1].delivered-pre[0].delivered) / pre[len(pre)-1].at.Sub(pre[0].at).Seconds()
	}
	faultAt := time.Now()
	step("%s: %s", s.name, s.fault)
	note, err := s.inject(ctx, r)
	ended := time.Now()
	res.Note, res.FaultS = note, ended.Sub(faultAt).Seconds()
	if err != nil {
		res.Error = err.Error()
		step("%s: %v", s.name, err)
	}
	// Recovered: the backlog is within its pre-fault range (plus a second of load) at every sample for
	// three flush intervals; the recovery time is the first of them.
	limit := maxBacklog + int64(r.cfg.rate)
	hold := 3 * r.cfg.flush
	var since time.Time
	_ = waitFor(ctx, r.cfg.recover, s.name+" to recover", func() bool {
		since = time.Time{}
		for _, p := range r.since(ended) {
			switch {
			case p.backlog() > limit:
				since = time.Time{}
			case since.IsZero():
				since = p.at
			}
		}
		return !since.IsZero() && time.Since(since) >= hold
	})
	if !since.IsZero() && time.Since(since) >= hold {
		rec := since.Sub(ended).Seconds()
		res.RecoverS = &rec
		step("%s: %s; recovered %.1f s after the fault's end", s.name, note, rec)
	} else {
		step("%s: %s; not back to the pre-fault backlog within %s", s.name, note, r.cfg.recover)
	}
	if err := r.c.awaitAll(ctx, 2*time.Minute); err != nil && res.Error == "" {
		res.Error = "after the fault: " + err.Error()
	}
	return res
}

// report is chaos.json.
type report struct {
	Mode           string            `json:"mode"`
	StartedAt      time.Time         `json:"startedAt"`
	Seconds        float64           `json:"seconds"`
	RateEventsPerS int               `json:"rateEventsPerS"`
	FlushIntervalS float64           `json:"flushIntervalS"`
	Procfile       string            `json:"procfile"`
	Scenarios      []*scenarioResult `json:"scenarios"`
	Passed         bool              `json:"passed"`
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	for _, b := range []string{"s3dest", "ingest", "batcher", "stager", "copier", "validator", "admin"} {
		if _, err := os.Stat(filepath.Join(cfg.bin, b)); err != nil {
			return fmt.Errorf("%s: run `make build` first", filepath.Join(cfg.bin, b))
		}
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	began := time.Now()
	step := func(format string, args ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	c, err := startCluster(ctx, cfg, step)
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the cluster")
		c.close(cfg.keep)
	}()
	step("bootstrapped: source %s, bucket %s, %d ingest replicas, %d NATS nodes", c.sum.SourceID, c.sum.Bucket, len(c.sum.TrackingURLs), len(c.sum.NATSURLs))

	nc, err := nats.Connect(strings.Join(c.sum.NATSURLs, ","), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	dl, err := watchDeliveries(ctx, js, c.sum.DestinationID)
	if err != nil {
		return err
	}
	defer dl.stop()
	redisLine := c.byProg["redis-server"][0]
	rdb := redis.NewClient(&redis.Options{Addr: procfile.ProbeOf(c.Command(redisLine)).TCP})
	defer rdb.Close()

	l, err := startLoad(c.sum, cfg.rate, "steady")
	if err != nil {
		return err
	}
	r := &runner{cfg: cfg, c: c, js: js, rdb: rdb, load: l, dl: dl}
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go r.sampleEvery(sctx, 250*time.Millisecond)
	step("steady load: %d events/s through Segment's Go client at %s", cfg.rate, strings.Join(c.sum.TrackingURLs, ", "))
	if err := waitFor(ctx, 2*time.Minute, "the first delivery", func() bool { return dl.total.Load() > 0 }); err != nil {
		l.close()
		return fmt.Errorf("%w%s", err, c.deadLines())
	}
	results := []*scenarioResult{{Name: "steady", Fault: "none: the load before the first fault"}}
	for _, name := range cfg.scenarios {
		res := r.runScenario(ctx, scenarioNamed(name), step)
		results = append(results, res)
		if ctx.Err() != nil {
			l.close()
			return ctx.Err()
		}
	}
	step("stopping the load; the clients flush what they hold")
	l.close()
	stopSampling()

	step("draining: reading s3://%s/segment-logs/%s/ back until every accepted event is there", c.sum.Bucket, c.sum.SourceID)
	b := newBucket(c.sum)
	deadline := time.Now().Add(cfg.drain)
	quietFor := 3*cfg.flush + 2*time.Second
	lastNew := time.Now()
	var readErr error
	for {
		n, err := b.refresh(ctx)
		readErr = err
		if n > 0 {
			lastNew = time.Now()
		}
		missing := 0
		for id := range l.accepted {
			if b.counts[id] == 0 {
				missing++
			}
		}
		if missing == 0 && time.Since(lastNew) >= quietFor || time.Now().After(deadline) || ctx.Err() != nil {
			step("read %d objects, %d lines; %d accepted events missing", len(b.read), b.lines, missing)
			break
		}
		if err := sleepCtx(ctx, time.Second); err != nil { // the read-back's poll interval
			return err
		}
	}

	byName := map[string]*scenarioResult{}
	for _, res := range results {
		byName[res.Name] = res
	}
	other := &scenarioResult{Name: "(not ours)"}
	row := func(id string) *scenarioResult {
		if res := byName[scenarioOf(id)]; res != nil {
			return res
		}
		return other
	}
	for tag, n := range l.sent {
		if res := byName[tag]; res != nil {
			res.Sent, res.ClientGaveUp = n, l.failed[tag]
		}
	}
	for id := range l.accepted {
		res := row(id)
		res.Accepted++
		if b.counts[id] == 0 {
			res.Lost++
		}
	}
	for id, n := range b.counts {
		res := row(id)
		if l.accepted[id] {
			res.Delivered++
		} else {
			res.DeliveredUnacked++
		}
		if n > 1 {
			res.Duplicated++
		}
	}
	if other.Delivered+other.DeliveredUnacked > 0 {
		results = append(results, other)
	}
	rep := report{Mode: map[bool]string{true: "quick", false: "full"}[cfg.quick], StartedAt: began.UTC(),
		Seconds: time.Since(began).Seconds(), RateEventsPerS: cfg.rate, FlushIntervalS: cfg.flush.Seconds(),
		Procfile: cfg.procfile, Scenarios: results, Passed: readErr == nil}
	var failures []string
	for _, res := range results {
		if res.Lost > 0 || res.Duplicated > 0 || res.Error != "" {
			rep.Passed = false
			failures = append(failures, fmt.Sprintf("%s (lost %d, duplicated %d%s)", res.Name, res.Lost, res.Duplicated, map[bool]string{true: ", " + res.Error}[res.Error != ""]))
		}
	}
	if err := writeReport(cfg, rep); err != nil {
		return err
	}
	step("done in %.0f s: %s", time.Since(began).Seconds(), filepath.Join(cfg.out, reportName(cfg)+".md"))
	if readErr != nil {
		return fmt.Errorf("read-back: %w", readErr)
	}
	if len(failures) > 0 {
		return errors.New("failed: " + strings.Join(failures, "; "))
	}
	return nil
}
