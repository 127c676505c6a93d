// Package grpcserver builds every gRPC server s3dest runs (AdminService, ValidatorService), so that all
// of them authenticate every call, unary and streaming, by bearer token, bound the size of a request, and
// enforce keepalive rules: a server without them takes any message size and any ping rate from anyone.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/s3dest/s3dest/pkg/platform"
)

// Config describes a gRPC server.
type Config struct {
	// Tokens maps the full name of each gRPC service the server carries (such as
	// "s3dest.admin.v1.AdminService") to the bearer token its callers must present. Every call, unary or
	// streaming, is checked; a call to a service without a token is refused, so a service registered
	// without one is never open.
	Tokens map[string]string
	// MaxRecvBytes bounds one received message; a larger one is refused with RESOURCE_EXHAUSTED before
	// any handler runs. It must be set: each API knows how large its requests can be.
	MaxRecvBytes int
	// Telemetry, when set, traces and measures every call (rpc_server_* metrics on /metrics).
	Telemetry *platform.Telemetry
}

// Keepalive rules of every gRPC server.
const (
	// PingMinTime is the shortest interval between a client's pings that the server accepts; a client
	// pinging more often is sent GOAWAY (ENHANCE_YOUR_CALM, "too_many_pings") and disconnected. grpc-go
	// clients never ping more often than every 10 s.
	PingMinTime = 5 * time.Second
	// MaxConnectionIdle closes a connection that has carried no call for this long; the client
	// reconnects on its next call.
	MaxConnectionIdle = 5 * time.Minute
	// MaxConnectionAge closes (gracefully, after MaxConnectionAgeGrace for the calls in flight, which
	// covers a validation's bound of at most a minute) a connection this old, so that clients spread over
	// replicas that started after them.
	MaxConnectionAge      = 30 * time.Minute
	MaxConnectionAgeGrace = 2 * time.Minute
	// PingInterval and PingTimeout: the server pings a connection silent for PingInterval and closes it
	// when the answer does not come within PingTimeout, so a vanished client's calls end.
	PingInterval = time.Minute
	PingTimeout  = 20 * time.Second
)

// New returns a gRPC server with cfg's authentication and message bound and the keepalive rules
// above. Register services on it, then Serve.
func New(cfg Config) (*grpc.Server, error) {
	if cfg.MaxRecvBytes <= 0 {
		return nil, fmt.Errorf("grpc server: MaxRecvBytes must be positive, got %d", cfg.MaxRecvBytes)
	}
	tokens, err := newServiceTokens(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: PingMinTime,
			// A connection without calls has nothing to keep alive: MaxConnectionIdle closes it.
			PermitWithoutStream: false,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     MaxConnectionIdle,
			MaxConnectionAge:      MaxConnectionAge,
			MaxConnectionAgeGrace: MaxConnectionAgeGrace,
			Time:                  PingInterval,
			Timeout:               PingTimeout,
		}),
		grpc.ChainUnaryInterceptor(tokens.unary),
		grpc.ChainStreamInterceptor(tokens.stream),
	}
	if cfg.Telemetry != nil {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(cfg.Telemetry.Tracer), otelgrpc.WithMeterProvider(cfg.Telemetry.Meter))))
	}
	return grpc.NewServer(opts...), nil
}

// serviceTokens is the token of each gRPC service, by full service name.
type serviceTokens map[string]platform.BearerToken

func newServiceTokens(tokens map[string]string) (serviceTokens, error) {
	if len(tokens) == 0 {
		return nil, errors.New("grpc server: Tokens must name the token of every service it carries")
	}
	a := serviceTokens{}
	for svc, tok := range tokens {
		if tok == "" {
			return nil, fmt.Errorf("grpc server: the token of %s is empty", svc)
		}
		a[svc] = platform.NewBearerToken(tok)
	}
	return a, nil
}

// check authenticates a call to fullMethod ("/package.Service/Method").
func (a serviceTokens) check(ctx context.Context, fullMethod string) error {
	svc, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	tok, ok := a[svc]
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s: no caller is authorized for this service", svc)
	}
	var h string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			h = v[0]
		}
	}
	return tok.Check(h)
}

func (a serviceTokens) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a serviceTokens) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
