// Command admin serves AdminService over gRPC and the Segment-shaped REST API.
package main

import (
	"context"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/admin"
)

func main() {
	var cfg admin.Config
	platform.Main("admin", &cfg, &cfg.Common, func(_ context.Context, p *platform.Process) (service.Service, error) {
		return admin.New(cfg, p)
	})
}
