package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Config configures the admin service.
type Config struct {
	platform.Common
	GRPCAddr string `flag:"admin-grpc-addr" env:"S3DEST_ADMIN_GRPC_ADDR" oldflag:"grpc-addr" oldenv:"S3DEST_GRPC_ADDR" default:"127.0.0.1:7000" help:"address of AdminService (gRPC)"`
	HTTPAddr string `flag:"admin-addr" env:"S3DEST_ADMIN_ADDR" oldflag:"http-addr" oldenv:"S3DEST_ADMIN_HTTP_ADDR" default:"127.0.0.1:8081" help:"address of the REST API"`
	// Token authorizes every call; it is never logged.
	Token         string `flag:"admin-token" env:"S3DEST_ADMIN_TOKEN" oldflag:"token" secret:"true" help:"bearer token every admin call must present"`
	ValidatorAddr string `flag:"validator-addr" env:"S3DEST_VALIDATOR_ADDR" help:"address of ValidatorService; empty disables validation"`
	// ValidatorToken is what the validator requires of its callers (its own --validator-token); given
	// directly or, to keep it out of ps and the environment, in a file. Never logged.
	ValidatorToken string `flag:"validator-token" env:"S3DEST_VALIDATOR_TOKEN" secret:"true" help:"bearer token the validator requires (needed with validator-addr)"`
	RedisURL       string `flag:"redis-url" env:"S3DEST_REDIS_URL" secret:"true" help:"Redis with the delivery cursors; empty disables the status API"`
	WorkspaceID    string `flag:"workspace-id" env:"S3DEST_WORKSPACE_ID" help:"the workspace ID (External ID); generated once when empty"`
	// IntermediateRoleARN is the Principal customers' trust policies name (GET /workspace shows them).
	IntermediateRoleARN string `flag:"intermediate-role-arn" env:"S3DEST_INTERMEDIATE_ROLE_ARN" help:"our role that customer roles trust, shown in the trust policy"`
	// StagingBucket and OwnBuckets are ours: no destination of either kind may name one of them.
	StagingBucket string `flag:"staging-bucket" env:"S3DEST_STAGING_BUCKET" default:"s3dest-staging" help:"our staging bucket (no destination may name it)"`
	OwnBuckets    string `flag:"own-buckets" env:"S3DEST_OWN_BUCKETS" help:"comma-separated buckets s3dest owns besides staging; no destination may name one"`
	// EnableLegacyS3 allows Amazon S3 (legacy) destinations, which write as our own principal.
	EnableLegacyS3 bool `flag:"enable-legacy-s3" env:"S3DEST_ENABLE_LEGACY_S3" help:"allow Amazon S3 (legacy) destinations, which write as our own principal"`
	// Retention is the installation's one retention (DESIGN.md §3, §8): how long a staged file waits for a
	// failing destination before the copier dead-letters it. Admin owns it: it writes it to the config
	// store and applies the streams (retention + bus.RetentionMargin); the other services read it there.
	Retention time.Duration `flag:"retention" env:"S3DEST_RETENTION" default:"168h" help:"how long staged files wait for a failing destination before they are dead-lettered (1h to 2160h); the streams and staging keep them 1h longer"`
	// WriteKeyGrace is how long a rotated write key keeps working unless the rotation says otherwise.
	WriteKeyGrace time.Duration `flag:"write-key-grace" env:"S3DEST_WRITE_KEY_GRACE" default:"24h" help:"how long a rotated write key keeps working (0 revokes at once)"`
}

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if len(c.Token) < platform.MinTokenLen {
		errs = append(errs, fmt.Errorf("admin-token: must be set, at least %d characters (S3DEST_ADMIN_TOKEN)", platform.MinTokenLen))
	}
	if c.ValidatorAddr != "" {
		// The validator refuses callers without its token.
		errs = append(errs, platform.CheckSecret("validator-token", c.ValidatorToken, platform.MinTokenLen))
	}
	if c.GRPCAddr == "" || c.HTTPAddr == "" {
		errs = append(errs, errors.New("admin-grpc-addr and admin-addr: must be host:port"))
	}
	if c.IntermediateRoleARN != "" && !awsclient.RoleARN.MatchString(c.IntermediateRoleARN) {
		errs = append(errs, fmt.Errorf("intermediate-role-arn: must look like arn:aws:iam::123456789012:role/name, got %q", c.IntermediateRoleARN))
	}
	if _, err := awsclient.ParseOwnBuckets(c.StagingBucket, c.OwnBuckets); err != nil {
		errs = append(errs, err)
	}
	if err := CheckRetention(c.Retention); err != nil {
		errs = append(errs, err)
	}
	if c.WriteKeyGrace < 0 || c.WriteKeyGrace > maxWriteKeyGrace {
		errs = append(errs, fmt.Errorf("write-key-grace: must be between 0 and %s, got %s", maxWriteKeyGrace, c.WriteKeyGrace))
	}
	return errors.Join(errs...)
}
