package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// fetchProfile takes a CPU profile of seconds from a process's ops port (S3DEST_PPROF=true) and saves it.
func fetchProfile(ctx context.Context, opsAddr string, seconds int, path string) (*profile.Profile, error) {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", opsAddr, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: time.Duration(seconds+30) * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", opsAddr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profile %s: %d %s", opsAddr, resp.StatusCode, data)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, err
	}
	return profile.Parse(bytes.NewReader(data))
}

// share is a part of a profile's CPU time.
type share struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"cpu_s"`
	Percent float64 `json:"percent"`
}

// stageOf names what a sample's goroutine was doing: the outermost s3dest service package on its stack
// (an HTTP handler or consumer started by that service), else garbage collection, the NATS client, or
// other runtime work.
func stageOf(s *profile.Sample) string {
	pkgFrame := ""
	for i := len(s.Location) - 1; i >= 0; i-- { // root first
		loc := s.Location[i]
		for j := len(loc.Line) - 1; j >= 0; j-- {
			fn := loc.Line[j].Function
			if fn == nil {
				continue
			}
			name := fn.Name
			if rest, ok := strings.CutPrefix(name, "github.com/s3dest/s3dest/services/"); ok {
				svc, _, _ := strings.Cut(rest, ".")
				svc, _, _ = strings.Cut(svc, "/")
				return svc
			}
			if rest, ok := strings.CutPrefix(name, "github.com/s3dest/s3dest/pkg/"); ok && pkgFrame == "" {
				p, _, _ := strings.Cut(rest, ".")
				pkgFrame = "pkg/" + p
			}
			if strings.HasPrefix(name, "runtime.gcBgMarkWorker") || strings.HasPrefix(name, "runtime.bgsweep") || strings.HasPrefix(name, "runtime.bgscavenge") {
				return "GC (runtime background)"
			}
		}
	}
	if pkgFrame != "" {
		return pkgFrame
	}
	server := false
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function == nil {
				continue
			}
			switch name := l.Function.Name; {
			case strings.HasPrefix(name, "github.com/nats-io/nats.go"):
				return "NATS client"
			case strings.Contains(name, "nats-server/v2/server.(*fileStore)") || strings.Contains(name, "nats-server/v2/server.(*msgBlock)"):
				return "nats-server: JetStream file store"
			case strings.HasPrefix(name, "github.com/nats-io/nats-server/"):
				server = true
			}
		}
	}
	if server {
		return "nats-server: clients, routing, JetStream"
	}
	return "other (runtime, net, syscalls)"
}

// analyse splits a CPU profile by stage and lists the hottest functions (flat).
func analyse(p *profile.Profile) (stages, top []share) {
	vi := len(p.SampleType) - 1 // cpu/nanoseconds
	byStage, byFunc := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		byStage[stageOf(s)] += v
		if len(s.Location) > 0 && len(s.Location[0].Line) > 0 && s.Location[0].Line[0].Function != nil {
			byFunc[s.Location[0].Line[0].Function.Name] += v
		}
	}
	list := func(m map[string]int64, n int) []share {
		var out []share
		for k, v := range m {
			out = append(out, share{Name: k, Seconds: float64(v) / 1e9, Percent: 100 * float64(v) / float64(max(total, 1))})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
		if len(out) > n {
			out = out[:n]
		}
		return out
	}
	return list(byStage, 20), list(byFunc, 12)
}

// saveMetrics writes each s3dest process's /metrics page into outDir as {mode}-{name}-metrics-{when}.prom,
// its first line the time of the scrape (`# scraped_at_ms …`), so the dashboard's queries can be
// evaluated over a run (TestDashboardQueriesOverABenchRun in services/allinone). A process that does not
// answer is left out: the scrapes are a by-product, never a reason for the run to fail.
func saveMetrics(ctx context.Context, dep *deployment, outDir, mode, when string) {
	for name, ops := range dep.opsAddr {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops+"/metrics", nil)
		if err != nil {
			continue
		}
		at := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			continue
		}
		page := append([]byte(fmt.Sprintf("# scraped_at_ms %d\n", at.UnixMilli())), data...)
		_ = os.WriteFile(filepath.Join(outDir, fmt.Sprintf("%s-%s-metrics-%s.prom", mode, name, when)), page, 0o644)
	}
}
