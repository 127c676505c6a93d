package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// reportName is chaos (make chaos) or chaos-quick (make chaos-quick), so that CI's quick run does not
// overwrite the full run's figures.
func reportName(cfg config) string {
	if cfg.quick {
		return "chaos-quick"
	}
	return "chaos"
}

// writeReport writes <out>/chaos.json and chaos.md (chaos-quick.* with -quick).
func writeReport(cfg config, rep report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	base := filepath.Join(cfg.out, reportName(cfg))
	if err := os.WriteFile(base+".json", append(data, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	verdict := "**passed**: nothing lost, nothing duplicated"
	if !rep.Passed {
		verdict = "**failed**"
	}
	fmt.Fprintf(&b, "# Chaos suite (%s)\n\n", rep.Mode)
	fmt.Fprintf(&b, "%s, %d cores (%s/%s), %.0f s; the cluster of `%s` (three NATS nodes, R3, two replicas of each data-plane service), "+
		"%d events/s from Segment's Go client over both ingest replicas, FLUSH_INTERVAL %gs. %s.\n\n",
		rep.StartedAt.Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, rep.Seconds, rep.Procfile,
		rep.RateEventsPerS, rep.FlushIntervalS, verdict)
	b.WriteString("| scenario | accepted | delivered | lost | duplicated | recover s | fault |\n|---|---|---|---|---|---|---|\n")
	for _, s := range rep.Scenarios {
		rec := "—"
		if s.RecoverS != nil {
			rec = fmt.Sprintf("%.1f", *s.RecoverS)
		}
		what := s.Note
		if what == "" {
			what = s.Fault
		}
		if s.Error != "" {
			what += " — **error:** " + s.Error
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %s |\n", s.Name, s.Accepted, s.Delivered, s.Lost, s.Duplicated, rec, strings.ReplaceAll(what, "|", "/"))
	}
	b.WriteString(`
accepted: events answered 2xx (the client's callback); delivered: those found in the customer bucket after the
drain (every object under segment-logs/{sourceId}/ gunzipped, counted by messageId, each messageId prefixed with its
scenario); lost: accepted and not delivered; duplicated: events found more than once. recover s: from the
fault's end until the backlog (accepted − delivered, as the copiers announce deliveries on
batch.delivered) is back within its pre-fault range and stays there for three flush intervals: delivery is
back to its pre-fault rate, with what piled up during the fault delivered; 0 when the fault never held
delivery back, — when it did not recover within the scenario's limit.
`)
	return os.WriteFile(base+".md", []byte(b.String()), 0o644)
}
