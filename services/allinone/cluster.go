package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/procfile"
	"github.com/s3dest/s3dest/services/admin"
)

// The local cluster (DESIGN.md §8) is data: deploy/local/Procfile and deploy/local/cluster.env, read
// with pkg/procfile by everything that runs or inspects it.

// ClusterSummary is the dev summary (DESIGN.md §2) of the local cluster, plus every ingest replica's
// Tracking API and every NATS node.
type ClusterSummary struct {
	Summary
	TrackingURLs []string `json:"trackingUrls"`
	NATSURLs     []string `json:"natsUrls"`
}

// BootstrapConfig configures `s3dest cluster-bootstrap` (what deploy/local/bootstrap runs).
type BootstrapConfig struct {
	Procfile string        `flag:"procfile" env:"S3DEST_PROCFILE" default:"deploy/local/Procfile" help:"the cluster's Procfile"`
	EnvFile  string        `flag:"env-file" env:"S3DEST_ENV_FILE" default:"deploy/local/cluster.env" help:"its env file; a variable set in the environment wins"`
	Timeout  time.Duration `flag:"bootstrap-timeout" env:"S3DEST_BOOTSTRAP_TIMEOUT" oldflag:"timeout" default:"3m" help:"how long to wait for every process to be ready"`
}

// Validate checks the rules of each field.
func (c BootstrapConfig) Validate() error {
	if c.Procfile == "" || c.EnvFile == "" || c.Timeout <= 0 {
		return errors.New("procfile, env-file: must be set; bootstrap-timeout: must be positive")
	}
	return nil
}

// load reads the Procfile and the env file; a variable set in the environment wins over the file.
func (c BootstrapConfig) load() ([]procfile.Line, map[string]string, error) {
	lines, err := procfile.Read(c.Procfile)
	if err != nil {
		return nil, nil, err
	}
	env, err := procfile.ReadEnv(c.EnvFile)
	if err != nil {
		return nil, nil, err
	}
	for k := range env {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return lines, env, nil
}

// Await runs `s3dest await LINE…`: it returns once the named Procfile lines are ready. A line of the
// Procfile starts with it so that a service starts only after the servers it needs, under foreman as
// under the tests (foreman has no dependencies between lines).
func Await(ctx context.Context, cfg BootstrapConfig, names []string) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("usage: s3dest await LINE… (names of Procfile lines)")
	}
	lines, env, err := cfg.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	return procfile.Await(ctx, lines, env, names)
}

