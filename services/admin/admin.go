// Package admin is the control plane: AdminService over gRPC and, generated from the same proto, a
// REST API with the shapes of Segment's Public API (/sources, /destinations, ...). It owns the KV bucket
// CONFIG; every other service watches it, so changes take effect without restarts.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/cursor"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/platform/grpcserver"
)

// MaxRequestBytes bounds one gRPC request to AdminService: its requests carry a few settings and IDs,
// so a megabyte leaves room without letting a caller make the server buffer more.
const MaxRequestBytes = 1 << 20

// RESTWriteTimeout is the REST API's HTTP write timeout (its other timeouts are the defaults):
// POST /destinations/{id}/validate answers when the validation ends, which the validator bounds by its
// --validate-timeout (at most a minute).
const RESTWriteTimeout = 2 * time.Minute

// Service is the admin binary's service: AdminService on gRPC and REST.
type Service struct {
	cfg  Config
	p    *platform.Process
	grpc *grpc.Server
	http *http.Server
	gln  net.Listener
	hln  net.Listener
	conn *grpc.ClientConn
	srv  *Server
	// reapply is when the streams' max age must be applied again (a shrink waiting out the margin).
	reapply time.Time
	store   *configstore.Store
}

// New validates cfg; it does no I/O.
func New(cfg Config, p *platform.Process) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, p: p}, nil
}

// Name implements service.Service.
func (s *Service) Name() string { return "admin" }

// Start owns the config store and the streams (their replicas and the retention), makes sure the
// workspace exists and binds both ports.
func (s *Service) Start(ctx context.Context) error {
	store, err := configstore.Own(ctx, s.p.JS, s.cfg.Replicas)
	if err != nil {
		return err
	}
	s.store = store
	replays, err := configstore.OwnReplays(ctx, s.p.JS, s.cfg.Replicas)
	if err != nil {
		return err
	}
	if s.reapply, err = OwnRetention(ctx, s.p.JS, store, s.streamConfig(), time.Now(), s.p.Log); err != nil {
		return err
	}
	view, err := store.Watch(context.WithoutCancel(ctx), s.p.Log)
	if err != nil {
		return err
	}
	if _, err := EnsureWorkspace(ctx, store, s.cfg.WorkspaceID); err != nil {
		return err
	}
	var val validatorv1.ValidatorServiceClient
	if s.cfg.ValidatorAddr != "" {
		var err error
		if s.conn, err = grpc.NewClient(s.cfg.ValidatorAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(platform.BearerCredentials(s.cfg.ValidatorToken)),
			grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(s.p.Telemetry.Tracer), otelgrpc.WithMeterProvider(s.p.Telemetry.Meter)))); err != nil {
			return fmt.Errorf("validator client: %w", err)
		}
		val = validatorv1.NewValidatorServiceClient(s.conn)
	}
	var cursors *cursor.Store
	if s.cfg.RedisURL != "" {
		rdb, err := platform.ConnectRedis(ctx, s.cfg.RedisURL)
		if err != nil {
			return err
		}
		cursors = cursor.New(rdb, 35*24*time.Hour)
	}
	own, _ := awsclient.ParseOwnBuckets(s.cfg.StagingBucket, s.cfg.OwnBuckets) // Validate checked it
	srv := NewServer(store, view, val, cursors, s.p.Log, WithPrincipal(s.cfg.IntermediateRoleARN), WithWriteKeyGrace(s.cfg.WriteKeyGrace),
		WithOwnBuckets(own.Names()...), WithLegacyS3(s.cfg.EnableLegacyS3), WithJetStream(s.p.JS), WithReplays(replays))
	s.srv = srv
	if s.grpc, err = grpcserver.New(grpcserver.Config{
		Tokens:       map[string]string{adminv1.AdminService_ServiceDesc.ServiceName: s.cfg.Token},
		MaxRecvBytes: MaxRequestBytes,
		Telemetry:    s.p.Telemetry,
	}); err != nil {
		return err
	}
	srv.Register(s.grpc)
	h, err := RESTHandler(context.WithoutCancel(ctx), srv, s.cfg.Token)
	if err != nil {
		return err
	}
	s.http = platform.NewHTTPServer(h, platform.HTTPTimeouts{Write: RESTWriteTimeout})
	if s.gln, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.GRPCAddr, err)
	}
	if s.hln, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.HTTPAddr, err)
	}
	return nil
}

// streamConfig is what admin applies to the streams it owns.
func (s *Service) streamConfig() bus.StreamConfig {
	sc := s.cfg.Common.StreamConfig()
	sc.Retention = s.cfg.Retention
	return sc
}

// Run serves until ctx ends, then finishes the calls in flight.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.gln) }()
	go func() { errc <- s.http.Serve(s.hln) }()
	for waiting := true; waiting; {
		var reapply <-chan time.Time
		if !s.reapply.IsZero() {
			t := time.NewTimer(time.Until(s.reapply))
			defer t.Stop()
			reapply = t.C
		}
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			waiting = false
		case <-reapply:
			again, err := OwnRetention(ctx, s.p.JS, s.store, s.streamConfig(), time.Now(), s.p.Log)
			if err != nil {
				s.p.Log.Warn("apply the streams' retention; trying again in a minute", "error", err)
				again = time.Now().Add(time.Minute)
			}
			s.reapply = again
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(sctx)
	s.grpc.GracefulStop()
	s.srv.Close()
	if s.conn != nil {
		s.conn.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
