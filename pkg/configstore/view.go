package configstore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
)

// View is a live, in-memory copy of the CONFIG bucket, updated by a KV watch. Changes made through the
// admin API reach every service within the watch's latency, without a restart. Returned messages are
// shared: callers must not modify them.
type View struct {
	mu           sync.RWMutex
	workspace    *configv1.Workspace
	sources      map[string]*configv1.Source
	writeKeys    map[string]string // write key → source ID
	retiring     map[string]retiringKey
	destinations map[string]*configv1.Destination
	now          func() time.Time
}

// retiringKey is a rotated write key: it authenticates its source until expires.
type retiringKey struct {
	sourceID string
	expires  time.Time
}

// Watch starts a View and returns once it holds everything the bucket held at the call. It keeps
// following changes until ctx ends.
func (s *Store) Watch(ctx context.Context, log *slog.Logger) (*View, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch config: %w", err)
	}
	v := &View{
		sources:      map[string]*configv1.Source{},
		writeKeys:    map[string]string{},
		retiring:     map[string]retiringKey{},
		destinations: map[string]*configv1.Destination{},
		now:          time.Now,
	}
	for e := range w.Updates() {
		if e == nil { // end of the initial values
			go v.follow(ctx, w, log)
			return v, nil
		}
		v.apply(e, log)
	}
	return nil, fmt.Errorf("watch config: %w", ctx.Err())
}

func (v *View) follow(ctx context.Context, w jetstream.KeyWatcher, log *slog.Logger) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				v.apply(e, log)
			}
		}
	}
}

func (v *View) apply(e jetstream.KeyValueEntry, log *slog.Logger) {
	deleted := e.Operation() != jetstream.KeyValuePut
	kind, id := kindOf(e.Key())
	v.mu.Lock()
	defer v.mu.Unlock()
	switch kind {
	case workspaceKey:
		ws := &configv1.Workspace{}
		if deleted || decode(e, ws, log) {
			if deleted {
				ws = nil
			}
			v.workspace = ws
		}
	case strings.TrimSuffix(sourcePrefix, "."):
		if old, ok := v.sources[id]; ok {
			for _, k := range old.GetWriteKeys() {
				delete(v.writeKeys, k)
			}
			for _, k := range old.GetRetiringWriteKeys() {
				delete(v.retiring, k.GetWriteKey())
			}
			delete(v.sources, id)
		}
		src := &configv1.Source{}
		if !deleted && decode(e, src, log) {
			v.sources[id] = src
			for _, k := range src.GetWriteKeys() {
				v.writeKeys[k] = id
			}
			for _, k := range src.GetRetiringWriteKeys() {
				v.retiring[k.GetWriteKey()] = retiringKey{sourceID: id, expires: k.GetExpiresAt().AsTime()}
			}
		}
	case strings.TrimSuffix(destinationPrefix, "."):
		delete(v.destinations, id)
		d := &configv1.Destination{}
		if !deleted && decode(e, d, log) {
			v.destinations[id] = d
		}
	}
}

func decode(e jetstream.KeyValueEntry, m proto.Message, log *slog.Logger) bool {
	if err := proto.Unmarshal(e.Value(), m); err != nil {
		log.Error("undecodable config entry skipped", "key", e.Key(), "revision", e.Revision(), "error", err)
		return false
	}
	return true
}

// Workspace returns the workspace, or nil before one exists.
func (v *View) Workspace() *configv1.Workspace {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.workspace
}

// SourceByWriteKey returns the enabled or disabled source a write key belongs to: one of its current
// keys, or a rotated key still in its grace period. A retiring key stops working at its expiry by the
// clock, with no config change needed.
func (v *View) SourceByWriteKey(key string) (*configv1.Source, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	id, ok := v.writeKeys[key]
	if !ok {
		r, retiring := v.retiring[key]
		if !retiring || !v.now().Before(r.expires) {
			return nil, false
		}
		id = r.sourceID
	}
	src, ok := v.sources[id]
	return src, ok
}

// Source returns a source by ID.
func (v *View) Source(id string) (*configv1.Source, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s, ok := v.sources[id]
	return s, ok
}

// Destination returns a destination by ID.
func (v *View) Destination(id string) (*configv1.Destination, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d, ok := v.destinations[id]
	return d, ok
}

// Destinations returns every destination, in ID order.
func (v *View) Destinations() []*configv1.Destination {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*configv1.Destination, 0, len(v.destinations))
	for _, d := range v.destinations {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *configv1.Destination) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// Sources returns every source, in ID order.
func (v *View) Sources() []*configv1.Source {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*configv1.Source, 0, len(v.sources))
	for _, s := range v.sources {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *configv1.Source) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// EnabledDestinations returns the enabled destinations of a source, in ID order.
func (v *View) EnabledDestinations(sourceID string) []*configv1.Destination {
	var out []*configv1.Destination
	for _, d := range v.Destinations() {
		if d.GetEnabled() && d.GetSourceId() == sourceID {
			out = append(out, d)
		}
	}
	return out
}
