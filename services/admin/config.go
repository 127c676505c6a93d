package admin

import (
	"errors"

	"github.com/s3dest/s3dest/pkg/platform"
)

// Config configures the admin service.
type Config struct {
	platform.Common
	GRPCAddr string `flag:"grpc-addr" env:"S3DEST_GRPC_ADDR" default:"127.0.0.1:7000" help:"address of AdminService (gRPC)"`
	HTTPAddr string `flag:"http-addr" env:"S3DEST_ADMIN_HTTP_ADDR" default:"127.0.0.1:8081" help:"address of the REST API"`
	// Token authorizes every call; it is never logged.
	Token         string `flag:"token" env:"S3DEST_ADMIN_TOKEN" help:"bearer token every admin call must present"`
	ValidatorAddr string `flag:"validator-addr" env:"S3DEST_VALIDATOR_ADDR" help:"address of ValidatorService; empty disables validation"`
	RedisURL      string `flag:"redis-url" env:"S3DEST_REDIS_URL" help:"Redis with the delivery cursors; empty disables the status API"`
	WorkspaceID   string `flag:"workspace-id" env:"S3DEST_WORKSPACE_ID" help:"the workspace ID (External ID); generated once when empty"`
}

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if len(c.Token) < 16 {
		errs = append(errs, errors.New("token: must be set, at least 16 characters (S3DEST_ADMIN_TOKEN)"))
	}
	if c.GRPCAddr == "" || c.HTTPAddr == "" {
		errs = append(errs, errors.New("grpc-addr and http-addr: must be host:port"))
	}
	return errors.Join(errs...)
}
