package platform

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedNATS runs a NATS server with JetStream file storage inside this process, for `s3dest dev` and
// tests. SyncAlways makes JetStream fsync every write before acknowledging it (see DESIGN.md §3): slower,
// but an acknowledged event then survives an OS crash on a single node.
type EmbeddedNATS struct {
	*server.Server
}

// StartNATS starts a server on addr ("127.0.0.1:0" picks a free port) storing under dir.
func StartNATS(addr, dir string, syncAlways bool) (*EmbeddedNATS, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: port must be a number", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "s3dest",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: syncAlways,
		// Whole requests are published as one message: allow the largest batch plus headers.
		MaxPayload: 8 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats server did not become ready within 30s")
	}
	return &EmbeddedNATS{s}, nil
}

// URL is the client URL of the server.
func (e *EmbeddedNATS) URL() string { return e.ClientURL() }

// Stop shuts the server down and waits for it.
func (e *EmbeddedNATS) Stop() {
	e.Shutdown()
	e.WaitForShutdown()
}
