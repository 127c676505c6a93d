package grpcserver_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/platform/grpcserver"
)

const testToken = "grpcserver-test-token-0123456789"

// serveHealth serves the standard health service (a unary Check and a server-streaming Watch) on a
// server from grpcserver.New, on 127.0.0.1, until the test ends.
func serveHealth(t *testing.T, cfg grpcserver.Config) string {
	t.Helper()
	srv, err := grpcserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-served })
	return ln.Addr().String()
}

func healthClient(t *testing.T, addr string, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func healthConfig() grpcserver.Config {
	return grpcserver.Config{Tokens: map[string]string{healthpb.Health_ServiceDesc.ServiceName: testToken}, MaxRecvBytes: 4 << 10}
}

func TestStreamingCallsNeedTheTokenAsUnaryCallsDo(t *testing.T) {
	addr := serveHealth(t, healthConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cases := []struct {
		name  string
		creds []grpc.DialOption
		want  codes.Code
	}{
		{"without a token", nil, codes.Unauthenticated},
		{"with a wrong token", []grpc.DialOption{grpc.WithPerRPCCredentials(platform.BearerCredentials("not-the-token-0123456789"))}, codes.PermissionDenied},
		{"with the token", []grpc.DialOption{grpc.WithPerRPCCredentials(platform.BearerCredentials(testToken))}, codes.OK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cli := healthClient(t, addr, c.creds...)
			_, err := cli.Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != c.want {
				t.Errorf("unary Check: %v, want %s", err, c.want)
			}
			stream, err := cli.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if status.Code(err) != c.want {
				t.Fatalf("streaming Watch: %v, want %s", err, c.want)
			}
			if c.want == codes.OK && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("streaming Watch answered %v", resp)
			}
		})
	}
}

func TestAServiceWithoutATokenIsRefusedEvenWithAnotherServicesToken(t *testing.T) {
	addr := serveHealth(t, grpcserver.Config{Tokens: map[string]string{"s3dest.other.v1.Other": testToken}, MaxRecvBytes: 4 << 10})
	cli := healthClient(t, addr, grpc.WithPerRPCCredentials(platform.BearerCredentials(testToken)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Check of a service without a token: %v, want PermissionDenied", err)
	}
}

func TestAMessageOverTheBoundIsRefusedWithResourceExhausted(t *testing.T) {
	addr := serveHealth(t, healthConfig()) // 4 KiB
	cli := healthClient(t, addr, grpc.WithPerRPCCredentials(platform.BearerCredentials(testToken)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cli.Check(ctx, &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 8<<10)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an 8 KiB request: %v, want ResourceExhausted", err)
	}
	// Under the bound the same call reaches the handler (which knows no such service).
	_, err = cli.Check(ctx, &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 2<<10)})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("a 2 KiB request: %v, want the handler's NotFound", err)
	}
}

// A client that pings more often than grpcserver.PingMinTime is sent GOAWAY too_many_pings and disconnected,
// whether it has a call in flight or not. The client is a raw HTTP/2 connection: grpc-go's own client
// never pings that often.
func TestAClientPingingTooOftenIsDisconnectedWithGoAwayTooManyPings(t *testing.T) {
	addr := serveHealth(t, healthConfig())
	for _, inCall := range []bool{false, true} {
		name := map[bool]string{false: "without a call in flight", true: "during a streaming call"}[inCall]
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // bounds the test if no GOAWAY comes
			bw := bufio.NewWriter(conn)
			fr := http2.NewFramer(bw, conn)
			if _, err := io.WriteString(bw, http2.ClientPreface); err != nil {
				t.Fatal(err)
			}
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			if inCall {
				openWatch(t, fr, addr)
			}
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			pinged := false
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("connection ended without GOAWAY: %v", err)
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if !f.IsAck() {
						_ = fr.WriteSettingsAck()
						_ = bw.Flush()
					}
				case *http2.GoAwayFrame:
					if f.ErrCode != http2.ErrCodeEnhanceYourCalm || string(f.DebugData()) != "too_many_pings" {
						t.Fatalf("GOAWAY %s %q, want ENHANCE_YOUR_CALM too_many_pings", f.ErrCode, f.DebugData())
					}
					for err == nil { // the answers to the first pings may still come; then the server closes
						_, err = fr.ReadFrame()
					}
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("after GOAWAY the server kept the connection open")
					}
					return
				case *http2.DataFrame:
					// The Watch's first answer: the call is in flight now.
				}
				// Ping once the call is in flight (or at once without one), back to back, more than the
				// server's strikes allow; the server answers the first pings, then GOAWAY.
				if !pinged && (!inCall || f.Header().Type == http2.FrameData) {
					pinged = true
					for i := range 10 {
						_ = fr.WritePing(false, [8]byte{byte(i)})
					}
					_ = bw.Flush()
				}
			}
		})
	}
}

// openWatch starts /grpc.health.v1.Health/Watch on stream 1 with the token: a call that stays in flight.
func openWatch(t *testing.T, fr *http2.Framer, authority string) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, h := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.health.v1.Health/Watch"}, {":authority", authority},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"authorization", "Bearer " + testToken},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// One empty HealthCheckRequest: no compression, length 0.
	if err := fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
}
