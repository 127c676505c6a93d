package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/procfile"
)

// How long the pipeline's own timers run, so that a stop outlasts them: a batcher's lease
// (services/batcher/lease.go, leaseTTL) and the copier's ack wait (--ack-wait, its default: the Procfile
// sets none). A stopped process is resumed this much past them.
const (
	batcherLease  = 15 * time.Second
	copierAckWait = 30 * time.Second
	pastTimers    = 5 * time.Second
)

// scenario is one fault. inject starts it and returns once it has ended (the killed line started again,
// the fault's timer run out), with a note on what exactly it hit.
type scenario struct {
	name   string
	fault  string
	quick  bool
	inject func(ctx context.Context, r *runner) (note string, err error)
}

var scenarios = []scenario{
	{"kill-ingest", "SIGKILL an ingest replica, start its line again", true, killLine("ingest", 0)},
	{"kill-batcher", "SIGKILL the batcher that leases the source, start its line again", true, killBatcher},
	{"kill-stager", "SIGKILL a stager replica, start its line again", false, killLine("stager", 0)},
	{"kill-copier", "SIGKILL a copier replica, start its line again", true, killLine("copier", 0)},
	{"kill-admin", "SIGKILL admin, start its line again", false, killLine("admin", 0)},
	{"kill-validator", "SIGKILL validator, start its line again", false, killLine("validator", 0)},
	{"kill-redis", "SIGKILL redis-server, start its line again", false, killLine("redis-server", 0)},
	{"kill-minio", "SIGKILL MinIO, start its line again", false, killLine("minio", 0)},
	{"kill-sts-gate", "SIGKILL the STS trust gate, start its line again", false, killLine("s3dest", 0)},
	{"kill-nats-events-leader", "SIGKILL the NATS node leading the EVENTS stream, start its line again", true, killNATSEventsLeader},
	{"kill-nats-consumer-leader", "SIGKILL the NATS node leading a BATCHES consumer (another than EVENTS' leader when one is), start it again", false, killNATSConsumerLeader},
	{"redis-restart", "redis-server stopped (SIGTERM) and started again", false, restartRedis},
	{"redis-flushall", "FLUSHALL on redis-server", true, flushRedis},
	{"stop-batcher", "SIGSTOP the batcher that leases the source for its lease + 5 s, then SIGCONT", false, stopBatcher},
	{"stop-copier", "SIGSTOP a copier for its ack wait + 5 s, then SIGCONT", false, stopCopier},
	{"s3-errors", "S3 answers 503 SlowDown and 500 InternalError to the stagers and copiers for 30 s", false, s3Errors},
	{"sts-refusing", "STS answers AccessDenied to every AssumeRole for 60 s; the copiers' cached credentials dropped at its start", false, stsRefusing},
	{"nats-partition", "the NATS node leading EVENTS cut from its routes for 30 s (a minority partition), then healed", false, natsPartition},
}

func killLine(program string, i int) func(context.Context, *runner) (string, error) {
	return func(ctx context.Context, r *runner) (string, error) {
		lines := r.c.byProg[program]
		if i >= len(lines) {
			return "", fmt.Errorf("the Procfile has no line #%d running %s", i+1, program)
		}
		return "SIGKILL " + lines[i], r.killAndStart(lines[i])
	}
}

func (r *runner) killAndStart(line string) error {
	r.c.Kill(line)
	return r.c.Start(line)
}

// batcherOwner is the batcher line that leases the demo source: the one whose dedupe memory grows
// under the load (an owner remembers every messageId it seals).
func (r *runner) batcherOwner(ctx context.Context) (string, error) {
	lines := r.c.byProg["batcher"]
	first := map[string]float64{}
	for _, l := range lines {
		first[l] = r.c.metric(ctx, l, "s3dest_batcher_dedupe_ids")
	}
	var owner string
	err := waitFor(ctx, 6*r.cfg.flush, "a batcher's dedupe memory to grow (the source's owner)", func() bool {
		for _, l := range lines {
			if v := r.c.metric(ctx, l, "s3dest_batcher_dedupe_ids"); v > first[l] && first[l] >= 0 {
				owner = l
				return true
			}
		}
		return false
	})
	return owner, err
}

func killBatcher(ctx context.Context, r *runner) (string, error) {
	owner, err := r.batcherOwner(ctx)
	if err != nil {
		return "", err
	}
	return "SIGKILL " + owner + " (the source's owner)", r.killAndStart(owner)
}

func stopBatcher(ctx context.Context, r *runner) (string, error) {
	owner, err := r.batcherOwner(ctx)
	if err != nil {
		return "", err
	}
	return "SIGSTOP " + owner + " (the source's owner) for " + (batcherLease + pastTimers).String(), r.stopFor(ctx, owner, batcherLease+pastTimers)
}

func stopCopier(ctx context.Context, r *runner) (string, error) {
	line := r.c.byProg["copier"][0]
	return "SIGSTOP " + line + " for " + (copierAckWait + pastTimers).String(), r.stopFor(ctx, line, copierAckWait+pastTimers)
}

