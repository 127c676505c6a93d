package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// result is bench/results/latest.json. The top-level numbers are the all-in-one run's (the target's
// mode), or the only mode run; runs holds every mode.
type result struct {
	Mode             string    `json:"mode"`
	StartedAt        time.Time `json:"started_at"`
	Machine          machine   `json:"machine"`
	FlushIntervalS   float64   `json:"flush_interval_s"`
	Connections      int       `json:"connections"`
	EventsPerRequest int       `json:"events_per_request"`
	Events           string    `json:"events"` // padded or realistic
	EventBytes       float64   `json:"event_bytes"`

	HeadlineMode         string             `json:"headline_mode"`
	AcceptedEvents       int64              `json:"accepted_events"`
	DeliveredEvents      int64              `json:"delivered_events"`
	AcceptedEventsPerS   float64            `json:"accepted_events_per_s"`
	DeliveredEventsPerS  float64            `json:"delivered_events_per_s"`
	LatencyP50S          float64            `json:"latency_p50_s"`
	LatencyP99S          float64            `json:"latency_p99_s"`
	LatencyMaxS          float64            `json:"latency_max_s"`
	CPUSPerMillionEvents map[string]float64 `json:"cpu_s_per_million_events"`
	PeakRSSMB            map[string]float64 `json:"peak_rss_mb"`

	JetStreamPublishEventsPerS float64 `json:"jetstream_publish_events_per_s"`
	GzipMBPerS                 float64 `json:"gzip_mb_per_s"`
	MinIOPutMBPerS             float64 `json:"minio_put_mb_per_s"`
	Limits                     limits  `json:"limits"`
	// Ratios of s3dest to each limit (1 = as fast as the bare component).
	Ratios map[string]float64 `json:"ratios"`

	// BatcherRSS is the batcher's peak RSS at two file sizes, same rate (full mode).
	BatcherRSS []rssPoint `json:"batcher_rss_by_file_size,omitempty"`

	Targets []target               `json:"targets"`
	Passed  bool                   `json:"passed"`
	Runs    map[string]*modeResult `json:"runs"`
}

type machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryGB  string `json:"memory_gb"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go"`
}

