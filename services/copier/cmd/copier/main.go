// Command copier delivers staged files into every enabled destination's bucket.
package main

import (
	"context"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/copier"
)

func main() {
	var cfg copier.Config
	platform.Main("copier", &cfg, &cfg.Common, func(_ context.Context, p *platform.Process) (service.Service, error) {
		return copier.New(cfg, p)
	})
}
