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

	"github.com/s3dest/s3dest/pkg/bus"
)

// leaseTTL is how long a dead batcher's sources stay unowned; owners renew every third of it.
const leaseTTL = 15 * time.Second

// leases shares sources between batchers: the KV bucket BATCHER_LEASES holds one key per owned source,
// created by its owner (Create fails if the key exists), renewed by revision (Update fails if someone
// else holds it) and expiring with the bucket's TTL when its owner dies. Every batcher also writes its
// own key into BATCHER_MEMBERS at each renewal (same TTL), so the live batchers can be counted and each
// takes its fair share of the sources. Owned by Run's goroutine.
type leases struct {
	kv      jetstream.KeyValue
	members jetstream.KeyValue
	me      string
	owned   map[string]uint64 // source → revision of our lease
	// live is the number of batchers seen at the last renewal, this one included.
	live    int
	renewed time.Time
	log     *slog.Logger
}

func openLeases(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*leases, error) {
	var kv, members jetstream.KeyValue
	err := bus.AgainOnTimeout(ctx, func() (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: "BATCHER_LEASES", Description: "which batcher owns which source", TTL: leaseTTL,
			Storage: jetstream.FileStorage, Replicas: replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open lease bucket: %w", err)
	}
	err = bus.AgainOnTimeout(ctx, func() (err error) {
		members, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: "BATCHER_MEMBERS", Description: "live batchers, to share the sources evenly", TTL: leaseTTL,
			Storage: jetstream.FileStorage, Replicas: replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open member bucket: %w", err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	l := &leases{kv: kv, members: members, me: hex.EncodeToString(id), owned: map[string]uint64{}, renewed: time.Now(), log: log}
	if err := l.heartbeat(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// heartbeat announces this batcher as live and counts the live ones.
func (l *leases) heartbeat(ctx context.Context) error {
	if _, err := l.members.PutString(ctx, l.me, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("announce batcher %s: %w", l.me, err)
	}
	keys, err := l.members.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("count batchers: %w", err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	l.live = max(n, 1)
	return nil
}

// share is how many of n sources this batcher may hold: ceil(n / live batchers). A batcher that died
// is counted until its key expires, which can leave sources unowned for up to the lease TTL, as its
// own leases do.
func (l *leases) share(n int) int {
	return (n + l.live - 1) / max(l.live, 1)
}

// acquire takes the source's lease if nobody holds it, and reports whether this batcher holds it.
func (l *leases) acquire(ctx context.Context, source string) bool {
	if _, ok := l.owned[source]; ok {
		return true
	}
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

// confirm renews one lease now and reports whether this batcher still holds it: a batcher that was
// stopped past its lease learns it here before it touches the source again.
func (l *leases) confirm(ctx context.Context, source string) bool {
	rev, ok := l.owned[source]
	if !ok {
		return false
	}
	next, err := l.kv.Update(ctx, source, []byte(l.me), rev)
	if err != nil {
		delete(l.owned, source)
		return false
	}
	l.owned[source] = next
	return true
}

// renew extends every lease held, at most every third of the TTL, and returns the sources lost.
func (l *leases) renew(ctx context.Context) (lost []string) {
	if time.Since(l.renewed) < leaseTTL/3 {
		return nil
	}
	l.renewed = time.Now()
	if err := l.heartbeat(ctx); err != nil {
		l.log.Warn("batcher heartbeat", "error", err)
	}
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

// release gives one lease back, so another batcher can take the source at once.
func (l *leases) release(ctx context.Context, source string) {
	if rev, ok := l.owned[source]; ok {
		_ = l.kv.Delete(ctx, source, jetstream.LastRevision(rev))
		delete(l.owned, source)
	}
}

// releaseAll gives every lease back on a clean stop, and leaves the members, so other batchers take
// over at once.
func (l *leases) releaseAll(ctx context.Context) {
	for source := range l.owned {
		l.release(ctx, source)
	}
	_ = l.members.Delete(ctx, l.me)
}
