package allinone

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/cursor"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/platform/grpcserver"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/admin"
	"github.com/s3dest/s3dest/services/batcher"
	"github.com/s3dest/s3dest/services/copier"
	"github.com/s3dest/s3dest/services/ingest"
	"github.com/s3dest/s3dest/services/stager"
	"github.com/s3dest/s3dest/services/validator"
)

// pipeline is every service of s3dest, built by the same constructors as the separate binaries.
type pipeline struct {
	// services in pipeline order: Group starts them in this order and stops them in this order too, so
	// ingest stops accepting before the batcher seals its last files, which the stager and copier then
	// still see on the next start.
	services []service.Service

	ingest *ingest.Ingest
	admin  *admin.Server
	grpc   *grpcServer
	rest   *httpServer
	conns  []*nats.Conn // the services' own NATS connections
}

// close drains the services' NATS connections, once the services have stopped.
func (p *pipeline) close() {
	for _, nc := range p.conns {
		_ = nc.Drain()
	}
}

// newPipeline builds every service for one process. awsCfg says where S3 and STS are and who we are.
func newPipeline(ctx context.Context, cfg DevConfig, sec secrets, p *platform.Process, store *configstore.Store, awsCfg awsclient.Config, natsURL, redisURL string) (_ *pipeline, err error) {
	// Each service config starts from its defaults and S3DEST_* environment, as the service's own binary
	// would see them without flags: defaults live in one place, the config structs.
	var bindErr error
	defaults := func(cfg any) {
		if err := platform.Bind(flag.NewFlagSet("defaults", flag.ContinueOnError), cfg); err != nil && bindErr == nil {
			bindErr = err
		}
	}
	var (
		ic ingest.Config
		bc batcher.Config
		sc stager.Config
		cc copier.Config
		vc validator.Config
	)
	for _, c := range []any{&ic, &bc, &sc, &cc, &vc} {
		defaults(c)
	}
	if bindErr != nil {
		return nil, bindErr
	}
	common := ic.Common // defaults and S3DEST_* environment (ack wait, ...)
	common.NATSURL, common.LogLevel, common.Replicas = natsURL, cfg.LogLevel, 1
	with := func(name string) *platform.Process {
		return &platform.Process{Log: p.Log.With("service", name), Telemetry: p.Telemetry, NATS: p.NATS, JS: p.JS}
	}
	// The data-plane services get a NATS connection each, as separate binaries would: one connection's
	// single read loop would otherwise carry every service's messages and acks in turn.
	var conns []*nats.Conn
	own := func(name string) (*platform.Process, error) {
		nc, err := platform.ConnectNATS(natsURL, "s3dest-"+name, p.Log)
		if err != nil {
			return nil, err
		}
		conns = append(conns, nc)
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		proc := with(name)
		proc.NATS, proc.JS = nc, js
		return proc, nil
	}
	defer func() {
		if err != nil {
			for _, nc := range conns {
				nc.Close()
			}
		}
	}()

	ic.Common, ic.HTTPAddr = common, cfg.TrackingAddr
	proc, err := own("ingest")
	if err != nil {
		return nil, err
	}
	in, err := ingest.New(ic, proc)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}

	bc.Common, bc.RedisURL, bc.FlushInterval, bc.MaxFileBytes = common, redisURL, cfg.FlushInterval, cfg.MaxFileBytes
	proc, err = own("batcher")
	if err != nil {
		return nil, err
	}
	bt, err := batcher.New(bc, proc)
	if err != nil {
		return nil, fmt.Errorf("batcher: %w", err)
	}

	sc.Common, sc.Config, sc.Bucket = common, awsCfg, stagingBucket
	proc, err = own("stager")
	if err != nil {
		return nil, err
	}
	st, err := stager.New(sc, proc)
	if err != nil {
		return nil, fmt.Errorf("stager: %w", err)
	}

	cc.Common, cc.Config, cc.RedisURL, cc.StagingBucket, cc.CredentialsKey = common, awsCfg, redisURL, stagingBucket, sec.CredentialsKey
	cc.EnableLegacyS3 = cfg.EnableLegacyS3
	ours, err := awsclient.ParseOwnBuckets(stagingBucket, cc.OwnBuckets) // admin refuses the buckets the copier refuses
	if err != nil {
		return nil, err
	}
	proc, err = own("copier")
	if err != nil {
		return nil, err
	}
	cp, err := copier.New(cc, proc)
	if err != nil {
		return nil, fmt.Errorf("copier: %w", err)
	}

	// The control plane: AdminService and ValidatorService share one gRPC server; REST is the gateway.
	clients, err := awsclient.New(ctx, awsCfg, p.Telemetry.Tracer)
	if err != nil {
		return nil, err
	}
	view, err := store.Watch(context.WithoutCancel(ctx), with("admin").Log)
	if err != nil {
		return nil, err
	}
	vm, err := platform.NewMetrics(p.Telemetry.Meter)
	if err != nil {
		return nil, err
	}
	val := validator.NewValidator(clients, view, with("validator").Log, vc.Timeout, vm)
	// Each service keeps its own token, as the separate binaries do: the admin token opens AdminService
	// only, and ValidatorService answers only the validator token, which only the admin service holds.
	gs, err := grpcserver.New(grpcserver.Config{
		Tokens: map[string]string{
			adminv1.AdminService_ServiceDesc.ServiceName:         sec.AdminToken,
			validatorv1.ValidatorService_ServiceDesc.ServiceName: sec.ValidatorToken,
		},
		MaxRecvBytes: max(admin.MaxRequestBytes, validator.MaxRequestBytes),
		Telemetry:    p.Telemetry,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("grpc: listen %s: %w", cfg.GRPCAddr, err)
	}
	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(platform.BearerCredentials(sec.ValidatorToken)))
	if err != nil {
		return nil, err
	}
	rdb, err := platform.ConnectRedis(ctx, redisURL)
	if err != nil {
		return nil, err
	}
	replays, err := configstore.OwnReplays(ctx, p.JS, common.Replicas)
	if err != nil {
		return nil, err
	}
	adm := admin.NewServer(store, view, validatorv1.NewValidatorServiceClient(conn), cursor.New(rdb, 35*24*time.Hour), with("admin").Log,
		admin.WithPrincipal(cfg.IntermediateRoleARN), admin.WithOwnBuckets(ours.Names()...), admin.WithLegacyS3(cfg.EnableLegacyS3), admin.WithJetStream(p.JS), admin.WithReplays(replays))
	adm.Register(gs)
	val.Register(gs)
	restHandler, err := admin.RESTHandler(ctx, adm, sec.AdminToken)
	if err != nil {
		return nil, err
	}
	rest, err := listenHTTP("admin-rest", cfg.AdminAddr, restHandler, platform.HTTPTimeouts{Write: admin.RESTWriteTimeout})
	if err != nil {
		return nil, err
	}
	grpcSrv := &grpcServer{ln: ln, srv: gs, drain: adm.Close}
	return &pipeline{
		services: []service.Service{in, bt, st, cp, rest, grpcSrv},
		ingest:   in, admin: adm, grpc: grpcSrv, rest: rest, conns: conns,
	}, nil
}
