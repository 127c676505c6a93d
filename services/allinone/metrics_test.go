package allinone

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// scrape is one read of a /metrics page, parsed.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

// value sums the samples of a counter or gauge family whose labels include want (name=value pairs);
// for a histogram it sums the sample counts. ok is false when no sample matches.
func (s scrape) value(name string, want ...string) (v float64, ok bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		ok = true
		switch {
		case m.GetCounter() != nil:
			v += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			v += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v, ok
}

func (s scrape) get(name string, want ...string) float64 {
	v, _ := s.value(name, want...)
	return v
}

// postTracking sends body to the Tracking API path with the write key and returns the status.
func postTracking(t *testing.T, sum Summary, path, writeKey, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, sum.TrackingURL+path, strings.NewReader(body))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// batchBody is a /v1/batch request of n track events.
func batchBody(tag string, n int) string {
	events := make([]string, n)
	for i := range events {
		events[i] = fmt.Sprintf(`{"type":"track","userId":"u","event":"Metered","messageId":"%s-%d"}`, tag, i)
	}
	return `{"batch":[` + strings.Join(events, ",") + `]}`
}

// s3dest dev serves DESIGN.md §9's metrics at its metricsUrl, each with the value the traffic implies:
// 25 events accepted for the demo source and 6 for a source whose destination's role does not exist, 2
// refused (an unknown key, an invalid body), an ingest.<sourceId> message for an unknown source
// dead-lettered, every demo file delivered with its lag, the broken destination failing (AssumeRole
// denied) until its files' retention ends and they are dead-lettered, and then nothing pending.
func TestDevExportsThePipelinesMetricsWithTheValuesItsTrafficImplies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	ns, _, js := testenv.NATS(t)
	cfg := devConfig(t, t.TempDir())
	cfg.NATSURL = ns.URL()
	sum, _ := runDev(t, cfg)
	ctx := context.Background()

	// Files wait 15s for a failing destination: the broken one's are dead-lettered within the test.
	const ret = 15 * time.Second
	store, err := configstore.Open(ctx, js, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutSettings(ctx, &configv1.Settings{Retention: durationpb.New(ret), UpdatedAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}

	api := testClient(t, sum)
	bs := createSource(t, api, "metered-broken")
	brokenSrc, brokenKey := bs.ID, bs.WriteKeys[0]
	brokenRole := sum.RoleARN[:strings.LastIndex(sum.RoleARN, "/")+1] + "s3dest-no-such-role"
	var created destAndValidation
	must(t, api, http.MethodPost, "/destinations", map[string]any{"sourceId": brokenSrc, "metadataId": layout.AWSS3MetadataID,
		"name": "Broken", "settings": map[string]any{"region": sum.Region, "s3Bucket": sum.Bucket, "iamRoleArn": brokenRole}}, &created)
	broken := created.Destination.ID

	// Traffic: 25 events in 3 requests for the demo source, 6 in 2 for the broken one.
	requests := 0
	for i, n := range []int{10, 10, 5} {
		if code := postTracking(t, sum, "/v1/batch", sum.WriteKey, batchBody(fmt.Sprintf("demo%d", i), n)); code != http.StatusOK {
			t.Fatalf("demo batch %d = %d", i, code)
		}
		requests++
	}
	for i, n := range []int{4, 2} {
		if code := postTracking(t, sum, "/v1/batch", brokenKey, batchBody(fmt.Sprintf("broken%d", i), n)); code != http.StatusOK {
			t.Fatalf("broken batch %d = %d", i, code)
		}
		requests++
	}
	// Refusals: an unknown write key in Basic auth (refused before the body is read: one event), and a
	// body that is not JSON (one).
	if code := postTracking(t, sum, "/v1/batch", "no-such-key", batchBody("refused", 2)); code != http.StatusUnauthorized {
		t.Fatalf("unknown key = %d", code)
	}
	if code := postTracking(t, sum, "/v1/track", sum.WriteKey, "{not json"); code != http.StatusBadRequest {
		t.Fatalf("invalid body = %d", code)
	}
	requests += 2
	// analytics.js's own metrics beacon, counted apart from events.
	if code := postTracking(t, sum, "/v1/m", "", `{"series":[]}`); code != http.StatusOK {
		t.Fatalf("beacon = %d", code)
	}
	requests++
	// A dead letter: a message on ingest.<sourceId> for a source that does not exist.
	if _, err := js.Publish(ctx, bus.IngestSubject("no-such-source"), []byte(`{"type":"track","userId":"u","event":"Lost"}`)); err != nil {
		t.Fatal(err)
	}

	s3c := rootS3(sum)
	demoFiles := 0
	testenv.Eventually(t, 30*time.Second, "the demo source's 25 events in the bucket", func() bool {
		keys := listKeys(t, s3c, sum.Bucket, "segment-logs/"+sum.SourceID+"/")
		events := 0
		for _, k := range keys {
			events += len(readLines(t, s3c, sum.Bucket, k))
		}
		demoFiles = len(keys)
		return events == 25
	})

	// Until their retention ends the broken destination's files are pending in its copier lane: the
	// status shows them waiting, and the copier stage's pending gauge counts them.
	var st struct {
		Statuses []struct {
			Status apiStatus `json:"status"`
		} `json:"statuses"`
	}
	// The retention deadline gauge holds the oldest waiting file's deadline, the status's.
	var waiting scrape
	var deadline time.Time
	testenv.Eventually(t, 15*time.Second, "the broken destination's staged files pending in its lane, with their deadline", func() bool {
		waiting = scrapeMetrics(t, sum.MetricsURL)
		staged := waiting.get("s3dest_files_staged_total", "source", brokenSrc)
		cliJSON(t, sum, &st, "status", broken)
		r := st.Statuses[0].Status.Retention
		if staged == 0 || r == nil || r.WaitingFiles != fmt.Sprint(staged) || waiting.get("s3dest_consumer_pending_messages", "stage", "copier") != staged {
			return false
		}
		var err error
		deadline, err = time.Parse(time.RFC3339Nano, r.OldestWaitingDeadline)
		return err == nil && waiting.get("s3dest_retention_deadline_timestamp_seconds", "destination", broken) == float64(deadline.UnixMilli())/1000
	})
	if _, ok := waiting.value("s3dest_retention_deadline_timestamp_seconds", "destination", sum.DestinationID); ok {
		t.Errorf("s3dest_retention_deadline_timestamp_seconds{destination=%s} is exported while nothing waits for it", sum.DestinationID)
	}
	t.Logf("s3dest_retention_deadline_timestamp_seconds{destination=broken} = %v (%s)", float64(deadline.UnixMilli())/1000, deadline)

	// The broken destination's files are dead-lettered when their retention ends; then nothing waits.
	var m scrape
	testenv.Eventually(t, 60*time.Second, "the broken destination's files dead-lettered and nothing pending", func() bool {
		m = scrapeMetrics(t, sum.MetricsURL)
		sealed := m.get("s3dest_files_sealed_total", "source", brokenSrc)
		pendingZero := true
		for _, stage := range []string{"ingest", "batcher", "stager", "copier"} {
			if v, ok := m.value("s3dest_consumer_pending_messages", "stage", stage); !ok || v != 0 {
				pendingZero = false
			}
		}
		return sealed > 0 && m.get("s3dest_dead_letters_total", "stage", "copier", "reason", "retention") == sealed && pendingZero
	})
	brokenFiles := m.get("s3dest_files_sealed_total", "source", brokenSrc)

	type check struct {
		name    string
		labels  []string
		want    float64
		atLeast bool
	}
	checks := []check{
		{"s3dest_events_accepted_total", []string{"source", sum.SourceID}, 25, false},
		{"s3dest_events_accepted_total", []string{"source", brokenSrc}, 6, false},
		{"s3dest_events_rejected_total", []string{"reason", "unauthorized"}, 1, false},
		{"s3dest_events_rejected_total", []string{"reason", "invalid"}, 1, false},
		{"s3dest_files_sealed_total", []string{"source", sum.SourceID}, float64(demoFiles), false},
		{"s3dest_files_staged_total", []string{"source", sum.SourceID}, float64(demoFiles), false},
		{"s3dest_files_staged_total", []string{"source", brokenSrc}, brokenFiles, false},
		{"s3dest_files_delivered_total", []string{"destination", sum.DestinationID}, float64(demoFiles), false},
		{"s3dest_files_delivered_total", []string{"destination", broken}, 0, false},
		{"s3dest_events_delivered_total", []string{"destination", sum.DestinationID}, 25, false},
		{"s3dest_delivery_lag_seconds", nil, float64(demoFiles), false},
		{"s3dest_delivery_failures_total", []string{"destination", broken, "reason", "assume_role_denied"}, 1, true},
		{"s3dest_delivery_failures_total", []string{"destination", sum.DestinationID}, 0, false},
		{"s3dest_destination_failing", []string{"destination", broken}, 1, false},
		{"s3dest_destination_failing", []string{"destination", sum.DestinationID}, 0, false},
		{"s3dest_dead_letters_total", []string{"stage", "ingest", "reason", "unknown_source"}, 1, false},
		{"s3dest_dead_letters_total", []string{"stage", "copier", "reason", "retention"}, brokenFiles, false},
		{"s3dest_sts_assume_role_total", []string{"caller", "copier", "outcome", "success"}, 1, false},
		{"s3dest_sts_assume_role_total", []string{"caller", "copier", "outcome", "denied"}, 1, true},
		// The validator's two calls per validation, at each destination's creation: the demo role refuses
		// the call without the External ID (the healthy answer) and accepts it with; the broken one, which
		// does not exist, refuses both.
		{"s3dest_sts_assume_role_total", []string{"caller", "validator", "outcome", "success"}, 1, false},
		{"s3dest_sts_assume_role_total", []string{"caller", "validator", "outcome", "denied"}, 3, false},
		{"s3dest_sts_assume_role_total", []string{"caller", "validator", "outcome", "error"}, 0, false},
		{"s3dest_consumer_pending_messages", []string{"stage", "copier"}, 0, false},
		{"s3dest_ingest_client_metrics_beacons_total", nil, 1, false},
		{"s3dest_copier_files_carried_total", nil, 0, false},
		{"http_server_request_duration_seconds", nil, float64(requests), false},
	}
	for _, c := range checks {
		got, ok := m.value(c.name, c.labels...)
		if !ok && c.want != 0 {
			t.Errorf("%s%v: absent, want %v", c.name, c.labels, c.want)
			continue
		}
		if (c.atLeast && got < c.want) || (!c.atLeast && got != c.want) {
			t.Errorf("%s%v = %v, want %s%v", c.name, c.labels, got, map[bool]string{true: "at least ", false: ""}[c.atLeast], c.want)
		}
		t.Logf("%s%v = %v", c.name, c.labels, got)
	}
	// Every delivered file's lag is under the time the test took; the process exports Go and process
	// metrics, and the gRPC server's (the admin's background validation calls the validator over gRPC).
	if h := m["s3dest_delivery_lag_seconds"]; h != nil && len(h.GetMetric()) == 1 {
		hist := h.GetMetric()[0].GetHistogram()
		t.Logf("s3dest_delivery_lag_seconds sum = %.3fs over %d files", hist.GetSampleSum(), hist.GetSampleCount())
		if hist.GetSampleSum() <= 0 || hist.GetSampleSum() > float64(hist.GetSampleCount())*60 {
			t.Errorf("lag sum %v for %d files is not a plausible lag", hist.GetSampleSum(), hist.GetSampleCount())
		}
	}
	// The status shows the demo destination's last delivered file with its lag (one of the histogram's
	// observations), nothing pending in either lane, and the broken one's files dead-lettered.
	cliJSON(t, sum, &st, "status", sum.DestinationID, broken)
	demo, bst := st.Statuses[0].Status, st.Statuses[1].Status
	if demo.LastDelivery == nil || demo.LastDelivery.Lag == "" {
		t.Fatalf("the demo destination's status has no last delivery: %+v", demo)
	}
	lag, err := time.ParseDuration(demo.LastDelivery.Lag)
	hist := m["s3dest_delivery_lag_seconds"].GetMetric()[0].GetHistogram()
	if err != nil || lag <= 0 || lag.Seconds() > hist.GetSampleSum()+1e-6 || (demoFiles == 1 && fmt.Sprintf("%.3f", lag.Seconds()) != fmt.Sprintf("%.3f", hist.GetSampleSum())) {
		t.Errorf("last delivery lag %q (%v), histogram sum %v over %d files", demo.LastDelivery.Lag, err, hist.GetSampleSum(), demoFiles)
	}
	if bst.LastDelivery != nil || orZero(bst.Retention.WaitingFiles) != "0" || orZero(demo.Retention.WaitingFiles) != "0" || bst.Retention.DeadLetteredFiles != fmt.Sprint(brokenFiles) {
		t.Errorf("status: demo %+v %+v, broken %+v %+v; want nothing waiting, the broken one's %v files dead-lettered", demo.Retention, demo.LastDelivery, bst.Retention, bst.LastDelivery, brokenFiles)
	}
	if table := cli(t, sum, "status", sum.DestinationID); !strings.Contains(table, "LAST FILE'S LAG") || !strings.Contains(table, humanDuration(demo.LastDelivery.Lag)) {
		t.Errorf("s3dest status lacks the last file's lag %s:\n%s", humanDuration(demo.LastDelivery.Lag), table)
	}
	t.Logf("status: demo last lag %s, waiting %s; broken waiting %s, dead-lettered %s files",
		demo.LastDelivery.Lag, orZero(demo.Retention.WaitingFiles), orZero(bst.Retention.WaitingFiles), bst.Retention.DeadLetteredFiles)

	if _, ok := m.value("s3dest_retention_deadline_timestamp_seconds", "destination", broken); ok {
		t.Errorf("s3dest_retention_deadline_timestamp_seconds{destination=%s} is still exported after its files were dead-lettered", broken)
	}
	// The reference lists every family exported at some point: the deadline only while a file waits.
	for name, f := range waiting {
		if m[name] == nil {
			m[name] = f
		}
	}
	checkMetricsDoc(t, m)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "rpc_server_call_duration_seconds"} {
		if _, ok := m.value(name); !ok {
			var names []string
			for n := range m {
				names = append(names, n)
			}
			sort.Strings(names)
			t.Errorf("%s is not exported; exported: %v", name, names)
		}
	}
}

var update = flag.Bool("update", false, "rewrite docs/metrics.md from what s3dest dev exports")

// metricsDoc is the path of the metrics reference, from this package.
var metricsDoc = filepath.Join("..", "..", "docs", "metrics.md")

const metricsDocHead = `# Metrics

Every s3dest process serves Prometheus metrics at ` + "`/metrics`" + ` of its ops address (` + "`--ops-addr`" + `);
` + "`s3dest dev`" + ` serves those of all its services at the summary's ` + "`metricsUrl`" + `. The names of DESIGN.md §9
are the ones dashboards and alerts use. Every process also exports the Go runtime's (` + "`go_*`" + `) and the
process's (` + "`process_*`" + `) metrics, and ` + "`target_info`" + ` (the OpenTelemetry resource); every series carries
` + "`otel_scope_*`" + ` labels naming the instrumentation that made it, left out below.

Several replicas of a stage report the same JetStream consumers in ` + "`s3dest_consumer_pending_messages`" + `:
aggregate it over replicas with ` + "`max`" + `, not ` + "`sum`" + `. The delivery lag is measured per delivered file,
from the receivedAt of its oldest event (the batch's ` + "`oldest_received_at`" + `) to the customer's bucket
acknowledging the object, so it is the lag of the file's longest-waiting event.

This table is generated from a running ` + "`s3dest dev`" + ` by
` + "`TestDevExportsThePipelinesMetricsWithTheValuesItsTrafficImplies`" + ` (services/allinone), which fails when it
differs from what is exported: after changing a metric, run
` + "`go test ./services/allinone -run TestDevExportsThePipelinesMetrics -update`" + `.

| metric | type | labels | help |
|---|---|---|---|
`

// checkMetricsDoc compares docs/metrics.md with the families of a scrape (all but go_*, process_* and
// target_info), or rewrites it with -update.
func checkMetricsDoc(t *testing.T, m scrape) {
	t.Helper()
	var names []string
	for name := range m {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || name == "target_info" {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(metricsDocHead)
	for _, name := range names {
		f := m[name]
		labels := map[string]bool{}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if !strings.HasPrefix(l.GetName(), "otel_scope_") {
					labels[l.GetName()] = true
				}
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, "`"+l+"`")
		}
		slices.Sort(ls)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", name, strings.ToLower(f.GetType().String()), strings.Join(ls, ", "),
			strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;").Replace(f.GetHelp()))
	}
	want := b.String()
	if *update {
		if err := os.WriteFile(metricsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatalf("read the metrics reference: %v (run with -update to write it)", err)
	}
	if string(got) != want {
		t.Errorf("docs/metrics.md differs from what s3dest dev exports; run go test ./services/allinone -run TestDevExportsThePipelinesMetrics -update and review the diff.\nwant:\n%s", want)
	}
}
