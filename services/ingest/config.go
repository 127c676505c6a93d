package ingest

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/s3dest/s3dest/pkg/eventwire"
	"github.com/s3dest/s3dest/pkg/platform"
)

// Limits of the Tracking API, as Segment documents them.
const (
	// MaxEventBytes is the largest single event accepted (32 KB).
	MaxEventBytes = 32 * 1024
	// MaxBatchBytes is the largest /v1/batch request accepted (500 KB).
	MaxBatchBytes = 500 * 1024
	// MaxMergedBytes bounds a batch's events together once the batch-level context and sentAt are merged
	// into each: sixteen times the request limit, far above what a real client sends (its context rides
	// with each event), and low enough that one request can never cost more than a few megabytes.
	MaxMergedBytes = 16 * MaxBatchBytes
	// MaxDepth is the deepest JSON nesting accepted: objects and arrays inside one another, the body's
	// own object counted.
	MaxDepth = 64
)

// Config configures ingest.
type Config struct {
	platform.Common
	// HTTPAddr serves the Tracking API.
	HTTPAddr string `flag:"tracking-addr" env:"S3DEST_TRACKING_ADDR" oldflag:"http-addr" default:"127.0.0.1:8080" help:"address of the Tracking API"`
	// PublishTimeout bounds how long a request waits for JetStream before answering 503.
	PublishTimeout time.Duration `flag:"publish-timeout" env:"S3DEST_PUBLISH_TIMEOUT" default:"5s" help:"how long a request waits for JetStream before 503"`
	// RateLimit caps each source's accepted events per second (0: no limit); a request over it is
	// answered 429 with Retry-After. Bursts of up to one second's worth (and at least one batch) pass.
	RateLimit int `flag:"rate-limit" env:"S3DEST_RATE_LIMIT" default:"0" help:"events per second per source; 0 for no limit"`
	// Workers handle messages from ingest.<sourceId> at once.
	Workers int `flag:"ingest-workers" env:"S3DEST_INGEST_WORKERS" oldflag:"workers" default:"4" help:"JetStream-entry messages handled at once"`
	// MaxMessageBytes bounds one EventBatch message; a request whose enriched events need more is
	// published as several, each with its own Nats-Msg-Id. The server's max_payload caps it further.
	MaxMessageBytes int `flag:"max-message-bytes" env:"S3DEST_MAX_MESSAGE_BYTES" default:"1048576" help:"most bytes of one EventBatch message (the server's max_payload caps it)"`
	// EventsEncoding is how the EventBatch messages on events.<sourceId> are written (docs/wire.md): s2
	// compresses them (about 4x fewer bytes through JetStream, and on a cluster through its routes and
	// disks); proto writes them unframed, as s3dest did before encodings. Every batcher reads both, but
	// a batcher older than encodings reads only proto: keep proto while upgrading from such a release,
	// until every batcher is new.
	EventsEncoding string `flag:"events-encoding" env:"S3DEST_EVENTS_ENCODING" default:"s2" help:"how events.<sourceId> messages are written: s2 (compressed) or proto (what batchers before s3dest's wire encodings read; see docs/wire.md)"`
	// MaxInflightBytes caps the request bytes this process holds at once; past it a request is answered
	// 429 with Retry-After before its body is read.
	MaxInflightBytes int `flag:"max-inflight-bytes" env:"S3DEST_MAX_INFLIGHT_BYTES" default:"67108864" help:"request bytes held at once before answering 429"`
	// TrustedProxies lists the proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For is
	// believed for context.ip; from anyone else the header is ignored.
	TrustedProxies string `flag:"trusted-proxies" env:"S3DEST_TRUSTED_PROXIES" default:"" help:"comma-separated CIDRs whose X-Forwarded-For sets context.ip"`
}

// minMessageBytes leaves room for the largest event (MaxEventBytes plus what ingest adds) and the
// message's headers.
const minMessageBytes = 64 * 1024

// Validate checks the rules of each field.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("tracking-addr: must be set, such as 127.0.0.1:8080"))
	}
	if c.PublishTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("publish-timeout: must be at least 100ms, got %s", c.PublishTimeout))
	}
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("rate-limit: must be 0 (no limit) or a positive number of events per second, got %d", c.RateLimit))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("ingest-workers: must be at least 1, got %d", c.Workers))
	}
	if c.MaxMessageBytes < minMessageBytes {
		errs = append(errs, fmt.Errorf("max-message-bytes: must be at least %d so that the largest event fits, got %d", minMessageBytes, c.MaxMessageBytes))
	}
	if c.MaxInflightBytes < MaxBatchBytes {
		errs = append(errs, fmt.Errorf("max-inflight-bytes: must be at least %d so that one full batch fits, got %d", MaxBatchBytes, c.MaxInflightBytes))
	}
	if _, err := eventwire.ParseEncoding(c.EventsEncoding); err != nil {
		errs = append(errs, fmt.Errorf("events-encoding: %w", err))
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("trusted-proxies: %w", err))
	}
	return errors.Join(errs...)
}

// parseTrustedProxies reads a comma-separated list of CIDRs or single addresses.
func parseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("must be CIDRs or IP addresses separated by commas, got %q", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
