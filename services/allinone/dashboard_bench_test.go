package allinone

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
)

var benchScrapes = flag.String("bench-scrapes", "", "a bin/bench -out directory: evaluate the dashboard's queries over its "+
	"allinone-s3dest-metrics-{start,end}.prom and write observability.md there")

// Every query of the Grafana dashboard, evaluated by Prometheus's own engine over the two scrapes a
// bench run takes of s3dest (as its throughput phase starts, and once every event is delivered), at the
// second scrape with each range ($__rate_interval, $__range) spanning the phase: the table of
// bench/results/observability.md, each panel's query next to the value a run produced. A run is needed,
// so the test runs only when given one:
//
//	make bench-quick && go test ./services/allinone -run TestDashboardQueriesOverABenchRun -bench-scrapes $PWD/bench/results
func TestDashboardQueriesOverABenchRun(t *testing.T) {
	if *benchScrapes == "" {
		t.Skip("needs the scrapes of a bench run: give -bench-scrapes DIR (bin/bench -out DIR)")
	}
	ctx := context.Background()
	st := teststorage.New(t)
	startAt, start := readScrape(t, filepath.Join(*benchScrapes, "allinone-s3dest-metrics-start.prom"))
	endAt, end := readScrape(t, filepath.Join(*benchScrapes, "allinone-s3dest-metrics-end.prom"))
	// A counter or histogram series born between the scrapes (the bench's source and destination are
	// new when the phase starts) counted from 0 at the first.
	for name, f := range end {
		if f.GetType() != dto.MetricType_COUNTER && f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		if start[name] == nil {
			start[name] = &dto.MetricFamily{Name: f.Name, Type: f.Type}
		}
		have := map[string]bool{}
		for _, m := range start[name].GetMetric() {
			have[fmt.Sprint(m.GetLabel())] = true
		}
		for _, m := range f.GetMetric() {
			if !have[fmt.Sprint(m.GetLabel())] {
				zero := &dto.Metric{Label: m.GetLabel(), Counter: &dto.Counter{Value: new(float64)}}
				if h := m.GetHistogram(); h != nil {
					zero = &dto.Metric{Label: m.GetLabel(), Histogram: &dto.Histogram{SampleCount: new(uint64), SampleSum: new(float64)}}
					for _, bk := range h.GetBucket() {
						zero.Histogram.Bucket = append(zero.Histogram.Bucket, &dto.Bucket{UpperBound: bk.UpperBound, CumulativeCount: new(uint64)})
					}
				}
				start[name].Metric = append(start[name].Metric, zero)
			}
		}
	}
	loadScrape(t, st, startAt, start)
	loadScrape(t, st, endAt, end)
	at := [2]time.Time{startAt, endAt}
	window := at[1].Sub(at[0]) + time.Millisecond // both scrapes inside the (left-open) range
	rangeVar := fmt.Sprintf("%dms", window.Milliseconds())
	vars := strings.NewReplacer("$__rate_interval", rangeVar, "$__range", rangeVar, "$destination", ".*", "$ingest_job", ".*")

	data, err := os.ReadFile(observabilityDir + "grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []grafanaPanel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	var b strings.Builder
	fmt.Fprintf(&b, "# The dashboard's queries over a bench run\n\n"+
		"Every query of `deploy/observability/grafana-dashboard.json`, evaluated by Prometheus's engine over the two\n"+
		"scrapes `bin/bench` took of `s3dest dev` in its all-in-one throughput phase (%s, the first as the load began,\n"+
		"the second once every event was delivered: %.1f s apart; a series born between them counted from 0 at the\n"+
		"first), at the second scrape, with `$__rate_interval` and\n"+
		"`$__range` set to the whole phase and `$destination`, `$ingest_job` to everything. The NATS panels read\n"+
		"prometheus-nats-exporter, which the bench does not run: they have no series here.\n"+
		"Written by `go test ./services/allinone -run TestDashboardQueriesOverABenchRun -bench-scrapes DIR`.\n\n"+
		"| panel | query | value |\n|---|---|---|\n", at[0].UTC().Format("2006-01-02 15:04:05 UTC"), window.Seconds())
	var panels []grafanaPanel
	var flatten func([]grafanaPanel)
	flatten = func(ps []grafanaPanel) {
		for _, p := range ps {
			panels = append(panels, p)
			flatten(p.Panels)
		}
	}
	flatten(dash.Panels)
	s3destSeries := 0
	for _, p := range panels {
		for _, target := range p.Targets {
			if target.Expr == "" {
				continue
			}
			q, err := engine.NewInstantQuery(ctx, st, nil, vars.Replace(target.Expr), at[1])
			if err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, target.Expr, err)
				continue
			}
			res := q.Exec(ctx)
			if res.Err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, target.Expr, res.Err)
				continue
			}
			value := "no series"
			if v, ok := res.Value.(promql.Vector); ok && len(v) > 0 {
				var parts []string
				for _, s := range v {
					parts = append(parts, fmt.Sprintf("%s %s", s.Metric.String(), strconv.FormatFloat(round3(s.F), 'f', -1, 64)))
				}
				sort.Strings(parts)
				value = strings.Join(parts, "<br>")
				if strings.Contains(target.Expr, "s3dest_") {
					s3destSeries++
				}
			}
			q.Close()
			fmt.Fprintf(&b, "| %s | `%s` | %s |\n", p.Title, strings.ReplaceAll(target.Expr, "|", "\\|"), strings.ReplaceAll(value, "|", "\\|"))
		}
	}
	if s3destSeries == 0 {
		t.Fatal("no query of an s3dest metric has a value over the bench run's scrapes")
	}
	out := filepath.Join(*benchScrapes, "observability.md")
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// readScrape reads one saved /metrics page, its first line `# scraped_at_ms N`.
func readScrape(t *testing.T, path string) (time.Time, map[string]*dto.MetricFamily) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	ms, err := strconv.ParseInt(strings.TrimPrefix(first, "# scraped_at_ms "), 10, 64)
	if err != nil {
		t.Fatalf("%s: the first line is not # scraped_at_ms N: %q", path, first)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return time.UnixMilli(ms), families
}

// loadScrape appends one scrape to st at its time: counters and gauges as they are, histograms as their
// _bucket, _sum and _count series.
func loadScrape(t *testing.T, st *teststorage.TestStorage, at time.Time, families map[string]*dto.MetricFamily) {
	t.Helper()
	ms := at.UnixMilli()
	app := st.Appender(context.Background())
	add := func(name string, m *dto.Metric, v float64, extra ...string) {
		b := labels.NewScratchBuilder(8)
		b.Add(labels.MetricName, name)
		for _, l := range m.GetLabel() {
			b.Add(l.GetName(), l.GetValue())
		}
		for i := 0; i+1 < len(extra); i += 2 {
			b.Add(extra[i], extra[i+1])
		}
		b.Sort()
		if _, err := app.Append(0, b.Labels(), ms, v); err != nil {
			t.Fatalf("append %s: %v", name, err)
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m, m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, bk := range h.GetBucket() {
					add(name+"_bucket", m, float64(bk.GetCumulativeCount()), "le", strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64))
				}
				add(name+"_bucket", m, float64(h.GetSampleCount()), "le", "+Inf")
				add(name+"_sum", m, h.GetSampleSum())
				add(name+"_count", m, float64(h.GetSampleCount()))
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}
