package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// modeResult is what one mode (all-in-one or separate processes) measured.
type modeResult struct {
	Processes []string `json:"processes"`

	// Throughput phase.
	AcceptedEvents      int64   `json:"accepted_events"`
	DeliveredEvents     int64   `json:"delivered_events"`
	DeliveredLines      int64   `json:"delivered_lines"`
	MissingEvents       int64   `json:"missing_events"`
	DuplicateEvents     int64   `json:"duplicate_events"`
	UnknownLines        int64   `json:"unknown_lines"`
	RetriedRequests     int64   `json:"retried_requests"`
	LoadSeconds         float64 `json:"load_s"`
	DeliverySeconds     float64 `json:"delivery_s"`
	AcceptedEventsPerS  float64 `json:"accepted_events_per_s"`
	DeliveredEventsPerS float64 `json:"delivered_events_per_s"`
	Files               int     `json:"files"`
	DeliveredMB         float64 `json:"delivered_compressed_mb"`
	LargestFileMB       float64 `json:"largest_file_mb"`
	AcceptedPerSecond   []int64 `json:"accepted_per_second"`
	// EventsStreamBytesPerEvent is what the EVENTS streams stored per accepted event (messages, headers
	// and JetStream's per-message overhead); FileBytesPerEvent is the gzipped files' bytes per event,
	// which the batcher writes to the object store BATCHES.
	EventsStreamBytesPerEvent float64 `json:"events_stream_bytes_per_event"`
	FileBytesPerEvent         float64 `json:"file_bytes_per_event"`
	DeliveredPerSecond        []int64 `json:"delivered_per_second"`

	// Latency phase.
	LatencyRate   int     `json:"latency_rate_events_per_s"`
	LatencyEvents int64   `json:"latency_events"`
	LatencyOK     bool    `json:"latency_delivered_equals_accepted"`
	LatencyP50S   float64 `json:"latency_p50_s"`
	LatencyP99S   float64 `json:"latency_p99_s"`
	LatencyMaxS   float64 `json:"latency_max_s"`
	latencies     []float64

	// Per process, over the throughput phase (first event sent to last event delivered).
	CPUSeconds           map[string]float64 `json:"cpu_s"`
	CPUSPerMillionEvents map[string]float64 `json:"cpu_s_per_million_events"`
	// Per process, over the whole mode (VmHWM).
	PeakRSSMB map[string]float64 `json:"peak_rss_mb"`
	// Per s3dest process: CPU by stage and hottest functions, from pprof over the throughput phase.
	ProfileStages map[string][]share `json:"profile_stages"`
	ProfileTop    map[string][]share `json:"profile_top_functions"`
}

// runMode starts s3dest in mode, runs both phases, stops it, and returns what it measured and a sample
// of the delivered NDJSON.
func runMode(ctx context.Context, cfg config, mode string, in *infra, p *payloads, step func(string, ...any)) (*modeResult, []byte, error) {
	step("%s: starting s3dest", mode)
	self := os.Getpid()
	for _, pid := range append(mapValues(in.processes()), self) {
		if err := resetPeakRSS(pid); err != nil {
			return nil, nil, fmt.Errorf("reset peak RSS: %w", err)
		}
	}
	var dep *deployment
	var err error
	if mode == "allinone" {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("s3dest-bench-aio-%d", time.Now().UnixNano()))
		defer os.RemoveAll(dir)
		dep, err = startAllInOne(ctx, cfg.binDir, dir, in, cfg.flush)
	} else {
		dep, err = startSeparate(ctx, cfg.binDir, in, cfg.flush)
	}
	if dep != nil {
		defer func() {
			dep.stop()
			// Each process's last output, for a post-mortem (warn level: quiet when all is well).
			for _, p := range dep.procs {
				_ = os.WriteFile(filepath.Join(cfg.outDir, mode+"-"+p.name+".log"), []byte(p.out.String()), 0o644)
			}
		}()
	}
	if err != nil {
		return nil, nil, err
	}
	step("%s: s3dest ready", mode)
	pids := in.processes()
	for name, pid := range dep.pids() {
		pids[name] = pid
	}
	pids["bench"] = self
	m := &modeResult{ProfileStages: map[string][]share{}, ProfileTop: map[string][]share{}}
	for name := range pids {
		m.Processes = append(m.Processes, name)
	}
	sort.Strings(m.Processes)
	cli := in.minio.s3()
	phase := map[string]string{"allinone": "aio", "separate": "sep"}[mode]

	sample, err := throughput(ctx, cfg, mode, phase+"T", dep, in, pids, p, m, step)
	if err != nil {
		return m, sample, err
	}
	if err := latency(ctx, cfg, mode, phase+"L", dep, cli, p, m, step); err != nil {
		return m, sample, err
	}
	m.PeakRSSMB = map[string]float64{}
	for name, pid := range pids {
		if m.PeakRSSMB[name], err = peakRSSMB(pid); err != nil {
			return m, sample, err
		}
	}
	step("%s: stopping s3dest", mode)
	return m, sample, nil
}