// stopFor SIGSTOPs a line's processes for d, then SIGCONTs them.
func (r *runner) stopFor(ctx context.Context, line string, d time.Duration) error {
	if err := r.c.Signal(line, syscall.SIGSTOP); err != nil {
		return err
	}
	defer r.c.Signal(line, syscall.SIGCONT)
	return sleepCtx(ctx, d) // the fault's window: a timer, not a wait for something
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// eventsLeader is the line of the NATS node leading the EVENTS stream.
func (r *runner) eventsLeader(ctx context.Context) (string, string, error) {
	s, err := r.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return "", "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", "", fmt.Errorf("EVENTS has no leader")
	}
	line, err := r.c.natsLine(info.Cluster.Leader)
	return line, info.Cluster.Leader, err
}

func killNATSEventsLeader(ctx context.Context, r *runner) (string, error) {
	line, server, err := r.eventsLeader(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("SIGKILL %s (%s, EVENTS leader)", line, server), r.killAndStart(line)
}

func killNATSConsumerLeader(ctx context.Context, r *runner) (string, error) {
	_, eventsLeader, err := r.eventsLeader(ctx)
	if err != nil {
		return "", err
	}
	s, err := r.js.Stream(ctx, bus.StreamBatches)
	if err != nil {
		return "", err
	}
	var consumer, leader string
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if info.Cluster == nil || info.Cluster.Leader == "" {
			continue
		}
		if consumer == "" || leader == eventsLeader && info.Cluster.Leader != eventsLeader {
			consumer, leader = info.Name, info.Cluster.Leader
		}
	}
	if err := list.Err(); err != nil && err != jetstream.ErrEndOfData {
		return "", err
	}
	if consumer == "" {
		return "", fmt.Errorf("BATCHES has no consumer with a leader")
	}
	line, err := r.c.natsLine(leader)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("SIGKILL %s (%s, leader of consumer %s)", line, leader, consumer), r.killAndStart(line)
}

func restartRedis(ctx context.Context, r *runner) (string, error) {
	line := r.c.byProg["redis-server"][0]
	if err := r.c.Signal(line, syscall.SIGTERM); err != nil {
		return "", err
	}
	select {
	case <-r.c.Done(line):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return "SIGTERM " + line + ", started again once it exited", r.c.Start(line)
}

func flushRedis(ctx context.Context, r *runner) (string, error) {
	return "FLUSHALL", r.rdb.FlushAll(ctx).Err()
}

func s3Errors(ctx context.Context, r *runner) (string, error) {
	before := r.c.s3.n.Load()
	r.c.s3.failing.Store(true)
	err := sleepCtx(ctx, 30*time.Second)
	r.c.s3.failing.Store(false)
	return fmt.Sprintf("%d S3 requests answered 503/500", r.c.s3.n.Load()-before), err
}

// stsRefusing makes STS refuse, and makes the copiers need it: their credentials are cached in Redis
// and in each process for about an hour, so the cache keys are deleted and both copiers restarted.
func stsRefusing(ctx context.Context, r *runner) (string, error) {
	before := r.c.sts.n.Load()
	r.c.sts.failing.Store(true)
	defer r.c.sts.failing.Store(false)
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	keys, err := r.rdb.Keys(ctx, "s3dest:creds:*").Result()
	if err != nil {
		return "", err
	}
	if len(keys) > 0 {
		if err := r.rdb.Del(ctx, keys...).Err(); err != nil {
			return "", err
		}
	}
	for _, line := range r.c.byProg["copier"] {
		if err := r.killAndStart(line); err != nil {
			return "", err
		}
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-timer.C:
	}
	return fmt.Sprintf("%d cached credentials dropped, copiers restarted; %d AssumeRole refused", len(keys), r.c.sts.n.Load()-before), nil
}

// natsPartition cuts the EVENTS leader's node from its peers: every route proxy to or from it stops
// (its connections closed, new ones refused) until the fault's end. The cut is checked: the node's
// /routez must show no route.
func natsPartition(ctx context.Context, r *runner) (string, error) {
	line, server, err := r.eventsLeader(ctx)
	if err != nil {
		return "", err
	}
	proxies := r.c.routes[line]
	for _, p := range proxies {
		p.Stop()
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	heal := func() error {
		for _, p := range proxies {
			if err := p.Start(); err != nil {
				return fmt.Errorf("heal route proxy %s: %w", p.Name, err)
			}
		}
		return nil
	}
	routez := "http://127.0.0.1:" + procfile.FlagValue(r.c.Command(line), "-m") + "/routez"
	var routes int
	if err := waitFor(ctx, 15*time.Second, line+" to have no route", func() bool {
		routes = numRoutes(ctx, routez)
		return routes == 0
	}); err != nil {
		_ = heal()
		return "", fmt.Errorf("partition not achieved: %s still has %d routes (one bypasses the proxies): %w", line, routes, err)
	}
	select {
	case <-ctx.Done():
		_ = heal()
		return "", ctx.Err()
	case <-timer.C:
	}
	return fmt.Sprintf("%s (%s, EVENTS leader) cut from its %d route proxies", line, server, len(proxies)), heal()
}

func numRoutes(ctx context.Context, routez string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, routez, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var z struct {
		NumRoutes int `json:"num_routes"`
	}
	if json.NewDecoder(resp.Body).Decode(&z) != nil {
		return -1
	}
	return z.NumRoutes
}

// waitFor polls cond every 200 ms until it holds, or fails after timeout: a wait on a condition.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func scenarioNamed(name string) scenario {
	i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
	return scenarios[i]
}
