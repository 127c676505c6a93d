package validator

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/configstore"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/testenv"
)

const serviceToken = "validator-test-token-0123456789"

// The validator binary's service, on a real gRPC port, against the local STS and S3 that enforce trust
// policies: a caller without the token is refused, and so is a caller that names its own External ID;
// the External ID used is the stored workspace's, and until a workspace exists nothing is validated.
func TestTheValidatorServesOnlyCallersWithItsTokenAndAlwaysTheStoredWorkspacesExternalID(t *testing.T) {
	ls := newLocalStack(t)
	// The role a caller would like our role to assume: it trusts us with another External ID.
	ls.dir.PutRole(localaws.Role{ARN: "arn:aws:iam::111111111111:role/attacker", TrustPolicy: policy(t, trust(intermediate, `{"StringEquals":{"sts:ExternalId":"ws-attacker"}}`)),
		PermissionPolicies: []localaws.Policy{policy(t, putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*"))}})
	ls.dir.PutRole(localaws.Role{ARN: "arn:aws:iam::111111111111:role/ok", TrustPolicy: policy(t, trust(intermediate, referenceCondition)),
		PermissionPolicies: []localaws.Policy{policy(t, putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*"))}})

	_, nc, js := testenv.NATS(t)
	tel, err := platform.NewTelemetry(t.Context(), "validator-test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Common: platform.Common{Replicas: 1, AckWait: 30 * time.Second},
		Config: awsclient.Config{Region: "us-east-1", STSEndpoint: ls.stsURL, S3Endpoint: ls.s3URL, PathStyle: true,
			AccessKeyID: userKey, SecretAccessKey: userSecret, IntermediateRoleARN: intermediate},
		GRPCAddr: "127.0.0.1:0", Timeout: 10 * time.Second, Token: serviceToken,
	}
	svc, err := New(cfg, &platform.Process{Log: slog.New(slog.DiscardHandler), Telemetry: tel, NATS: nc, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Serve(t, svc)
	client := func(opts ...grpc.DialOption) validatorv1.ValidatorServiceClient {
		conn, err := grpc.NewClient(svc.Addr(), append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return validatorv1.NewValidatorServiceClient(conn)
	}
	authorized := client(grpc.WithPerRPCCredentials(platform.BearerCredentials(serviceToken)))
	call := func(c validatorv1.ValidatorServiceClient, req *validatorv1.ValidateRequest) (*validatorv1.ValidationResult, error) {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer ccancel()
		out, err := c.Validate(cctx, req)
		return out.GetResult(), err
	}
	refused := func(what string, err error, code codes.Code, mention string) {
		t.Helper()
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), mention) {
			t.Fatalf("%s: %v, want %s naming %q", what, err, code, mention)
		}
	}

	// Before the admin service has created the workspace there is no External ID to use.
	_, err = call(authorized, request("d", "us-east-1", "cust", "arn:aws:iam::111111111111:role/ok"))
	refused("before the workspace exists", err, codes.FailedPrecondition, "workspace")
	store, err := configstore.Own(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateWorkspace(t.Context(), &configv1.Workspace{Id: workspace}); err != nil {
		t.Fatal(err)
	}

	_, err = call(client(), request("d", "us-east-1", "cust", "arn:aws:iam::111111111111:role/attacker"))
	refused("a call without a token", err, codes.Unauthenticated, "bearer token")
	_, err = call(client(grpc.WithPerRPCCredentials(platform.BearerCredentials("someone-elses-token-0123456789"))), request("d", "us-east-1", "cust", "arn:aws:iam::111111111111:role/attacker"))
	refused("a call with a wrong token", err, codes.PermissionDenied, "bearer token")

	// A caller may not choose the External ID, even with the token. (The workspace reaches the
	// validator's view within the watch's latency: until then the answer is FailedPrecondition.)
	chosen := request("d", "us-east-1", "cust", "arn:aws:iam::111111111111:role/attacker")
	chosen.WorkspaceId = "ws-attacker"
	testenv.Eventually(t, 10*time.Second, "the workspace to reach the validator", func() bool {
		_, err = call(authorized, chosen)
		return status.Code(err) != codes.FailedPrecondition
	})
	refused("a caller-chosen External ID", err, codes.PermissionDenied, "workspaceId")
	if n := ls.stsCalls.Load(); n != 0 {
		t.Fatalf("refused calls reached STS %d times", n)
	}

	// Without one, the stored workspace's ID is used: the role trusting another External ID refuses
	// us, and the role trusting ours passes. Naming the stored workspace itself is accepted.
	r, err := call(authorized, request("d", "us-east-1", "cust", "arn:aws:iam::111111111111:role/attacker"))
	if err != nil || r.GetCode() != validatorv1.ValidationCode_VALIDATION_CODE_ROLE_ACCESS_DENIED {
		t.Fatalf("the role trusting another External ID: %v %v, want ROLE_ACCESS_DENIED", err, r)
	}
	same := request("d2", "us-east-1", "cust", "arn:aws:iam::111111111111:role/ok")
	same.WorkspaceId = workspace
	for _, req := range []*validatorv1.ValidateRequest{request("d1", "us-east-1", "cust", "arn:aws:iam::111111111111:role/ok"), same} {
		if r, err := call(authorized, req); err != nil || !r.GetOk() {
			t.Fatalf("the role trusting the workspace's External ID: %v %v, want OK", err, r)
		}
	}

	// A request past the bound never reaches the handler.
	_, err = call(authorized, request(strings.Repeat("d", MaxRequestBytes), "us-east-1", "cust", "arn:aws:iam::111111111111:role/ok"))
	refused("an oversize request", err, codes.ResourceExhausted, "")
}

func TestTheValidatorRefusesToStartWithoutAToken(t *testing.T) {
	cfg := Config{Common: platform.Common{Replicas: 1, AckWait: 30 * time.Second}, GRPCAddr: "127.0.0.1:0", Timeout: 10 * time.Second,
		Config: awsclient.Config{Region: "us-east-1", IntermediateRoleARN: intermediate}}
	cases := map[string]struct{ token, want string }{
		"no token":      {"", "validator-token: must be set"},
		"a short token": {"short", "validator-token: must be at least 16 characters"},
	}
	for name, c := range cases {
		cfg.Token = c.token
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		} else if strings.Contains(err.Error(), serviceToken) {
			t.Errorf("%s: the error shows the token", name)
		}
	}
}