func mapValues(m map[string]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// throughput floods s3dest, waits until everything is delivered, and reads the bucket back.
func throughput(ctx context.Context, cfg config, mode, phase string, dep *deployment, in *infra, pids map[string]int, p *payloads, m *modeResult, step func(string, ...any)) ([]byte, error) {
	cli := in.minio.s3()
	src, err := dep.createSource(ctx, "bench-"+mode+"-throughput")
	if err != nil {
		return nil, err
	}
	cpu0, err := cpuSnapshot(pids)
	if err != nil {
		return nil, err
	}
	// Profile every s3dest process over the load and the drain after it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	pctx, pcancel := context.WithCancel(ctx)
	defer func() { pcancel(); wg.Wait() }() // on an early return, stop the profiles before m is read
	seconds := int((cfg.duration + cfg.flush).Seconds()) + 2
	profiled := map[string]string{"nats-server": in.natsOps}
	for name, ops := range dep.opsAddr {
		profiled[name] = ops
	}
	for name, ops := range profiled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prof, err := fetchProfile(pctx, ops, seconds, filepath.Join(cfg.outDir, fmt.Sprintf("%s-%s.pprof", mode, name)))
			if err != nil {
				step("%s: no profile of %s: %v", mode, name, err)
				return
			}
			stages, top := analyse(prof)
			mu.Lock()
			m.ProfileStages[name], m.ProfileTop[name] = stages, top
			mu.Unlock()
		}()
	}

	events0, err := eventsStreamBytes(ctx, in.natsURL)
	if err != nil {
		return nil, err
	}
	step("%s: throughput: %d senders post %d-event /v1/batch requests for %s", mode, cfg.conns, eventsPerRequest, cfg.duration)
	snd := newSender(dep.trackingURL, src.writeKey, cfg.conns, p)
	log, err := snd.flood(ctx, phase, cfg.conns, cfg.duration)
	if err != nil {
		return nil, err
	}
	accepted, lastAccept := log.accepted()
	m.AcceptedEvents, m.RetriedRequests = accepted, snd.rejected.Load()
	m.LoadSeconds = lastAccept.Sub(log.start).Seconds()
	m.AcceptedEventsPerS = float64(accepted) / m.LoadSeconds
	step("%s: accepted %d events (%.0f/s); waiting for delivery", mode, accepted, m.AcceptedEventsPerS)
	events1, err := eventsStreamBytes(ctx, in.natsURL)
	if err != nil {
		return nil, err
	}
	m.EventsStreamBytesPerEvent = float64(events1-events0) / float64(max(accepted, 1))

	var got int64
	werr := waitFor(ctx, cfg.deliverTimeout, "every accepted event to be delivered", func() bool {
		got, err = dep.deliveredEvents(ctx, src.destinationID)
		return err == nil && got >= accepted
	}, dep.procs...)
	cpu1, err := cpuSnapshot(pids)
	if err != nil {
		return nil, err
	}
	if werr != nil {
		step("%s: %v (status says %d of %d); reading back what arrived", mode, werr, got, accepted)
	}

	objs, err := listObjects(ctx, cli, src.id)
	if err != nil {
		return nil, err
	}
	t := newTally(log, phase)
	var lastSeen time.Time
	perObject := map[string]int64{}
	if err := readObjects(ctx, cli, objs, t, func(o object, _ time.Time) { perObject[o.key]++ }); err != nil {
		return nil, err
	}
	m.AcceptedPerSecond = make([]int64, int(time.Since(log.start).Seconds())+1)
	for _, reqs := range log.at {
		for _, at := range reqs {
			if !at.IsZero() {
				m.AcceptedPerSecond[int(at.Sub(log.start).Seconds())] += eventsPerRequest
			}
		}
	}
	m.DeliveredPerSecond = make([]int64, len(m.AcceptedPerSecond))
	for _, o := range objs {
		if o.lastModified.After(lastSeen) {
			lastSeen = o.lastModified
		}
		m.DeliveredMB += float64(o.size) / 1e6
		m.LargestFileMB = max(m.LargestFileMB, float64(o.size)/1e6)
		if s := int(o.lastModified.Sub(log.start).Seconds()); s >= 0 && s < len(m.DeliveredPerSecond) {
			m.DeliveredPerSecond[s] += perObject[o.key]
		}
	}
	m.Files = len(objs)
	m.DeliveredEvents, m.DeliveredLines = t.delivered(), t.lines
	m.FileBytesPerEvent = m.DeliveredMB * 1e6 / float64(max(m.DeliveredLines, 1))
	m.MissingEvents, m.DuplicateEvents, m.UnknownLines = t.missing(), t.duplicates, t.unknown
	m.DeliverySeconds = lastSeen.Sub(log.start).Seconds()
	if m.DeliverySeconds > 0 {
		m.DeliveredEventsPerS = float64(m.DeliveredEvents) / m.DeliverySeconds
	}
	m.CPUSeconds, m.CPUSPerMillionEvents = map[string]float64{}, map[string]float64{}
	var total float64
	for name := range pids {
		d := cpu1[name] - cpu0[name]
		m.CPUSeconds[name] = d
		total += d
		if m.DeliveredEvents > 0 {
			m.CPUSPerMillionEvents[name] = d / (float64(m.DeliveredEvents) / 1e6)
		}
	}
	m.CPUSeconds["total"] = total
	if m.DeliveredEvents > 0 {
		m.CPUSPerMillionEvents["total"] = total / (float64(m.DeliveredEvents) / 1e6)
	}
	step("%s: delivered %d of %d accepted events in %d files (%.0f/s end to end); %d missing, %d duplicates, %d unknown",
		mode, m.DeliveredEvents, accepted, m.Files, m.DeliveredEventsPerS, m.MissingEvents, m.DuplicateEvents, m.UnknownLines)
	wg.Wait()
	sample, err := sampleNDJSON(ctx, cli, objs, 48<<20)
	if err != nil {
		return nil, err
	}
	if !m.ok() {
		return sample, fmt.Errorf("delivered %d lines for %d accepted events (%d missing, %d duplicates, %d unknown)",
			m.DeliveredLines, accepted, m.MissingEvents, m.DuplicateEvents, m.UnknownLines)
	}
	return sample, nil
}

