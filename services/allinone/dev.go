// Package allinone runs every s3dest service in one process: `s3dest dev`. The services are the same
// constructors the separate binaries use and still talk only through JetStream, so a laptop behaves
// like a cluster. Around them it runs embedded infrastructure: NATS JetStream, a Redis-compatible
// server, and a local S3 and STS that enforce IAM policies (package localaws).
package allinone

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/admin"
)

// Summary is what --summary-file receives once everything is ready (DESIGN.md §2).
type Summary struct {
	TrackingURL         string `json:"trackingUrl"`
	AdminURL            string `json:"adminUrl"`
	AdminToken          string `json:"adminToken"`
	GRPCAddr            string `json:"grpcAddr"`
	S3Endpoint          string `json:"s3Endpoint"`
	S3AccessKey         string `json:"s3AccessKey"`
	S3SecretKey         string `json:"s3SecretKey"`
	STSEndpoint         string `json:"stsEndpoint"`
	WorkspaceID         string `json:"workspaceId"`
	IntermediateRoleARN string `json:"intermediateRoleArn"`
	SourceID            string `json:"sourceId"`
	WriteKey            string `json:"writeKey"`
	Region              string `json:"region"`
	Bucket              string `json:"bucket"`
	RoleARN             string `json:"roleArn"`
	DestinationID       string `json:"destinationId"`
	MetricsURL          string `json:"metricsUrl"`
	// ConsoleURL is the web console, {adminUrl}/console/ (DESIGN.md §10).
	ConsoleURL string `json:"consoleUrl"`
}

// Dev runs `s3dest dev` until ctx ends. out receives the human-readable greeting.
func Dev(ctx context.Context, cfg DevConfig, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	log := platform.NewLogger(os.Stderr, "", cfg.LogLevel)
	sec, err := loadSecrets(cfg.DataDir)
	if err != nil {
		return err
	}
	tel, err := platform.NewTelemetry(ctx, "s3dest")
	if err != nil {
		return err
	}
	defer shutdown(tel)

	// Infrastructure first; it stops last.
	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := platform.StartNATS(cfg.NATSAddr, filepath.Join(cfg.DataDir, "nats"), cfg.SyncAlways)
		if err != nil {
			return err
		}
		defer ns.Stop()
		natsURL = ns.URL()
	}
	nc, err := platform.ConnectNATS(natsURL, "s3dest-dev", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	redisURL := cfg.RedisURL
	if redisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr(cfg.RedisAddr); err != nil {
			return fmt.Errorf("embedded redis on %s: %w", cfg.RedisAddr, err)
		}
		defer mr.Close()
		redisURL = "redis://" + mr.Addr()
	}

	// Dev stands in for the admin service as the owner of the config store and the streams.
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		return err
	}
	// The partitions come from S3DEST_PARTITIONS, as every service of the pipeline reads them.
	var common platform.Common
	if err := platform.Bind(flag.NewFlagSet("defaults", flag.ContinueOnError), &common); err != nil {
		return err
	}
	sc := bus.DefaultStreamConfig()
	sc.Retention, sc.Partitions = cfg.Retention, common.EventsPartitions()
	if _, err := admin.OwnRetention(ctx, js, store, sc, time.Now(), log); err != nil {
		return err
	}
	ws, err := admin.EnsureWorkspace(ctx, store, cfg.WorkspaceID)
	if err != nil {
		return err
	}
	if cfg.WorkspaceID != "" && ws.GetId() != cfg.WorkspaceID {
		return fmt.Errorf("workspace-id: this data directory already belongs to workspace %s; use another --data-dir", ws.GetId())
	}

	awsCfg := awsclient.Config{
		Region: cfg.Region, STSEndpoint: cfg.STSURL, S3Endpoint: cfg.S3URL, PathStyle: true,
		AccessKeyID: cfg.AWSAccessKeyID, SecretAccessKey: cfg.AWSSecretAccessKey,
		IntermediateRoleARN: cfg.IntermediateRoleARN,
	}
	rootKey, rootSecret := "", "" // an external S3's users are its owner's to hand out
	if cfg.S3URL == "" {
		aws, err := startLocalAWS(cfg, sec, ws.GetId(), log)
		if err != nil {
			return err
		}
		defer aws.stop()
		awsCfg.STSEndpoint, awsCfg.S3Endpoint = aws.sts.URL(), aws.s3.URL()
		awsCfg.AccessKeyID, awsCfg.SecretAccessKey = sec.ServiceAccessKey, sec.ServiceSecretKey
		rootKey, rootSecret = sec.RootAccessKey, sec.RootSecretKey
	}

	p := &platform.Process{Log: log, Telemetry: tel, NATS: nc, JS: js}
	plan, err := newPipeline(ctx, cfg, sec, p, store, awsCfg, natsURL, redisURL)
	if err != nil {
		return err
	}
	defer plan.close()
	demo, err := bootstrap(ctx, plan.admin, cfg.Region)
	if err != nil {
		return fmt.Errorf("bootstrap demo: %w", err)
	}

	group := service.NewGroup(log, plan.services...)
	ops, err := platform.ListenOps(cfg.MetricsAddr, group.Ready, tel.Registry)
	if err != nil {
		return err
	}
	octx, ostop := context.WithCancel(context.Background())
	defer ostop()
	go ops.Serve(octx, log)

	errc := make(chan error, 1)
	go func() { errc <- group.Run(ctx) }()
	if err := waitReady(ctx, group, errc); err != nil {
		return err
	}
	summary := Summary{
		TrackingURL: "http://" + plan.ingest.Addr(), AdminURL: plan.rest.URL(), AdminToken: sec.AdminToken,
		GRPCAddr: plan.grpc.ln.Addr().String(), S3Endpoint: awsCfg.S3Endpoint, S3AccessKey: rootKey,
		S3SecretKey: rootSecret, STSEndpoint: awsCfg.STSEndpoint, WorkspaceID: ws.GetId(),
		IntermediateRoleARN: cfg.IntermediateRoleARN, SourceID: demo.sourceID, WriteKey: demo.writeKey,
		Region: cfg.Region, Bucket: demoBucket, RoleARN: demoRoleARN, DestinationID: demo.destinationID,
		MetricsURL: "http://" + ops.Addr() + "/metrics", ConsoleURL: plan.rest.URL() + admin.ConsolePath,
	}
	if cfg.SummaryFile != "" {
		if err := writeSummary(cfg.SummaryFile, summary); err != nil {
			return err
		}
	}
	// The login file is written before the summary is printed, so whoever reads the summary (a script with
	// --json, a person reading the greeting) finds the CLI logged in already.
	loginPath := ""
	if cfg.CLILogin {
		// A login file that cannot be written (a read-only home) costs the CLI its defaults, not dev its run.
		path, err := saveLogin(loginConfig{AdminURL: summary.AdminURL, Token: summary.AdminToken})
		if err != nil {
			log.Warn("the s3dest CLI is not logged in to this dev", "error", err)
		} else {
			loginPath = path
		}
	}
	if cfg.JSON {
		if err := json.NewEncoder(out).Encode(summary); err != nil {
			return err
		}
	} else {
		greet(out, summary, cfg.FlushInterval, filepath.Join(cfg.DataDir, "secrets.json"))
		if loginPath != "" {
			fmt.Fprintf(out, "The s3dest CLI is logged in to it (%s): try `s3dest status`.\n", loginPath)
		}
	}
	return <-errc
}

