// Command ingest serves the Tracking API and the ingest.<sourceId> subjects.
package main

import (
	"context"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/ingest"
)

func main() {
	var cfg ingest.Config
	platform.Main("ingest", &cfg, &cfg.Common, func(_ context.Context, p *platform.Process) (service.Service, error) {
		return ingest.New(cfg, p)
	})
}