func (m *modeResult) ok() bool {
	return m.DeliveredLines == m.AcceptedEvents && m.DeliveredEvents == m.AcceptedEvents && m.MissingEvents == 0
}

// latency sends a fixed moderate rate while a poller lists the bucket every 50 ms; each event's
// latency is from its request's 200 to the first listing that shows its object.
func latency(ctx context.Context, cfg config, mode, phase string, dep *deployment, cli *s3.Client, p *payloads, m *modeResult, step func(string, ...any)) error {
	src, err := dep.createSource(ctx, "bench-"+mode+"-latency")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	seen := map[string]time.Time{}
	var polls int
	pollErr := make(chan error, 1)
	pctx, pstop := context.WithCancel(ctx)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			objs, err := listObjects(pctx, cli, src.id)
			at := time.Now()
			if err != nil && pctx.Err() == nil {
				pollErr <- err
				return
			}
			mu.Lock()
			for _, o := range objs {
				if _, ok := seen[o.key]; !ok {
					seen[o.key] = at
				}
			}
			polls++
			mu.Unlock()
			select {
			case <-pctx.Done():
				pollErr <- nil
				return
			case <-tick.C:
			}
		}
	}()
	defer pstop()

	step("%s: latency: %d events/s for %s, flush interval %s", mode, cfg.latencyRate, cfg.latencyFor, cfg.flush)
	log, err := newSender(dep.trackingURL, src.writeKey, 16, p).steady(ctx, phase, cfg.latencyRate, cfg.latencyFor)
	if err != nil {
		return err
	}
	accepted, _ := log.accepted()
	if err := waitFor(ctx, cfg.deliverTimeout, "the latency phase's events to be delivered", func() bool {
		got, err := dep.deliveredEvents(ctx, src.destinationID)
		return err == nil && got >= accepted
	}, dep.procs...); err != nil {
		return err
	}
	// One more full listing after the last delivery, then stop the poller.
	mu.Lock()
	after := polls + 2
	mu.Unlock()
	if err := waitFor(ctx, 30*time.Second, "the poller's next listing", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return polls >= after
	}); err != nil {
		return err
	}
	pstop()
	if err := <-pollErr; err != nil {
		return err
	}

	objs, err := listObjects(ctx, cli, src.id)
	if err != nil {
		return err
	}
	for i := range objs {
		objs[i].seen = seen[objs[i].key]
	}
	t := newTally(log, phase)
	if err := readObjects(ctx, cli, objs, t, func(o object, acceptedAt time.Time) {
		m.latencies = append(m.latencies, o.seen.Sub(acceptedAt).Seconds())
	}); err != nil {
		return err
	}
	sort.Float64s(m.latencies)
	m.LatencyRate, m.LatencyEvents = cfg.latencyRate, accepted
	m.LatencyOK = t.lines == accepted && t.delivered() == accepted && t.missing() == 0
	if n := len(m.latencies); n > 0 {
		m.LatencyP50S, m.LatencyP99S, m.LatencyMaxS = quantile(m.latencies, 0.50), quantile(m.latencies, 0.99), m.latencies[n-1]
	}
	step("%s: latency p50 %.2fs p99 %.2fs max %.2fs over %d events", mode, m.LatencyP50S, m.LatencyP99S, m.LatencyMaxS, len(m.latencies))
	if !m.LatencyOK {
		return fmt.Errorf("latency phase: delivered %d lines for %d accepted events (%d missing)", t.lines, accepted, t.missing())
	}
	return nil
}

