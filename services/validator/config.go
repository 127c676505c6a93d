package validator

import (
	"errors"
	"fmt"
	"time"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Config configures the validator.
type Config struct {
	platform.Common
	awsclient.Config
	GRPCAddr string `flag:"validator-grpc-addr" env:"S3DEST_VALIDATOR_GRPC_ADDR" oldflag:"grpc-addr" oldenv:"S3DEST_GRPC_ADDR" default:"127.0.0.1:7001" help:"address of ValidatorService"`
	// Token is the bearer token every caller (the admin service) must present: without it anyone who
	// reaches the port could have our role write into any bucket that trusts it. Given directly or, to
	// keep it out of ps and the environment, in a file. Never logged.
	Token string `flag:"validator-token" env:"S3DEST_VALIDATOR_TOKEN" secret:"true" help:"bearer token callers must present"`
	// Timeout bounds a whole validation: a hanging STS or S3 yields "Unknown Error" within it.
	Timeout time.Duration `flag:"validate-timeout" env:"S3DEST_VALIDATE_TIMEOUT" oldflag:"timeout" default:"10s" help:"upper bound of one validation"`
}

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Config.Validate(),
		platform.CheckSecret("validator-token", c.Token, platform.MinTokenLen)}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("validator-grpc-addr: must be host:port"))
	}
	if c.Timeout < time.Second || c.Timeout > time.Minute {
		errs = append(errs, fmt.Errorf("validate-timeout: must be between 1s and 1m, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}
