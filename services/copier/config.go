package copier

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Config configures the copier.
type Config struct {
	platform.Common
	awsclient.Config
	RedisURL      string `flag:"redis-url" env:"S3DEST_REDIS_URL" default:"redis://127.0.0.1:6379/0" help:"Redis for credentials and delivery cursors"`
	StagingBucket string `flag:"staging-bucket" env:"S3DEST_STAGING_BUCKET" default:"s3dest-staging" help:"our staging bucket"`
	// CredentialsKey encrypts cached customer credentials in Redis (AES-256-GCM).
	CredentialsKey string `flag:"credentials-key" env:"S3DEST_CREDENTIALS_KEY" help:"base64 of 32 random bytes; encrypts cached credentials"`
	Workers        int    `flag:"workers" env:"S3DEST_COPIER_WORKERS" default:"4" help:"files copied at once"`
}

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Config.Validate()}
	if c.RedisURL == "" {
		errs = append(errs, errors.New("redis-url: must be set"))
	}
	if c.StagingBucket == "" {
		errs = append(errs, errors.New("staging-bucket: must be set"))
	}
	if k, err := base64.StdEncoding.DecodeString(c.CredentialsKey); err != nil || len(k) != 32 {
		errs = append(errs, errors.New("credentials-key: must be the base64 encoding of 32 random bytes (openssl rand -base64 32)"))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers: must be at least 1, got %d", c.Workers))
	}
	return errors.Join(errs...)
}
