package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsServer serves /livez (the process is up), /readyz (every service started and none stopping) and
// /metrics (Prometheus) on the admin port of a process, and /debug/pprof/ when S3DEST_PPROF=true
// (off by default: profiles reveal internals and cost CPU; the benchmarks turn it on).
type OpsServer struct {
	ln  net.Listener
	srv *http.Server
}

// ListenOps binds addr (port 0 picks a free port) and returns the server; Serve starts it.
func ListenOps(addr string, ready func() bool, reg *prometheus.Registry) (*OpsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen ops %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if on, _ := strconv.ParseBool(os.Getenv("S3DEST_PPROF")); on {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &OpsServer{ln: ln, srv: NewHTTPServer(mux, HTTPTimeouts{})}, nil
}

// Addr is the bound address.
func (s *OpsServer) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends.
func (s *OpsServer) Serve(ctx context.Context, log *slog.Logger) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("ops server", "error", err)
	}
}