// ClusterBootstrap waits until every line of the Procfile is ready, creates (idempotently) the demo
// bucket and role (in the STS gate, with the policies GET /workspace tells a customer to attach), the
// demo source and its AWS S3 destination (admin REST), and writes $S3DEST_CLUSTER_DIR/summary.json.
func ClusterBootstrap(ctx context.Context, cfg BootstrapConfig, out io.Writer) (ClusterSummary, error) {
	var sum ClusterSummary
	if err := cfg.Validate(); err != nil {
		return sum, err
	}
	lines, env, err := cfg.load()
	if err != nil {
		return sum, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var gateURL, minioURL string
	for _, l := range lines {
		cmd := l.Expand(env)
		switch procfile.Program(cmd) {
		case "nats-server":
			sum.NATSURLs = append(sum.NATSURLs, "nats://127.0.0.1:"+procfile.FlagValue(cmd, "-p"))
		case "minio":
			minioURL = "http://" + procfile.FlagValue(cmd, "--address")
		case "s3dest":
			gateURL = "http://" + procfile.FlagValue(cmd, "--sts-gate-addr")
		case "ingest":
			sum.TrackingURLs = append(sum.TrackingURLs, "http://"+procfile.FlagValue(cmd, "--tracking-addr"))
		case "admin":
			sum.AdminURL = "http://" + procfile.FlagValue(cmd, "--admin-addr")
			sum.ConsoleURL = sum.AdminURL + admin.ConsolePath
			sum.GRPCAddr = procfile.FlagValue(cmd, "--admin-grpc-addr")
			sum.MetricsURL = "http://" + procfile.FlagValue(cmd, "--ops-addr") + "/metrics"
		}
	}
	if err := procfile.Await(ctx, lines, env, nil); err != nil {
		return sum, err
	}
	if sum.AdminURL == "" || gateURL == "" || minioURL == "" || len(sum.TrackingURLs) == 0 {
		return sum, errors.New("the Procfile needs an admin, an sts-gate, a minio and an ingest line")
	}
	sum.TrackingURL = sum.TrackingURLs[0]
	sum.AdminToken = env["ADMIN_TOKEN"]
	sum.S3Endpoint, sum.STSEndpoint = minioURL, gateURL
	sum.S3AccessKey, sum.S3SecretKey = env["S3_ROOT_USER"], env["S3_ROOT_PASSWORD"]
	sum.Region, sum.Bucket, sum.RoleARN, sum.IntermediateRoleARN = env["REGION"], demoBucket, demoRoleARN, env["INTERMEDIATE_ROLE_ARN"]

	api, err := newAPIClient(ClientConfig{AdminURL: sum.AdminURL, Token: sum.AdminToken})
	if err != nil {
		return sum, err
	}
	var ws struct {
		IamSetup struct {
			ExternalID       string `json:"externalId"`
			TrustPolicy      string `json:"trustPolicy"`
			PermissionPolicy string `json:"permissionPolicy"`
		} `json:"iamSetup"`
	}
	if _, err := api.call(ctx, http.MethodGet, "/workspace?"+url.Values{"bucket": {demoBucket}, "region": {sum.Region}}.Encode(), nil, &ws); err != nil {
		return sum, err
	}
	sum.WorkspaceID = ws.IamSetup.ExternalID
	devConfig, err := json.Marshal(map[string]any{"buckets": []string{demoBucket}, "roles": []any{map[string]any{
		"arn": demoRoleARN, "trustPolicy": json.RawMessage(ws.IamSetup.TrustPolicy),
		"permissionPolicies": []json.RawMessage{json.RawMessage(ws.IamSetup.PermissionPolicy)}}}})
	if err != nil {
		return sum, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, gateURL+localaws.GateDevConfigPath, bytes.NewReader(devConfig))
	if err != nil {
		return sum, err
	}
	req.SetBasicAuth(sum.S3AccessKey, sum.S3SecretKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sum, fmt.Errorf("give the STS gate the demo bucket and role: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return sum, fmt.Errorf("give the STS gate the demo bucket and role: %d %s", resp.StatusCode, body)
	}

	if err := demoSourceAndDestination(ctx, api, &sum); err != nil {
		return sum, err
	}
	dir := env["S3DEST_CLUSTER_DIR"]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sum, err
	}
	data, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return sum, err
	}
	path := filepath.Join(dir, "summary.json")
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return sum, fmt.Errorf("summary file: %w", err)
	}
	fmt.Fprintf(out, `The cluster is ready; %s has its addresses and demo credentials.

Send an event to any ingest replica (%s):
  curl -u '%s:' %s/v1/track -H 'Content-Type: application/json' \
    -d '{"userId":"u1","event":"Hello cluster"}'

It lands in s3://%s/segment-logs/%s/<receivedDay>/ within FLUSH_INTERVAL (MinIO at %s).
The console is at %s (sign in with ADMIN_TOKEN).
`, path, strings.Join(sum.TrackingURLs, ", "), sum.WriteKey, sum.TrackingURL, demoBucket, sum.SourceID, sum.S3Endpoint, sum.ConsoleURL)
	return sum, nil
}

// demoSourceAndDestination finds or creates the demo source and its AWS S3 destination through the
// admin REST API, as bootstrap does in process for `s3dest dev`.
func demoSourceAndDestination(ctx context.Context, api *apiClient, sum *ClusterSummary) error {
	var list struct {
		Sources []apiSource `json:"sources"`
	}
	if _, err := api.call(ctx, http.MethodGet, "/sources?pagination.count=200", nil, &list); err != nil {
		return err
	}
	i := slices.IndexFunc(list.Sources, func(s apiSource) bool { return s.Slug == demoSlug })
	var src apiSource
	if i >= 0 {
		src = list.Sources[i]
	} else {
		var created struct {
			Source apiSource `json:"source"`
		}
		if _, err := api.call(ctx, http.MethodPost, "/sources", map[string]any{"slug": demoSlug, "name": "Demo source", "enabled": true}, &created); err != nil {
			return fmt.Errorf("create the demo source: %w", err)
		}
		src = created.Source
	}
	sum.SourceID = src.ID
	if len(src.WriteKeys) > 0 {
		sum.WriteKey = src.WriteKeys[0]
	}
	dests, err := api.listDestinations(ctx, url.Values{})
	if err != nil {
		return err
	}
	for _, d := range dests {
		if d.SourceID == src.ID && d.Metadata.ID == layout.AWSS3MetadataID {
			sum.DestinationID = d.ID
			return nil
		}
	}
	var created struct {
		Destination apiDestination `json:"destination"`
	}
	if _, err := api.call(ctx, http.MethodPost, "/destinations", map[string]any{
		"sourceId": src.ID, "metadataId": layout.AWSS3MetadataID, "name": "Demo bucket", "enabled": true,
		"settings": apiSettings{Region: sum.Region, S3Bucket: demoBucket, IamRoleArn: demoRoleARN},
	}, &created); err != nil {
		return fmt.Errorf("create the demo destination: %w", err)
	}
	sum.DestinationID = created.Destination.ID
	return nil
}
