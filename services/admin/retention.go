package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/configstore"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
)

// The admin service owns the retention (DESIGN.md §8: stream and KV settings have one owner): its
// --retention is the one setting. At start it writes it to the config store (Settings), where every
// other service reads it, and applies the streams and the object store with MaxAge = retention +
// bus.RetentionMargin; the other services only create what is missing and report what differs.

// MaxRetention bounds --retention: data waits for a failing destination at most this long.
const MaxRetention = 90 * 24 * time.Hour

// OwnRetention writes the retention to the config store when it differs from the stored one and
// applies the streams. A shorter retention than before shrinks the streams only once bus.RetentionMargin
// has passed since the change: until then the copiers dead-letter the files older than the new
// retention, which the streams must still hold. It returns when the streams should be applied again
// (zero: they are as configured).
func OwnRetention(ctx context.Context, js jetstream.JetStream, store *configstore.Store, sc bus.StreamConfig, now time.Time, log *slog.Logger) (again time.Time, err error) {
	st, err := store.Settings(ctx)
	if err != nil && !errors.Is(err, configstore.ErrNotFound) {
		return time.Time{}, err
	}
	before := st.GetRetention().AsDuration()
	if before != sc.Retention {
		st = &configv1.Settings{Retention: durationpb.New(sc.Retention), UpdatedAt: timestamppb.New(now)}
		if err := store.PutSettings(ctx, st); err != nil {
			return time.Time{}, err
		}
		log.Info("retention set", "retention", sc.Retention, "previous", before, "streamMaxAge", sc.MaxAge())
	}
	apply := sc
	if shrinkAt := st.GetUpdatedAt().AsTime().Add(bus.RetentionMargin); now.Before(shrinkAt) {
		if s, err := js.Stream(ctx, bus.StreamBatches); err == nil {
			if has := s.CachedInfo().Config.MaxAge; has > sc.MaxAge() {
				apply.Retention = has - bus.RetentionMargin
				again = shrinkAt
				log.Info("the streams keep their longer max age until the copiers dead-lettered what the shorter retention ends",
					"maxAge", has, "shrinksTo", sc.MaxAge(), "at", shrinkAt.UTC())
			}
		}
	}
	if err := bus.ApplyStreams(ctx, js, apply); err != nil {
		return time.Time{}, err
	}
	return again, nil
}

// CheckRetention is the rule of --retention.
func CheckRetention(r time.Duration) error {
	if r < bus.MinRetention || r > MaxRetention {
		return fmt.Errorf("retention: must be between %s and %s, got %s", bus.MinRetention, MaxRetention, r)
	}
	return nil
}
