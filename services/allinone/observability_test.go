package allinone

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const observabilityDir = "../../deploy/observability/"

// designMetrics is DESIGN.md §9's list of the metrics every deployment of s3dest exports: the contract
// the dashboard and the alerts are written against. docs/metrics.md, once it exists, adds what it names.
var designMetrics = []string{
	"s3dest_events_accepted_total", "s3dest_events_rejected_total", "s3dest_files_sealed_total",
	"s3dest_files_staged_total", "s3dest_files_delivered_total", "s3dest_events_delivered_total",
	"s3dest_delivery_lag_seconds", "s3dest_delivery_failures_total", "s3dest_destination_failing",
	"s3dest_dead_letters_total", "s3dest_sts_assume_role_total", "s3dest_consumer_pending_messages",
}

// externalMetrics are the metrics of others that the dashboard and the alerts name, each with where it
// comes from; a name outside this list and s3dest's is a typo.
var externalMetrics = map[string]string{
	"http_server_request_duration_seconds":     "otelhttp: http.server.request.duration, ingest's Tracking API",
	"gnatsd_healthz_status":                    "prometheus-nats-exporter -healthz (0 when /healthz is ok)",
	"gnatsd_varz_jetstream_meta_cluster_size":  "prometheus-nats-exporter -varz: jetstream.meta.cluster_size",
	"gnatsd_varz_jetstream_meta_pending":       "prometheus-nats-exporter -varz: jetstream.meta.pending",
	"gnatsd_varz_jetstream_stats_storage":      "prometheus-nats-exporter -varz: jetstream.stats.storage",
	"gnatsd_varz_jetstream_config_max_storage": "prometheus-nats-exporter -varz: jetstream.config.max_storage",
	"gnatsd_varz_jetstream_stats_api_errors":   "prometheus-nats-exporter -varz: jetstream.stats.api.errors",
	"jetstream_stream_total_messages":          "prometheus-nats-exporter -jsz=all",
	"jetstream_consumer_num_pending":           "prometheus-nats-exporter -jsz=all",
	"jetstream_consumer_num_ack_pending":       "prometheus-nats-exporter -jsz=all",
}

// grafanaVariables stand for the dashboard's variables and Grafana's own when an expression is parsed.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$__interval", "1m",
	"$destination", ".*", "$ingest_job", ".*ingest.*")

// exportedMetrics is every metric name s3dest exports: §9's and docs/metrics.md's, with a histogram's
// series suffixes.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := slices.Clone(designMetrics)
	if doc, err := os.ReadFile("../../docs/metrics.md"); err == nil {
		names = append(names, regexp.MustCompile(`s3dest_[a-z0-9_]+`).FindAllString(string(doc), -1)...)
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	return set
}

// known reports whether a series name is one of the exported metrics or an external one, counting a
// histogram's _bucket, _count and _sum series as the histogram's.
func known(name string, exported map[string]bool) bool {
	for _, base := range []string{name, strings.TrimSuffix(name, "_bucket"), strings.TrimSuffix(name, "_count"), strings.TrimSuffix(name, "_sum")} {
		if exported[base] || externalMetrics[base] != "" {
			return true
		}
	}
	return false
}

// metricNames parses expr with Prometheus's PromQL parser and returns the metric names it selects.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	parsed, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: %q selects series without naming a metric", where, expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []struct {
		Alert       string            `yaml:"alert"`
		Expr        string            `yaml:"expr"`
		For         string            `yaml:"for"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"rules"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Every alert rule parses with Prometheus's own parser and names only metrics s3dest (or the otelhttp
// instrumentation and the NATS exporter) exports; the plain rules file and the PrometheusRule hold the
// same rules; and the alerts of issue 17 are all there, each with a severity, a summary and a README
// section saying what to do.
func TestEveryAlertRuleParsesAndNamesOnlyExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	var plain struct {
		Groups []ruleGroup `yaml:"groups"`
	}
	readYAML(t, observabilityDir+"alerts.rules.yml", &plain)
	var crd struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Groups []ruleGroup `yaml:"groups"`
		} `yaml:"spec"`
	}
	readYAML(t, observabilityDir+"prometheusrule.yaml", &crd)
	if crd.APIVersion != "monitoring.coreos.com/v1" || crd.Kind != "PrometheusRule" {
		t.Errorf("prometheusrule.yaml is a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", crd.APIVersion, crd.Kind)
	}
	if !reflect.DeepEqual(plain.Groups, crd.Spec.Groups) {
		t.Errorf("alerts.rules.yml and prometheusrule.yaml hold different rules")
	}
	readme, err := os.ReadFile(observabilityDir + "README.md")
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range plain.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			for _, name := range metricNames(t, "alert "+r.Alert, r.Expr) {
				if !known(name, exported) {
					t.Errorf("alert %s names %s, which neither s3dest (DESIGN.md §9, docs/metrics.md) nor a known exporter exports", r.Alert, name)
				}
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s needs a severity label and a summary annotation", r.Alert)
			}
			if !strings.Contains(string(readme), "### "+r.Alert) {
				t.Errorf("README.md has no section ### %s saying what to do", r.Alert)
			}
		}
	}
	for _, want := range []string{"S3destDeliveryLagHigh", "S3destDestinationFailing", "S3destDeadLetter", "S3destPendingGrowing",
		"S3destRetentionEndingForUndeliveredData", "S3destIngest5xx"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s among %v", want, alerts)
		}
	}
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// Every query of the Grafana dashboard (its panels' and its variables') parses with Prometheus's own
// parser once Grafana's variables are given values, names only exported metrics, and the dashboard
// shows each of the stages, lag, pending, failing destinations, dead letters, STS calls and the
// JetStream cluster.
func TestEveryDashboardQueryParsesAndNamesOnlyExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	data, err := os.ReadFile(observabilityDir + "grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	check := func(where, expr string) {
		expr = grafanaVariables.Replace(expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: %q uses a variable the dashboard does not define", where, expr)
			return
		}
		for _, name := range metricNames(t, where, expr) {
			shown[name] = true
			if !known(name, exported) {
				t.Errorf("%s names %s, which neither s3dest (DESIGN.md §9, docs/metrics.md) nor a known exporter exports", where, name)
			}
		}
	}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				check("panel "+p.Title, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := regexp.MustCompile(`^label_values\((.+), *\w+\)$`).FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		check("variable "+v.Name, m[1])
	}
	var missing []string
	for _, want := range []string{"s3dest_events_accepted_total", "s3dest_files_sealed_total", "s3dest_files_staged_total",
		"s3dest_files_delivered_total", "s3dest_delivery_lag_seconds_bucket", "s3dest_consumer_pending_messages",
		"s3dest_destination_failing", "s3dest_dead_letters_total", "s3dest_sts_assume_role_total",
		"gnatsd_healthz_status", "gnatsd_varz_jetstream_stats_storage", "jetstream_consumer_num_pending"} {
		if !shown[want] {
			missing = append(missing, want)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard shows no %v", missing)
	}
}
