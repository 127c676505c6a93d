// Command stager copies sealed batch files into the staging bucket.
package main

import (
	"context"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/stager"
)

func main() {
	var cfg stager.Config
	platform.Main("stager", &cfg, &cfg.Common, func(_ context.Context, p *platform.Process) (service.Service, error) {
		return stager.New(cfg, p)
	})
}
