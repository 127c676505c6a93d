package allinone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/s3dest/s3dest/pkg/platform"
)

// httpServer is an HTTP listener run as a service, so it stops in its turn.
type httpServer struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

func listenHTTP(name, addr string, h http.Handler, t platform.HTTPTimeouts) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	return &httpServer{name: name, ln: ln, srv: platform.NewHTTPServer(h, t)}, nil
}

func (s *httpServer) Name() string                    { return s.name }
func (s *httpServer) Addr() string                    { return s.ln.Addr().String() }
func (s *httpServer) URL() string                     { return "http://" + s.Addr() }
func (s *httpServer) Start(ctx context.Context) error { return nil }

func (s *httpServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", s.name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveBackground runs an infrastructure server (local S3, STS) until stop is called.
func (s *httpServer) serveBackground() (stop func()) {
	go func() { _ = s.srv.Serve(s.ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
	}
}

// grpcServer is a gRPC listener run as a service. drain, if set, runs before the server stops: the
// admin's background validations call the validator through this server.
type grpcServer struct {
	ln    net.Listener
	srv   *grpc.Server
	drain func()
}

func (s *grpcServer) Name() string                    { return "grpc" }
func (s *grpcServer) Start(ctx context.Context) error { return nil }

func (s *grpcServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("grpc: %w", err)
	case <-ctx.Done():
	}
	if s.drain != nil {
		s.drain()
	}
	done := make(chan struct{})
	go func() { s.srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.srv.Stop()
	}
	return nil
}
