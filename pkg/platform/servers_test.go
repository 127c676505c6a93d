package platform_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/platform"
)

func TestAnHTTPClientThatStallsInItsHeadersIsDisconnected(t *testing.T) {
	srv := platform.NewHTTPServer(http.NotFoundHandler(), platform.HTTPTimeouts{ReadHeader: 100 * time.Millisecond})
	for name, d := range map[string]time.Duration{"read": srv.ReadTimeout, "write": srv.WriteTimeout, "idle": srv.IdleTimeout} {
		if d <= 0 {
			t.Errorf("%s timeout unset", name)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-served })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil { // and never the blank line
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn) // ends when the server closes the connection
	if err != nil {
		t.Fatalf("the server did not close the stalled connection: %v", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("closed after %s, want about the 100ms header timeout", waited)
	}
}
