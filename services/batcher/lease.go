package batcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseTTL is how long a dead batcher's sources stay unowned; owners renew every third of it.
const leaseTTL = 15 * time.Second

// leases shares sources between batchers: the KV bucket BATCHER_LEASES holds one key per owned source,
// created by its owner (Create fails if the key exists), renewed by revision (Update fails if someone
// else holds it) and expiring with the bucket's TTL when its owner dies. Owned by Run's goroutine.
type leases struct {
	kv      jetstream.KeyValue
	me      string
	owned   map[string]uint64 // source → revision of our lease
	renewed time.Time
	log     *slog.Logger
}

func openLeases(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*leases, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "BATCHER_LEASES", Description: "which batcher owns which source", TTL: leaseTTL,
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open lease bucket: %w", err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	return &leases{kv: kv, me: hex.EncodeToString(id), owned: map[string]uint64{}, renewed: time.Now(), log: log}, nil
}

// acquire takes the source's lease if nobody holds it.
func (l *leases) acquire(ctx context.Context, source string) bool {
	rev, err := l.kv.Create(ctx, source, []byte(l.me))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			l.log.Warn("lease", "source", source, "error", err)
		}
		return false
	}
	l.owned[source] = rev
	l.log.Info("lease taken", "source", source, "batcher", l.me)
	return true
}

// renew extends every lease held, at most every third of the TTL, and returns the sources lost.
func (l *leases) renew(ctx context.Context) (lost []string) {
	if time.Since(l.renewed) < leaseTTL/3 {
		return nil
	}
	l.renewed = time.Now()
	for source, rev := range l.owned {
		next, err := l.kv.Update(ctx, source, []byte(l.me), rev)
		if err != nil {
			delete(l.owned, source)
			lost = append(lost, source)
			continue
		}
		l.owned[source] = next
	}
	return lost
}

// releaseAll gives every lease back on a clean stop, so other batchers take over at once.
func (l *leases) releaseAll(ctx context.Context) {
	for source, rev := range l.owned {
		_ = l.kv.Delete(ctx, source, jetstream.LastRevision(rev))
		delete(l.owned, source)
	}
}
