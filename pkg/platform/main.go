package platform

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/service"
)

// Process is what a service binary's main gets: its logger, telemetry, and a JetStream connection.
type Process struct {
	Log       *slog.Logger
	Telemetry *Telemetry
	NATS      *nats.Conn
	JS        jetstream.JetStream
}

// Main is the whole of a service binary's main: it parses cfg from the environment and args, sets up
// logging, telemetry and NATS, builds the service with build, runs it until SIGINT or SIGTERM, drains it,
// and exits 0 on a clean stop or 1 on failure.
func Main(name string, cfg interface{ Validate() error }, common *Common, build func(ctx context.Context, p *Process) (service.Service, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, name, cfg, common, build)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name string, cfg interface{ Validate() error }, common *Common, build func(ctx context.Context, p *Process) (service.Service, error)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if err := Bind(fs, cfg); err != nil {
		return err
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := NewLogger(os.Stderr, name, common.LogLevel)
	tel, err := NewTelemetry(ctx, name)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	nc, err := ConnectNATS(common.NATSURL, name, log, common.NATSOptions()...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	svc, err := build(ctx, &Process{Log: log, Telemetry: tel, NATS: nc, JS: js})
	if err != nil {
		return err
	}
	group := service.NewGroup(log, svc)
	ops, err := ListenOps(common.OpsAddr, group.Ready, tel.Registry)
	if err != nil {
		return err
	}
	octx, ostop := context.WithCancel(context.Background())
	defer ostop()
	go ops.Serve(octx, log)
	log.Info("running", "ops", ops.Addr())
	return group.Run(ctx)
}
