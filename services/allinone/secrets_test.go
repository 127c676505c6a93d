package allinone

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/platform"
)

// `s3dest dev` needs no setup for the validator's token: it generates one into secrets.json, also for a
// data directory from before the token existed (keeping that directory's other secrets), and wires it
// into the admin service. On the gRPC port ValidatorService answers that token only: not no token, not
// the admin token, and not a caller that names its own External ID.
func TestDevGuardsItsValidatorWithATokenOfItsOwnEvenInAnOlderDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	cfg := devConfig(t, t.TempDir())
	old := `{"adminToken":"s3dest_OLDADMINTOKEN0123456789ABCDEFGHIJK"}` // the other secrets are generated too
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "secrets.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	sum, _ := runDev(t, cfg)
	var sec secrets
	data, err := os.ReadFile(filepath.Join(cfg.DataDir, "secrets.json"))
	if err != nil || json.Unmarshal(data, &sec) != nil {
		t.Fatalf("read secrets.json: %v %s", err, data)
	}
	if sec.AdminToken != "s3dest_OLDADMINTOKEN0123456789ABCDEFGHIJK" || sum.AdminToken != sec.AdminToken {
		t.Fatalf("the admin token changed: %q", sec.AdminToken)
	}
	if len(sec.ValidatorToken) < platform.MinTokenLen || sec.ValidatorToken == sec.AdminToken {
		t.Fatalf("validator token %d characters, want a token of its own", len(sec.ValidatorToken))
	}
	if strings.Contains(mustJSON(sum), sec.ValidatorToken) {
		t.Fatal("the summary carries the validator token, which only the admin service needs")
	}

	// The admin service presents the token: validating the demo destination through REST passes.
	var out strings.Builder
	if err := Validate(context.Background(), ValidateConfig{AdminURL: sum.AdminURL, Token: sum.AdminToken}, sum.DestinationID, &out); err != nil {
		t.Fatalf("validate the demo destination: %v\n%s", err, out.String())
	}

	validate := func(token, workspaceID string) error {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(platform.BearerCredentials(token)))
		}
		conn, err := grpc.NewClient(sum.GRPCAddr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = validatorv1.NewValidatorServiceClient(conn).Validate(ctx, &validatorv1.ValidateRequest{
			DestinationId: "d", WorkspaceId: workspaceID,
			Settings: &configv1.DestinationSettings{Region: sum.Region, S3Bucket: sum.Bucket, IamRoleArn: sum.RoleARN},
		})
		return err
	}
	for _, c := range []struct {
		name, token, workspace string
		want                   codes.Code
	}{
		{"no token", "", "", codes.Unauthenticated},
		{"the admin token", sum.AdminToken, "", codes.PermissionDenied},
		{"the validator token with a chosen External ID", sec.ValidatorToken, "ws-chosen-by-caller", codes.PermissionDenied},
		{"the validator token", sec.ValidatorToken, "", codes.OK},
	} {
		if err := validate(c.token, c.workspace); status.Code(err) != c.want {
			t.Errorf("ValidatorService called with %s: %v, want %s", c.name, err, c.want)
		}
	}
}