// quantile of sorted values, nearest rank.
func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// rssPoint is the batcher's peak RSS at one file size.
type rssPoint struct {
	FlushIntervalS  float64 `json:"flush_interval_s"`
	RateEventsPerS  int     `json:"rate_events_per_s"`
	Files           int     `json:"files"`
	LargestFileMB   float64 `json:"largest_file_mb"`
	BatcherPeakRSS  float64 `json:"batcher_peak_rss_mb"`
	DeliveredEvents int64   `json:"delivered_events"`
	AcceptedEvents  int64   `json:"accepted_events"`
}

// batcherRSSByFileSize runs the separate processes at the same fixed rate with a short and a long flush
// interval, so only the file size changes, and reads the batcher's peak RSS in each.
func batcherRSSByFileSize(ctx context.Context, cfg config, in *infra, p *payloads, step func(string, ...any)) ([]rssPoint, error) {
	const rate = 5000
	var out []rssPoint
	for i, flush := range []time.Duration{2 * time.Second, 20 * time.Second} {
		step("batcher RSS: separate processes, %d events/s for 20s, flush interval %s", rate, flush)
		dep, err := startSeparate(ctx, cfg.binDir, in, flush)
		if err != nil {
			if dep != nil {
				dep.stop()
			}
			return out, err
		}
		pt, err := func() (rssPoint, error) {
			defer dep.stop()
			src, err := dep.createSource(ctx, fmt.Sprintf("bench-rss-%d", i))
			if err != nil {
				return rssPoint{}, err
			}
			phase := fmt.Sprintf("rss%d", i)
			log, err := newSender(dep.trackingURL, src.writeKey, 16, p).steady(ctx, phase, rate, 20*time.Second)
			if err != nil {
				return rssPoint{}, err
			}
			accepted, _ := log.accepted()
			if err := waitFor(ctx, cfg.deliverTimeout+flush, "the batcher RSS pass to be delivered", func() bool {
				got, err := dep.deliveredEvents(ctx, src.destinationID)
				return err == nil && got >= accepted
			}, dep.procs...); err != nil {
				return rssPoint{}, err
			}
			pt := rssPoint{FlushIntervalS: flush.Seconds(), RateEventsPerS: rate, AcceptedEvents: accepted}
			if pt.BatcherPeakRSS, err = peakRSSMB(dep.pids()["batcher"]); err != nil {
				return pt, err
			}
			objs, err := listObjects(ctx, in.minio.s3(), src.id)
			if err != nil {
				return pt, err
			}
			t := newTally(log, phase)
			if err := readObjects(ctx, in.minio.s3(), objs, t, nil); err != nil {
				return pt, err
			}
			pt.Files, pt.DeliveredEvents = len(objs), t.delivered()
			for _, o := range objs {
				pt.LargestFileMB = max(pt.LargestFileMB, float64(o.size)/1e6)
			}
			if t.lines != accepted || t.missing() != 0 {
				return pt, fmt.Errorf("batcher RSS pass: delivered %d lines for %d accepted events", t.lines, accepted)
			}
			return pt, nil
		}()
		if err != nil {
			return out, err
		}
		step("batcher RSS: files up to %.1f MB, batcher peak RSS %.0f MB", pt.LargestFileMB, pt.BatcherPeakRSS)
		out = append(out, pt)
	}
	return out, nil
}