// waitReady returns once every service has started, or with the error that stopped the group.
func waitReady(ctx context.Context, g *service.Group, errc chan error) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !g.Ready() {
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("stopped before it was ready")
			}
			return err
		case <-ctx.Done():
			return <-errc
		case <-t.C:
		}
	}
	return nil
}

func writeSummary(path string, s Summary) error {
	data, _ := json.MarshalIndent(s, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("summary file: %w", err)
	}
	return os.Rename(tmp, path)
}

func greet(out io.Writer, s Summary, flush time.Duration, secretsFile string) {
	day := time.Now().UTC().Truncate(24 * time.Hour).UnixMilli()
	fmt.Fprintf(out, `
s3dest dev is ready.

Send an event:
  curl -u '%s:' -H 'Content-Type: application/json' \
    -d '{"userId":"user-1","event":"Hello s3dest","properties":{"plan":"pro"}}' \
    %s/v1/track

Within %s it lands in the demo bucket at
  s3://%s/segment-logs/%s/%d/<file>.gz
written with the role %s assumed with External ID %s.

Open the console at %s (sign in with the admin token).
Look into the local S3 with any S3 client (path-style) at %s;
the admin API is at %s (bearer token) and gRPC at %s.
Credentials and the admin token are in %s (and --summary-file), never in the logs.
`, s.WriteKey, s.TrackingURL, flush, s.Bucket, s.SourceID, day, s.RoleARN, s.WorkspaceID,
		s.ConsoleURL, s.S3Endpoint, s.AdminURL, s.GRPCAddr, secretsFile)
}

func shutdown(tel *platform.Telemetry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx)
}
