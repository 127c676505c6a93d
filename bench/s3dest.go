package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// deployment is s3dest running in one mode: its processes, where to send events, and the admin API.
type deployment struct {
	procs       []*proc
	opsAddr     map[string]string // process name → ops address (/debug/pprof)
	trackingURL string
	adminURL    string
	adminToken  string
}

func (d *deployment) pids() map[string]int {
	out := map[string]int{}
	for _, p := range d.procs {
		out[p.name] = p.pid()
	}
	return out
}

func (d *deployment) alive() error {
	for _, p := range d.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

// stop stops the services in pipeline order, as s3dest's own group does.
func (d *deployment) stop() {
	for _, p := range d.procs {
		p.stop(30 * time.Second)
	}
}

// commonEnv is what every s3dest process is given: the real components, our principal (MinIO's root
// user, through the environment rather than the command line), profiles on the ops port.
func commonEnv(in *infra, flush time.Duration) []string {
	return append(os.Environ(),
		"S3DEST_NATS_URL="+in.natsURL, "S3DEST_REDIS_URL="+in.redisURL, "S3DEST_LOG_LEVEL=warn",
		"S3DEST_AWS_ACCESS_KEY_ID="+in.minio.user, "S3DEST_AWS_SECRET_ACCESS_KEY="+in.minio.password,
		"S3DEST_INTERMEDIATE_ROLE_ARN="+intermediateARN, "S3DEST_WORKSPACE_ID="+workspaceID,
		"S3DEST_FLUSH_INTERVAL="+flush.String(), "S3DEST_PPROF=true",
		"S3DEST_CLI_LOGIN=false", // the machine's CLI stays logged in where it was
	)
}

// startAllInOne runs `s3dest dev` against the real components instead of its embedded ones.
func startAllInOne(ctx context.Context, binDir, dir string, in *infra, flush time.Duration) (*deployment, error) {
	summary := filepath.Join(dir, "summary.json")
	cmd := exec.Command(filepath.Join(binDir, "s3dest"), "dev", "--data-dir", filepath.Join(dir, "data"), "--summary-file", summary,
		"--s3-endpoint", in.minio.url, "--sts-endpoint", in.gateURL,
		"--tracking-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--admin-grpc-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0",
		"--sts-addr", "127.0.0.1:0", "--nats-addr", "127.0.0.1:0", "--redis-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0")
	cmd.Env = commonEnv(in, flush)
	p, err := startProc("s3dest", cmd)
	if err != nil {
		return nil, err
	}
	d := &deployment{procs: []*proc{p}}
	var sum struct{ TrackingURL, AdminURL, AdminToken, MetricsURL string }
	if err := waitFor(ctx, 60*time.Second, "s3dest dev's summary", func() bool {
		data, err := os.ReadFile(summary)
		return err == nil && json.Unmarshal(data, &sum) == nil
	}, p); err != nil {
		return d, err
	}
	d.trackingURL, d.adminURL, d.adminToken = sum.TrackingURL, sum.AdminURL, sum.AdminToken
	d.opsAddr = map[string]string{"s3dest": strings.TrimSuffix(strings.TrimPrefix(sum.MetricsURL, "http://"), "/metrics")}
	return d, nil
}

// startSeparate runs each service's own binary, as a cluster would (validator left out: the
// benchmark never validates).
func startSeparate(ctx context.Context, binDir string, in *infra, flush time.Duration) (*deployment, error) {
	d := &deployment{opsAddr: map[string]string{}, adminToken: "s3dest-bench-admin-token-0123456789"}
	addrs := map[string]string{}
	for _, n := range []string{"tracking", "grpc", "rest"} {
		a, err := freeAddr()
		if err != nil {
			return d, err
		}
		addrs[n] = a
	}
	d.trackingURL, d.adminURL = "http://"+addrs["tracking"], "http://"+addrs["rest"]
	env := append(commonEnv(in, flush),
		"S3DEST_S3_ENDPOINT="+in.minio.url, "S3DEST_STS_ENDPOINT="+in.gateURL, "S3DEST_S3_PATH_STYLE=true",
		"S3DEST_CREDENTIALS_KEY="+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)),
		"S3DEST_ADMIN_TOKEN="+d.adminToken, "S3DEST_TRACKING_ADDR="+addrs["tracking"],
		"S3DEST_ADMIN_GRPC_ADDR="+addrs["grpc"], "S3DEST_ADMIN_ADDR="+addrs["rest"])
	for _, name := range []string{"ingest", "batcher", "stager", "copier", "admin"} {
		ops, err := freeAddr()
		if err != nil {
			return d, err
		}
		cmd := exec.Command(filepath.Join(binDir, name))
		cmd.Env = append(env, "S3DEST_OPS_ADDR="+ops)
		p, err := startProc(name, cmd)
		if err != nil {
			return d, err
		}
		d.procs = append(d.procs, p)
		d.opsAddr[name] = ops
		if err := waitFor(ctx, 60*time.Second, name+" to be ready", func() bool {
			return httpStatus("http://"+ops+"/readyz") == http.StatusOK
		}, p); err != nil {
			return d, err
		}
	}
	return d, nil
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// source is a source with an enabled destination into the customer bucket, created through the admin API.
type source struct {
	id, writeKey, destinationID string
}

