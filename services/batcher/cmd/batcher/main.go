// Command batcher seals the EVENTS stream into gzip NDJSON files per source and received day.
package main

import (
	"context"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/service"
	"github.com/s3dest/s3dest/services/batcher"
)

func main() {
	var cfg batcher.Config
	platform.Main("batcher", &cfg, &cfg.Common, func(_ context.Context, p *platform.Process) (service.Service, error) {
		return batcher.New(cfg, p)
	})
}
