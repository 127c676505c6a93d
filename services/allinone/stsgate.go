package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/platform"
)

// RunGate runs `s3dest sts-gate` until ctx ends: the STS trust gate (localaws.Gate) in front of a MinIO
// that runs as its own process. It listens at once, then adds our intermediate role and the
// --dev-aws-config (whose buckets it creates in MinIO, retrying until MinIO answers); GET /readyz
// answers 200 from then on. The address it serves is written to out.
func RunGate(ctx context.Context, cfg GateConfig, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := platform.NewLogger(os.Stderr, "sts-gate", cfg.LogLevel)
	var devConfig *localaws.DevConfig
	if cfg.DevAWSConfig != "" {
		c, err := localaws.LoadDevConfig(cfg.DevAWSConfig)
		if err != nil {
			return fmt.Errorf("dev-aws-config %s: %w", cfg.DevAWSConfig, err)
		}
		devConfig = &c
	}
	gate, err := localaws.NewGate(localaws.GateConfig{
		MinIOURL: cfg.MinIOURL, RootUser: cfg.MinIORootUser, RootPassword: cfg.MinIORootPassword, Region: cfg.Region,
		HTTPClient: awshttp.NewBuildableClient(), StateDir: cfg.StateDir, Logger: log,
	})
	if err != nil {
		return err
	}
	if cfg.IntermediateRoleARN != "" {
		if err := gate.PutIntermediateRole(cfg.IntermediateRoleARN); err != nil {
			return fmt.Errorf("intermediate-role-arn: %w", err)
		}
	}
	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "applying the dev AWS config", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("/", gate)
	srv, err := listenHTTP("sts-gate", cfg.Addr, mux, platform.HTTPTimeouts{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sts gate at %s in front of %s\n", srv.URL(), cfg.MinIOURL)
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()

	// MinIO may start after the gate (a Procfile starts every line at once): retry until it answers.
	for devConfig != nil {
		err := gate.Apply(ctx, *devConfig)
		if err == nil {
			break
		}
		log.Warn("apply the dev AWS config; retrying", "err", err)
		select {
		case <-ctx.Done():
			return <-errc
		case err := <-errc:
			return err
		case <-time.After(time.Second):
		}
	}
	ready.Store(true)
	log.Info("sts gate ready", "addr", srv.Addr())
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