func (d *deployment) admin(ctx context.Context, method, path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.adminURL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 { // 201 for a created source
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w in %s", method, path, err, data)
	}
	return nil
}

// createSource creates a source and its destination in the customer bucket, and waits until ingest
// knows the write key.
func (d *deployment) createSource(ctx context.Context, slug string) (source, error) {
	return d.createSourceIf(ctx, slug, map[string]string{"region": region, "s3Bucket": customerBucket, "iamRoleArn": customerRoleARN},
		[]string{d.trackingURL}, func(string) bool { return true })
}

// createSourceIf creates a source; if want says yes to its ID, also its AWS S3 destination with settings,
// and waits until every tracking URL knows the write key (else the source stays without a destination).
func (d *deployment) createSourceIf(ctx context.Context, slug string, settings map[string]string, trackingURLs []string, want func(id string) bool) (source, error) {
	var src struct {
		Data struct {
			Source struct {
				ID        string   `json:"id"`
				WriteKeys []string `json:"writeKeys"`
			} `json:"source"`
		} `json:"data"`
	}
	if err := d.admin(ctx, http.MethodPost, "/sources", map[string]any{"slug": slug, "name": slug}, &src); err != nil {
		return source{}, err
	}
	s := source{id: src.Data.Source.ID}
	if len(src.Data.Source.WriteKeys) == 0 {
		return s, fmt.Errorf("source %s has no write key", slug)
	}
	if !want(s.id) {
		return s, nil
	}
	s.writeKey = src.Data.Source.WriteKeys[0]
	var dst struct {
		Data struct {
			Destination struct {
				ID string `json:"id"`
			} `json:"destination"`
		} `json:"data"`
	}
	if err := d.admin(ctx, http.MethodPost, "/destinations", map[string]any{
		"sourceId": s.id, "metadataId": "60be92c8dabdd561bf6c9130", "name": slug, "enabled": true, "settings": settings,
	}, &dst); err != nil {
		return s, err
	}
	s.destinationID = dst.Data.Destination.ID
	for _, url := range trackingURLs {
		// An empty body answers 400 once the write key is known, 401 before.
		if err := waitFor(ctx, 30*time.Second, "ingest to know the write key of "+slug, func() bool {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/batch", strings.NewReader(`{}`))
			req.SetBasicAuth(s.writeKey, "")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode != http.StatusUnauthorized
		}, d.procs...); err != nil {
			return s, err
		}
	}
	return s, nil
}

// deliveredEvents is what the admin status API (the copier's delivery cursors) says arrived for a
// destination: a cheap signal of when to read the bucket back, never the measurement itself.
func (d *deployment) deliveredEvents(ctx context.Context, destinationID string) (int64, error) {
	var st struct {
		Data struct {
			Status struct {
				Days []struct {
					Events json.RawMessage `json:"events"`
				} `json:"days"`
			} `json:"status"`
		} `json:"data"`
	}
	if err := d.admin(ctx, http.MethodGet, "/destinations/"+destinationID+"/status", nil, &st); err != nil {
		return 0, err
	}
	var total int64
	for _, day := range st.Data.Status.Days {
		n, _ := strconv.ParseInt(strings.Trim(string(day.Events), `"`), 10, 64) // protojson writes int64 as a string
		total += n
	}
	return total, nil
}
