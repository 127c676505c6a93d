package configstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	replayv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/replay/v1"
)

// Replays reads and writes the KV bucket REPLAYS: one entry per replay (s3dest.replay.v1.Replay), keyed
// by its ID. The admin service creates replays and changes their state; the copier holding a replay's
// lease writes its cursor and progress. Every change after the creation is a compare-and-set on the
// revision read (Update), so a cancel and a copier's progress never overwrite each other.
type Replays struct {
	kv jetstream.KeyValue
}

// ReplaysBucket is the KV bucket of replays.
const ReplaysBucket = "REPLAYS"

// ReplaysKept is how long a replay stays in the bucket after its last change: a running one changes at
// least every third of its lease, so only replays that ended (or wait, cancelled) go.
const ReplaysKept = 30 * 24 * time.Hour

func replaysConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      ReplaysBucket,
		Description: "s3dest replays: state, cursor and progress",
		History:     1,
		TTL:         ReplaysKept,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// OwnReplays creates or updates the REPLAYS bucket to this configuration: only its owner, the admin
// service (and s3dest dev in its place), calls it.
func OwnReplays(ctx context.Context, js jetstream.JetStream, replicas int) (*Replays, error) {
	var kv jetstream.KeyValue
	err := bus.AgainOnTimeout(ctx, func() (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, replaysConfig(replicas))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open replays bucket: %w", err)
	}
	return &Replays{kv: kv}, nil
}

// OpenReplays opens the REPLAYS bucket, creating it if it is missing (the copier may start first); one
// that exists is not changed.
func OpenReplays(ctx context.Context, js jetstream.JetStream, replicas int) (*Replays, error) {
	kv, err := openOrCreate(ctx, js, replaysConfig(replicas))
	if err != nil {
		return nil, fmt.Errorf("open replays bucket: %w", err)
	}
	return &Replays{kv: kv}, nil
}

// Create stores a new replay; ErrConflict if its ID is taken.
func (r *Replays) Create(ctx context.Context, rp *replayv1.Replay) (uint64, error) {
	data, err := proto.Marshal(rp)
	if err != nil {
		return 0, fmt.Errorf("encode replay %s: %w", rp.GetId(), err)
	}
	rev, err := r.kv.Create(ctx, rp.GetId(), data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("replay %s: %w", rp.GetId(), ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("write replay %s: %w", rp.GetId(), err)
	}
	return rev, nil
}

// Get returns a replay and its revision; ErrNotFound if there is none.
func (r *Replays) Get(ctx context.Context, id string) (*replayv1.Replay, uint64, error) {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("replay %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read replay %s: %w", id, err)
	}
	rp := &replayv1.Replay{}
	if err := proto.Unmarshal(e.Value(), rp); err != nil {
		return nil, 0, fmt.Errorf("decode replay %s: %w", id, err)
	}
	return rp, e.Revision(), nil
}

// Update stores rp if the stored replay is still at rev; ErrConflict otherwise.
func (r *Replays) Update(ctx context.Context, rp *replayv1.Replay, rev uint64) (uint64, error) {
	data, err := proto.Marshal(rp)
	if err != nil {
		return 0, fmt.Errorf("encode replay %s: %w", rp.GetId(), err)
	}
	next, err := r.kv.Update(ctx, rp.GetId(), data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || wrongLastSequence(err) {
		return 0, fmt.Errorf("write replay %s: %w", rp.GetId(), ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("write replay %s: %w", rp.GetId(), err)
	}
	return next, nil
}

// List returns every replay, oldest first.
func (r *Replays) List(ctx context.Context) ([]*replayv1.Replay, error) {
	keys, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replays: %w", err)
	}
	var out []*replayv1.Replay
	for k := range keys.Keys() {
		rp, _, err := r.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rp)
	}
	slices.SortFunc(out, func(a, b *replayv1.Replay) int {
		return a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime())
	})
	return out, nil
}
