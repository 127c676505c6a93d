// Command validator serves ValidatorService: the reference's checks of a destination's IAM setup.
package main

import (
	"context"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/validator"
)

func main() {
	var cfg validator.Config
	platform.Main("validator", &cfg, &cfg.Common, func(_ context.Context, p *platform.Process) (service.Service, error) {
		return validator.New(cfg, p)
	})
}
