package copier

import (
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Config configures the copier.
type Config struct {
	platform.Common
	awsclient.Config
	RedisURL      string `flag:"redis-url" env:"S3DEST_REDIS_URL" secret:"true" default:"redis://127.0.0.1:6379/0" help:"Redis for credentials and delivery cursors"`
	StagingBucket string `flag:"staging-bucket" env:"S3DEST_STAGING_BUCKET" default:"s3dest-staging" help:"our staging bucket"`
	// OwnBuckets and the staging bucket are ours: no destination's files are ever written there.
	OwnBuckets string `flag:"own-buckets" env:"S3DEST_OWN_BUCKETS" help:"comma-separated buckets s3dest owns besides staging; no destination may name one"`
	// EnableLegacyS3 allows the Amazon S3 (legacy) destination, which writes as our own principal.
	EnableLegacyS3 bool `flag:"enable-legacy-s3" env:"S3DEST_ENABLE_LEGACY_S3" help:"deliver to Amazon S3 (legacy) destinations, which write as our own principal"`
	// CredentialsKey encrypts cached customer credentials in Redis (AES-256-GCM).
	CredentialsKey string `flag:"credentials-key" env:"S3DEST_CREDENTIALS_KEY" secret:"true" help:"base64 of 32 random bytes; encrypts cached credentials"`
	// Workers, Rate and Burst apply to each destination on its own: one destination's backlog or
	// slowness never uses another's share.
	Workers int `flag:"copier-workers" env:"S3DEST_COPIER_WORKERS" oldflag:"workers" default:"2" help:"files copied at once, per destination"`
	Rate    int `flag:"destination-rate" env:"S3DEST_DESTINATION_RATE" default:"20" help:"write requests per second, per destination"`
	Burst   int `flag:"destination-burst" env:"S3DEST_DESTINATION_BURST" default:"5" help:"write requests a destination may send at once above its rate"`
	// FailingRetry is the slow schedule of a failing destination (403, missing bucket, wrong region):
	// its files wait in staging and one attempt is made this often until the customer fixes the setup or
	// the staging retention ends.
	FailingRetry time.Duration `flag:"failing-retry" env:"S3DEST_FAILING_RETRY" default:"5m" help:"retry a failing destination this often"`
	// ReplayLease is how long a replay stays with the copier working it without a word from it: after a
	// crash, another copier takes the replay over from its cursor once the lease ends (docs/replay.md).
	ReplayLease time.Duration `flag:"replay-lease" env:"S3DEST_REPLAY_LEASE" default:"30s" help:"a replay whose copier is silent this long is taken over by another"`
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
	if _, err := awsclient.ParseOwnBuckets(c.StagingBucket, c.OwnBuckets); err != nil {
		errs = append(errs, err)
	}
	if k, err := base64.StdEncoding.DecodeString(c.CredentialsKey); err != nil || len(k) != 32 {
		errs = append(errs, errors.New("credentials-key: must be the base64 encoding of 32 random bytes (openssl rand -base64 32)"))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("copier-workers: must be at least 1, got %d", c.Workers))
	}
	if c.Rate < 1 {
		errs = append(errs, fmt.Errorf("destination-rate: must be at least 1 request per second, got %d", c.Rate))
	}
	if c.Burst < 1 {
		errs = append(errs, fmt.Errorf("destination-burst: must be at least 1, got %d", c.Burst))
	}
	if c.FailingRetry < time.Second {
		errs = append(errs, fmt.Errorf("failing-retry: must be at least 1s, got %s", c.FailingRetry))
	}
	if c.ReplayLease < time.Second {
		errs = append(errs, fmt.Errorf("replay-lease: must be at least 1s, got %s", c.ReplayLease))
	}
	return errors.Join(errs...)
}
