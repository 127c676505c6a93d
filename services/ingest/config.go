package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/s3dest/s3dest/pkg/platform"
)

// Limits of the Tracking API, as Segment documents them.
const (
	// MaxEventBytes is the largest single event accepted (32 KB).
	MaxEventBytes = 32 * 1024
	// MaxBatchBytes is the largest /v1/batch request accepted (500 KB).
	MaxBatchBytes = 500 * 1024
)

// Config configures ingest.
type Config struct {
	platform.Common
	// HTTPAddr serves the Tracking API.
	HTTPAddr string `flag:"http-addr" env:"S3DEST_TRACKING_ADDR" default:"127.0.0.1:8080" help:"address of the Tracking API"`
	// PublishTimeout bounds how long a request waits for JetStream before answering 503.
	PublishTimeout time.Duration `flag:"publish-timeout" env:"S3DEST_PUBLISH_TIMEOUT" default:"5s" help:"how long a request waits for JetStream before 503"`
	// RateLimit caps each source's accepted events per second (0: no limit); a request over it is
	// answered 429 with Retry-After. Bursts of up to one second's worth (and at least one batch) pass.
	RateLimit int `flag:"rate-limit" env:"S3DEST_RATE_LIMIT" default:"0" help:"events per second per source; 0 for no limit"`
	// Workers handle messages from ingest.<sourceId> at once.
	Workers int `flag:"workers" env:"S3DEST_INGEST_WORKERS" default:"4" help:"JetStream-entry messages handled at once"`
}

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http-addr: must be set, such as 127.0.0.1:8080"))
	}
	if c.PublishTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("publish-timeout: must be at least 100ms, got %s", c.PublishTimeout))
	}
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("rate-limit: must be 0 (no limit) or a positive number of events per second, got %d", c.RateLimit))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers: must be at least 1, got %d", c.Workers))
	}
	return errors.Join(errs...)
}
