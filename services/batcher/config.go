package batcher

import (
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/s3dest/s3dest/pkg/platform"
)

// HardMaxFileBytes is the product's promise: no file reaches 100 MB.
const HardMaxFileBytes = 100_000_000

// Config configures the batcher.
type Config struct {
	platform.Common
	RedisURL string `flag:"redis-url" env:"S3DEST_REDIS_URL" secret:"true" default:"redis://127.0.0.1:6379/0" help:"Redis for per-day status counters (rebuildable; never trusted for which events are sealed)"`
	// FlushInterval is the age at which an open file is sealed even if it is small: it bounds how late an
	// event reaches the customer's bucket. One minute keeps data fresh while a busy source still fills
	// large files; the reference promises about an hour, so there is room to raise it for fewer files.
	FlushInterval time.Duration `flag:"flush-interval" env:"S3DEST_FLUSH_INTERVAL" default:"1m" help:"seal a file when its oldest event is this old"`
	// MaxFileBytes is the compressed size at which a file is sealed (at most 100 MB).
	MaxFileBytes int64 `flag:"max-file-bytes" env:"S3DEST_MAX_FILE_BYTES" default:"99000000" help:"seal a file before its compressed size reaches this"`
	// GzipLevel trades CPU for size. Level 2 (klauspost/compress) measured best on both axes among 1, 2,
	// 3 and 6 for event NDJSON that compresses like real payloads (BenchmarkRawGzip, README): the best
	// ratio (6.36 vs 6.25, 6.32, 6.06) at 1.9 CPU-s/GB (vs 1.8, 2.4, 4.6).
	GzipLevel int `flag:"gzip-level" env:"S3DEST_GZIP_LEVEL" default:"2" help:"gzip level, 1 (fastest) to 9 (smallest)"`
	// DedupeWindow is how long a messageId is remembered per source: a retried event within it is
	// written once. Ten minutes matches JetStream's duplicate window for whole requests.
	DedupeWindow time.Duration `flag:"dedupe-window" env:"S3DEST_DEDUPE_WINDOW" default:"10m" help:"drop an event whose messageId the source sent this recently (0: off)"`
	// DedupeMaxIDs caps the messageIds remembered for the dedupe window, at most 36 bytes each (72 MB for
	// the default). Past it the window is cut short (s3dest_batcher_dedupe_window_shortened_total): a
	// retry older than that is written twice, never lost. 2M is 20 minutes at 1,700 events/s.
	DedupeMaxIDs int `flag:"dedupe-max-ids" env:"S3DEST_DEDUPE_MAX_IDS" default:"2000000" help:"messageIds remembered at most for the dedupe window (36 bytes each)"`
	// MaxOpenMessages bounds the EVENTS messages held unacknowledged in open files.
	MaxOpenMessages int `flag:"max-open-messages" env:"S3DEST_MAX_OPEN_MESSAGES" default:"200000" help:"EVENTS messages held in open files"`
}

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.FlushInterval < 100*time.Millisecond || c.FlushInterval > 6*time.Hour {
		errs = append(errs, fmt.Errorf("flush-interval: must be between 100ms and 6h, got %s", c.FlushInterval))
	}
	if c.MaxFileBytes < 1_000_000 || c.MaxFileBytes > HardMaxFileBytes {
		errs = append(errs, fmt.Errorf("max-file-bytes: must be between 1000000 and %d (files stay under 100 MB), got %d", HardMaxFileBytes, c.MaxFileBytes))
	}
	if c.GzipLevel < gzip.BestSpeed || c.GzipLevel > gzip.BestCompression {
		errs = append(errs, fmt.Errorf("gzip-level: must be 1 to 9, got %d", c.GzipLevel))
	}
	if c.MaxOpenMessages < 1000 {
		errs = append(errs, fmt.Errorf("max-open-messages: must be at least 1000, got %d", c.MaxOpenMessages))
	}
	if c.DedupeWindow < 0 || c.DedupeWindow > 24*time.Hour {
		errs = append(errs, fmt.Errorf("dedupe-window: must be between 0 (off) and 24h, got %s", c.DedupeWindow))
	}
	if c.DedupeWindow > 0 && (c.DedupeMaxIDs < 1000 || c.DedupeMaxIDs > 100_000_000) {
		errs = append(errs, fmt.Errorf("dedupe-max-ids: must be between 1000 and 100000000 (3.6 GB) when dedupe-window is set, got %d", c.DedupeMaxIDs))
	}
	if c.RedisURL == "" {
		errs = append(errs, errors.New("redis-url: must be set"))
	}
	return errors.Join(errs...)
}
