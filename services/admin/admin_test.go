package admin

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/platform/grpcserver"
	"github.com/s3dest/s3dest/pkg/testenv"
)

const validatorToken = "admin-test-validator-token-0123456789"

// tokenValidator stands in for the validator behind a real gRPC server that requires the validator
// token (the validator itself is tested in its module): every validation it runs passes.
type tokenValidator struct {
	validatorv1.UnimplementedValidatorServiceServer
}

func (tokenValidator) Validate(context.Context, *validatorv1.ValidateRequest) (*validatorv1.ValidateResponse, error) {
	return &validatorv1.ValidateResponse{Result: &validatorv1.ValidationResult{Ok: true, Code: validatorv1.ValidationCode_VALIDATION_CODE_OK}}, nil
}

func serveValidator(t *testing.T) string {
	t.Helper()
	srv, err := grpcserver.New(grpcserver.Config{
		Tokens: map[string]string{validatorv1.ValidatorService_ServiceDesc.ServiceName: validatorToken}, MaxRecvBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	validatorv1.RegisterValidatorServiceServer(srv, tokenValidator{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-served })
	return ln.Addr().String()
}

// startAdmin runs the admin binary's service with cfg's validator settings on free ports.
func startAdmin(t *testing.T, cfg Config) (*Service, *api) {
	t.Helper()
	_, nc, js := testenv.NATS(t)
	tel, err := platform.NewTelemetry(t.Context(), "admin-test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Common = platform.Common{Replicas: 1, AckWait: 30 * time.Second}
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.Token, cfg.WorkspaceID = "127.0.0.1:0", "127.0.0.1:0", token, "ws-admin-service-test"
	if cfg.Retention == 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	svc, err := New(cfg, &platform.Process{Log: slog.New(slog.DiscardHandler), Telemetry: tel, NATS: nc, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Serve(t, svc)
	return svc, &api{t: t, url: "http://" + svc.hln.Addr().String()}
}

func (a *api) destination() string {
	src := a.ok("POST", "/sources", `{"slug":"v"}`)["source"].(map[string]any)["id"].(string)
	return a.ok("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"60be92c8dabdd561bf6c9130",
		"settings":{"region":"us-east-1","s3Bucket":"b1b","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)["destination"].(map[string]any)["id"].(string)
}

// The admin binary presents the validator token, read from --validator-token-file, on every call to the
// validator; a token the validator does not accept is reported as the admin's misconfiguration, naming
// the setting, not as the REST caller's fault.
func TestTheAdminServicePresentsTheValidatorTokenFromItsFile(t *testing.T) {
	addr := serveValidator(t)
	file := filepath.Join(t.TempDir(), "validator-token")
	if err := os.WriteFile(file, []byte(validatorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// As the binary reads it: platform.Bind, with the token in a file named by the flag.
	var bound Config
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	if err := platform.Bind(fs, &bound); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--validator-token-file", file}); err != nil {
		t.Fatal(err)
	}
	_, a := startAdmin(t, Config{ValidatorAddr: addr, ValidatorToken: bound.ValidatorToken})
	v := a.ok("POST", "/destinations/"+a.destination()+"/validate", "")["validation"].(map[string]any)
	if v["code"] != "VALIDATION_CODE_OK" {
		t.Fatalf("validation = %v", v)
	}

	_, wrong := startAdmin(t, Config{ValidatorAddr: addr, ValidatorToken: "not-the-validator-token-0123456789"})
	code, out := wrong.call("POST", "/destinations/"+wrong.destination()+"/validate", "", "Bearer "+token)
	if _, msg := errorOf(t, out); code != 503 || !strings.Contains(msg, "validator-token") {
		t.Fatalf("with a wrong validator token: %d %q, want 503 naming validator-token", code, msg)
	}
}

// AdminService's gRPC port takes the admin token only, and bounds a request's size.
func TestAdminsGRPCPortNeedsTheTokenAndBoundsRequests(t *testing.T) {
	svc, _ := startAdmin(t, Config{})
	call := func(tok string, req *adminv1.CreateSourceRequest) error {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if tok != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(platform.BearerCredentials(tok)))
		}
		conn, err := grpc.NewClient(svc.gln.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = adminv1.NewAdminServiceClient(conn).CreateSource(ctx, req)
		return err
	}
	for _, c := range []struct {
		name, token string
		req         *adminv1.CreateSourceRequest
		want        codes.Code
	}{
		{"without a token", "", &adminv1.CreateSourceRequest{Slug: "g"}, codes.Unauthenticated},
		{"with the validator's token", validatorToken, &adminv1.CreateSourceRequest{Slug: "g"}, codes.PermissionDenied},
		{"over the size bound", token, &adminv1.CreateSourceRequest{Slug: "g", Name: strings.Repeat("n", MaxRequestBytes)}, codes.ResourceExhausted},
		{"with the token", token, &adminv1.CreateSourceRequest{Slug: "g"}, codes.OK},
	} {
		if err := call(c.token, c.req); status.Code(err) != c.want {
			t.Errorf("CreateSource %s: %v, want %s", c.name, err, c.want)
		}
	}
}

func TestTheValidatorTokenIsRequiredWithAValidatorAddress(t *testing.T) {
	cfg := Config{Common: platform.Common{Replicas: 1, AckWait: 30 * time.Second}, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Token: token, ValidatorAddr: "127.0.0.1:7001", Retention: 7 * 24 * time.Hour}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "validator-token: must be set") {
		t.Fatalf("validator-addr without a token: %v", err)
	}
	cfg.ValidatorAddr = ""
	if err := cfg.Validate(); err != nil {
		t.Fatalf("no validator, no token: %v", err)
	}
}
