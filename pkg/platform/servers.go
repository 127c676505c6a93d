package platform

import (
	"net/http"
	"time"
)

// Every HTTP server s3dest runs is built by NewHTTPServer (and every gRPC server by grpcserver.New), so
// that none of them waits forever on a slow or silent client: a server with no timeouts keeps a
// goroutine and a connection per slowloris client.

// HTTPTimeouts bound one connection of an HTTP server. A zero field takes the default below, which fits a
// request/response API whose bodies are at most a few megabytes.
type HTTPTimeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request, headers and body.
	Read time.Duration
	// Write bounds the time from the end of the request's headers to the end of the response, so it
	// covers reading the body and the handler's work as well as writing the answer.
	Write time.Duration
	// Idle bounds how long a keep-alive connection waits for its next request.
	Idle time.Duration
}

// The default HTTP timeouts.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	// DefaultWriteTimeout covers a body read within DefaultReadTimeout plus the handler's own bound
	// (such as ingest's publish timeout).
	DefaultWriteTimeout = time.Minute
	DefaultIdleTimeout  = 2 * time.Minute
)

// NewHTTPServer returns the server of h with every timeout set: t's, or the default for a zero field.
// (A profile from net/http/pprof extends its own write deadline by its duration.)
func NewHTTPServer(h http.Handler, t HTTPTimeouts) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(t.ReadHeader, DefaultReadHeaderTimeout),
		ReadTimeout:       or(t.Read, DefaultReadTimeout),
		WriteTimeout:      or(t.Write, DefaultWriteTimeout),
		IdleTimeout:       or(t.Idle, DefaultIdleTimeout),
	}
}
