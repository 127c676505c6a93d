package stager

import (
	"errors"
	"fmt"
	"time"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Config configures the stager.
type Config struct {
	platform.Common
	awsclient.Config
	// Bucket is our staging bucket; files wait there until every destination has them.
	Bucket string `flag:"staging-bucket" env:"S3DEST_STAGING_BUCKET" default:"s3dest-staging" help:"our staging bucket"`
	// Retention is deprecated and ignored: the retention is one setting, the admin service's --retention
	// (S3DEST_RETENTION), which the stager reads from the config store. A stager given this says so.
	Retention time.Duration `flag:"staging-retention" env:"S3DEST_STAGING_RETENTION" help:"deprecated and ignored: set the admin service's --retention (S3DEST_RETENTION)"`
	Workers   int           `flag:"stager-workers" env:"S3DEST_STAGER_WORKERS" oldflag:"workers" default:"2" help:"files staged at once"`
}

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Config.Validate()}
	if c.Bucket == "" {
		errs = append(errs, errors.New("staging-bucket: must be set"))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("stager-workers: must be at least 1, got %d", c.Workers))
	}
	return errors.Join(errs...)
}