type target struct {
	Name   string `json:"name"`
	Met    bool   `json:"met"`
	Actual string `json:"actual"`
	Note   string `json:"note,omitempty"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[0], "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGB = fmt.Sprintf("%.1f", kb/1e6)
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

const targetEventsPerS = 50_000

// finish fills the headline numbers, the ratios and the targets from the runs.
func (r *result) finish() {
	r.JetStreamPublishEventsPerS, r.GzipMBPerS, r.MinIOPutMBPerS = r.Limits.JetStreamPublishEventsPerS, r.Limits.GzipMBPerS, r.Limits.MinIOPutMBPerS
	r.Passed = len(r.Runs) > 0
	for _, m := range r.Runs {
		r.Passed = r.Passed && m.ok() && m.LatencyOK
	}
	r.HeadlineMode = "allinone"
	if r.Runs["allinone"] == nil {
		r.HeadlineMode = "separate"
	}
	h := r.Runs[r.HeadlineMode]
	if h == nil {
		return
	}
	r.AcceptedEvents, r.DeliveredEvents, r.AcceptedEventsPerS, r.DeliveredEventsPerS = h.AcceptedEvents, h.DeliveredEvents, h.AcceptedEventsPerS, h.DeliveredEventsPerS
	r.LatencyP50S, r.LatencyP99S, r.LatencyMaxS = h.LatencyP50S, h.LatencyP99S, h.LatencyMaxS
	r.CPUSPerMillionEvents, r.PeakRSSMB = h.CPUSPerMillionEvents, h.PeakRSSMB
	r.Ratios = map[string]float64{}
	if r.Limits.JetStreamPublishEventsPerS > 0 {
		r.Ratios["accepted_to_jetstream_publish"] = h.AcceptedEventsPerS / r.Limits.JetStreamPublishEventsPerS
		r.Ratios["delivered_to_jetstream_publish"] = h.DeliveredEventsPerS / r.Limits.JetStreamPublishEventsPerS
	}
	if r.Limits.GzipEventsPerS > 0 {
		r.Ratios["delivered_to_gzip_one_core"] = h.DeliveredEventsPerS / r.Limits.GzipEventsPerS
	}
	if r.Limits.MinIOPutMBPerS > 0 && h.DeliverySeconds > 0 {
		r.Ratios["delivered_compressed_mb_per_s_to_minio_put"] = h.DeliveredMB / h.DeliverySeconds / r.Limits.MinIOPutMBPerS
	}

	r.Targets = append(r.Targets, target{
		Name:   fmt.Sprintf(">= %d events/s delivered end to end, all-in-one, on this machine", targetEventsPerS),
		Met:    r.HeadlineMode == "allinone" && h.DeliveredEventsPerS >= targetEventsPerS,
		Actual: fmt.Sprintf("%.0f events/s (%s)", h.DeliveredEventsPerS, r.HeadlineMode),
	})
	if t := &r.Targets[0]; !t.Met {
		t.Note = fmt.Sprintf("missed by %.0f events/s (%.0f%%)", targetEventsPerS-h.DeliveredEventsPerS, 100*(1-h.DeliveredEventsPerS/targetEventsPerS))
	}
	modes := sortedKeys(r.Runs)
	var eq []string
	allEq := true
	for _, k := range modes {
		m := r.Runs[k]
		eq = append(eq, fmt.Sprintf("%s: %d delivered / %d accepted", k, m.DeliveredEvents, m.AcceptedEvents))
		allEq = allEq && m.ok() && m.LatencyOK
	}
	r.Targets = append(r.Targets, target{Name: "delivered == accepted (else the run fails)", Met: allEq, Actual: strings.Join(eq, "; ")})
	limit := r.FlushIntervalS + 2
	var lat []string
	latOK := true
	for _, k := range modes {
		m := r.Runs[k]
		lat = append(lat, fmt.Sprintf("%s: p99 %.2f s", k, m.LatencyP99S))
		latOK = latOK && m.LatencyP99S <= limit && m.LatencyP99S > 0
	}
	r.Targets = append(r.Targets, target{Name: fmt.Sprintf("p99 latency <= flush interval + 2 s = %.1f s", limit), Met: latOK, Actual: strings.Join(lat, "; ")})
	rss := target{Name: "batcher RSS independent of file size (peak RSS with ~10x larger files within 25%)"}
	if b := r.BatcherRSS; len(b) == 2 {
		grow := b[1].BatcherPeakRSS/b[0].BatcherPeakRSS - 1
		rss.Met = grow <= 0.25
		rss.Actual = fmt.Sprintf("%.0f MB with files up to %.1f MB, %.0f MB with files up to %.1f MB (%+.0f%%), same %d events/s",
			b[0].BatcherPeakRSS, b[0].LargestFileMB, b[1].BatcherPeakRSS, b[1].LargestFileMB, 100*grow, b[0].RateEventsPerS)
	} else {
		rss.Actual = "not measured: quick mode runs all-in-one only; `make bench` runs the batcher alone at two file sizes"
	}
	r.Targets = append(r.Targets, rss)
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeResults(dir string, r *result) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var charts []string
	for _, mode := range sortedKeys(r.Runs) {
		m := r.Runs[mode]
		name := "throughput-" + mode + ".png"
		if err := throughputChart(filepath.Join(dir, name), mode, m); err != nil {
			return fmt.Errorf("chart %s: %w", name, err)
		}
		charts = append(charts, name)
		if len(m.latencies) > 0 {
			name = "latency-" + mode + ".png"
			if err := latencyChart(filepath.Join(dir, name), mode, m, r.FlushIntervalS); err != nil {
				return fmt.Errorf("chart %s: %w", name, err)
			}
			charts = append(charts, name)
		}
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(markdown(r, charts)), 0o644)
}

func throughputChart(path, mode string, m *modeResult) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("s3dest %s: events per second (flood, then drain)", mode)
	p.X.Label.Text = "seconds since the first request"
	p.Y.Label.Text = "events/s"
	series := func(v []int64) plotter.XYs {
		xy := make(plotter.XYs, len(v))
		for i, n := range v {
			xy[i].X, xy[i].Y = float64(i), float64(n)
		}
		return xy
	}
	if err := plotutil.AddLinePoints(p, "accepted (200)", series(m.AcceptedPerSecond), "delivered (object visible)", series(m.DeliveredPerSecond)); err != nil {
		return err
	}
	p.Legend.Top = true
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}

func latencyChart(path, mode string, m *modeResult, flush float64) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("s3dest %s: latency from 200 to object visible (%d events/s, flush %.1fs)", mode, m.LatencyRate, flush)
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "events"
	h, err := plotter.NewHist(plotter.Values(m.latencies), 40)
	if err != nil {
		return err
	}
	p.Add(h)
	for _, q := range []struct {
		name string
		v    float64
	}{{"p50", m.LatencyP50S}, {"p99", m.LatencyP99S}, {"target", flush + 2}} {
		l, err := plotter.NewLine(plotter.XYs{{X: q.v, Y: 0}, {X: q.v, Y: h.Bins[0].Weight}})
		if err != nil {
			return err
		}
		maxW := 0.0
		for _, b := range h.Bins {
			maxW = max(maxW, b.Weight)
		}
		l.XYs[1].Y = maxW
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = map[string]color.Color{"p50": plotutil.Color(2), "p99": plotutil.Color(3), "target": plotutil.Color(0)}[q.name]
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s %.2fs", q.name, q.v), l)
	}
	p.Legend.Top = true
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}

func markdown(r *result, charts []string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# s3dest benchmark (%s)", r.Mode)
	w("")
	w("%s on %s: %d cores (%s), %s GB, Linux %s, %s. Flush interval %.1f s; %d senders; %d %s events of %.0f bytes per /v1/batch request.",
		r.StartedAt.Format(time.RFC3339), "this machine", r.Machine.Cores, r.Machine.CPU, r.Machine.MemoryGB, r.Machine.Kernel, r.Machine.GoVersion,
		r.FlushIntervalS, r.Connections, r.EventsPerRequest, r.Events, r.EventBytes)
	w("Real components: nats-server (JetStream, file storage, own process), redis-server, MinIO (staging and customer bucket) behind the STS trust gate.")
	if r.Mode == "quick" {
		w("Quick mode: all-in-one only, short phases; `make bench` adds the services as separate processes.")
	}
	w("")
	w("## Targets")
	w("")
	w("| target | met | actual | note |")
	w("|---|---|---|---|")
	for _, t := range r.Targets {
		w("| %s | %s | %s | %s |", t.Name, map[bool]string{true: "yes", false: "**no**"}[t.Met], t.Actual, t.Note)
	}
	w("")
	w("## Results")
	w("")
	modes := sortedKeys(r.Runs)
	w("| | %s |", strings.Join(modes, " | "))
	w("|---|%s", strings.Repeat("---|", len(modes)))
	row := func(name string, f func(m *modeResult) string) {
		var cells []string
		for _, k := range modes {
			cells = append(cells, f(r.Runs[k]))
		}
		w("| %s | %s |", name, strings.Join(cells, " | "))
	}
	row("accepted events", func(m *modeResult) string { return fmt.Sprint(m.AcceptedEvents) })
	row("delivered events (read back, distinct)", func(m *modeResult) string { return fmt.Sprint(m.DeliveredEvents) })
	row("missing / duplicate / unknown", func(m *modeResult) string {
		return fmt.Sprintf("%d / %d / %d", m.MissingEvents, m.DuplicateEvents, m.UnknownLines)
	})
	row("accepted events/s", func(m *modeResult) string { return fmt.Sprintf("%.0f", m.AcceptedEventsPerS) })
	row("delivered events/s (first request → last object)", func(m *modeResult) string { return fmt.Sprintf("%.0f", m.DeliveredEventsPerS) })
	row("files, compressed MB, largest file MB", func(m *modeResult) string {
		return fmt.Sprintf("%d, %.1f, %.2f", m.Files, m.DeliveredMB, m.LargestFileMB)
	})
	row("bytes written to JetStream per event: EVENTS + BATCHES (the gzipped file) = total", func(m *modeResult) string {
		return fmt.Sprintf("%.0f + %.0f = %.0f", m.EventsStreamBytesPerEvent, m.FileBytesPerEvent, m.EventsStreamBytesPerEvent+m.FileBytesPerEvent)
	})
	row("retried requests (non-200, retried with the same messageIds)", func(m *modeResult) string { return fmt.Sprint(m.RetriedRequests) })
	row("latency p50 / p99 / max (s)", func(m *modeResult) string {
		return fmt.Sprintf("%.2f / %.2f / %.2f (%d events at %d/s)", m.LatencyP50S, m.LatencyP99S, m.LatencyMaxS, m.LatencyEvents, m.LatencyRate)
	})
	w("")
	w("### CPU-seconds per million delivered events, peak RSS (MB), per process")
	w("")
	w("CPU from /proc/<pid>/stat (utime+stime) over the throughput phase; peak RSS is VmHWM over the mode. `bench` is the load generator, the STS gate and nothing else during the phase.")
	w("")
	for _, k := range modes {
		m := r.Runs[k]
		w("**%s**", k)
		w("")
		w("| process | CPU s | CPU s / M events | peak RSS MB |")
		w("|---|---|---|---|")
		for _, name := range append(m.Processes, "total") {
			w("| %s | %.2f | %.2f | %s |", name, m.CPUSeconds[name], m.CPUSPerMillionEvents[name], rssCell(m, name))
		}
		w("")
	}
	w("## Limits (same machine, same run, same payloads)")
	w("")
	l := r.Limits
	w("| limit | value | s3dest / limit |")
	w("|---|---|---|")
	w("| JetStream async publish of the /v1/batch bodies (file storage) | %.0f events/s (%.0f MB/s) | accepted %.2f, delivered %.2f |",
		l.JetStreamPublishEventsPerS, l.JetStreamPublishMBPerS, r.Ratios["accepted_to_jetstream_publish"], r.Ratios["delivered_to_jetstream_publish"])
	w("| gzip level %d (klauspost/compress, one goroutine) of the delivered NDJSON | %.0f MB/s = %.0f events/s, ratio %.1fx | delivered %.2f |",
		l.GzipLevel, l.GzipMBPerS, l.GzipEventsPerS, l.GzipRatio, r.Ratios["delivered_to_gzip_one_core"])
	w("| MinIO PutObject, %.0f MB objects, 4 at a time | %.0f MB/s | delivered compressed MB/s %.3f (each file is put twice: staging, customer) |",
		l.MinIOPutObjectMB, l.MinIOPutMBPerS, r.Ratios["delivered_compressed_mb_per_s_to_minio_put"])
	w("")
	w("## Where the CPU goes (pprof over the throughput phase)")
	w("")
	for _, k := range modes {
		m := r.Runs[k]
		for _, proc := range sortedKeys(m.ProfileStages) {
			w("**%s / %s** by stage: %s", k, proc, shares(m.ProfileStages[proc], 8))
			w("")
			w("hottest functions (flat): %s", shares(m.ProfileTop[proc], 8))
			w("")
		}
	}
	w("%s", bottleneck(r))
	w("")
	w("## Charts")
	w("")
	for _, c := range charts {
		w("![%s](%s)", strings.TrimSuffix(c, ".png"), c)
		w("")
	}
	return b.String()
}

func rssCell(m *modeResult, name string) string {
	if v, ok := m.PeakRSSMB[name]; ok {
		return fmt.Sprintf("%.0f", v)
	}
	return ""
}

func shares(s []share, n int) string {
	var parts []string
	for i, x := range s {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", x.Name, x.Percent))
	}
	return strings.Join(parts, ", ")
}

// bottleneck says, when the throughput target is missed, by how much and which stage the profile
// blames: the largest share of CPU among the s3dest stages, and whether the machine's cores were busy.
func bottleneck(r *result) string {
	h := r.Runs[r.HeadlineMode]
	if h == nil || len(r.Targets) == 0 {
		return ""
	}
	var b strings.Builder
	if r.Targets[0].Met {
		fmt.Fprintf(&b, "The throughput target is met (%.0f events/s).", h.DeliveredEventsPerS)
	} else {
		fmt.Fprintf(&b, "**Throughput target missed** by %.0f events/s (%.0f%% below %d).", targetEventsPerS-h.DeliveredEventsPerS,
			100*(1-h.DeliveredEventsPerS/targetEventsPerS), targetEventsPerS)
	}
	if h.DeliverySeconds > 0 {
		busy := h.CPUSeconds["total"] / h.DeliverySeconds
		fmt.Fprintf(&b, " During the phase the measured processes used %.2f of %d cores on average", busy, r.Machine.Cores)
		if other := h.CPUSeconds["total"] - h.CPUSeconds["bench"]; other > 0 {
			fmt.Fprintf(&b, " (s3dest and its servers %.2f, the load generator %.2f)", other/h.DeliverySeconds, h.CPUSeconds["bench"]/h.DeliverySeconds)
		}
		b.WriteString(".")
	}
	var top share
	var proc string
	for p, st := range h.ProfileStages {
		if p == "nats-server" {
			continue // the stages are s3dest's; the server's own profile is listed above
		}
		for _, s := range st {
			if s.Seconds > top.Seconds && !strings.HasPrefix(s.Name, "other") && !strings.HasPrefix(s.Name, "GC") {
				top, proc = s, p
			}
		}
	}
	if top.Name != "" {
		fmt.Fprintf(&b, " In the %s profile of %s the stage with the most CPU is **%s** (%.0f%% of its samples, %.1f CPU-s).", r.HeadlineMode, proc, top.Name, top.Percent, top.Seconds)
	}
	var procs []string
	for _, p := range h.Processes {
		if p != "bench" {
			procs = append(procs, fmt.Sprintf("%s %.1f", p, h.CPUSeconds[p]))
		}
	}
	fmt.Fprintf(&b, " CPU-s by process: %s.", strings.Join(procs, ", "))
	if h.AcceptedEventsPerS > 1.5*h.DeliveredEventsPerS {
		b.WriteString(" Ingest accepted much faster than the pipeline delivered: the stages after ingest (batcher, stager, copier) limit end-to-end throughput.")
	}
	return b.String()
}
