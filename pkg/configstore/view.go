package configstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
)

// View is a live, in-memory copy of the CONFIG bucket, updated by a KV watch. Changes made through the
// admin API reach every service within the watch's latency, without a restart. Returned messages are
// shared: callers must not modify them.
//
// A view that silently stopped following would keep a revoked write key working, so the view checks
// itself: every ProbeInterval it compares the last revision it applied with the bucket's, and a watch
// that ended or fell behind is started again from scratch. Fresh tells callers whether the view was
// last confirmed current within StaleAfter, so they can refuse to act on old config.
type View struct {
	mu    sync.RWMutex
	state viewState
	now   func() time.Time

	rev        atomic.Uint64 // the last revision applied
	confirmed  atomic.Int64  // unix nanos when the view was last known current
	staleAfter time.Duration

	// endWatch unsubscribes the current watch, as a broken subscription would (tests only).
	endWatch chan struct{}
}

// viewState is everything the bucket says, as maps.
type viewState struct {
	workspace    *configv1.Workspace
	sources      map[string]*configv1.Source
	writeKeys    map[string]string // write key → source ID
	retiring     map[string]retiringKey
	destinations map[string]*configv1.Destination
	settings     *configv1.Settings
}

func newViewState() viewState {
	return viewState{
		sources:      map[string]*configv1.Source{},
		writeKeys:    map[string]string{},
		retiring:     map[string]retiringKey{},
		destinations: map[string]*configv1.Destination{},
	}
}

// How often a view checks that it is current, and how long after its last confirmation it calls itself
// stale: three missed probes.
const (
	ProbeInterval = 5 * time.Second
	StaleAfter    = 3 * ProbeInterval
)

// retiringKey is a rotated write key: it authenticates its source until expires.
type retiringKey struct {
	sourceID string
	expires  time.Time
}

// Watch starts a View and returns once it holds everything the bucket held at the call. It keeps
// following changes until ctx ends.
func (s *Store) Watch(ctx context.Context, log *slog.Logger) (*View, error) {
	return s.watch(ctx, log, ProbeInterval)
}

func (s *Store) watch(ctx context.Context, log *slog.Logger, probe time.Duration) (*View, error) {
	v := &View{now: time.Now, staleAfter: 3 * probe, endWatch: make(chan struct{}, 1)}
	w, err := v.load(ctx, s, log)
	if err != nil {
		return nil, err
	}
	go v.follow(ctx, s, w, log, probe)
	return v, nil
}

// load watches the bucket from scratch and swaps in what it held, returning the watch to follow.
func (v *View) load(ctx context.Context, s *Store, log *slog.Logger) (jetstream.KeyWatcher, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch config: %w", err)
	}
	st, rev := newViewState(), uint64(0)
	for e := range w.Updates() {
		if e == nil { // end of the initial values
			v.mu.Lock()
			v.state = st
			v.mu.Unlock()
			v.rev.Store(rev)
			v.confirm()
			return w, nil
		}
		st.apply(e, log)
		rev = max(rev, e.Revision())
	}
	_ = w.Stop()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("watch config: %w", ctx.Err())
	}
	return nil, errors.New("watch config: the watch ended before the initial values")
}

func (v *View) confirm() { v.confirmed.Store(time.Now().UnixNano()) }

// Fresh reports whether the view was confirmed current within StaleAfter; otherwise it says since when
// it was not, and callers should refuse what depends on current config (a revoked write key).
func (v *View) Fresh() error {
	last := time.Unix(0, v.confirmed.Load())
	if age := time.Since(last); age > v.staleAfter {
		return fmt.Errorf("the config view was last confirmed current %s ago (at most %s allowed)", age.Round(time.Millisecond), v.staleAfter)
	}
	return nil
}

// follow applies changes until ctx ends. A watch that ends, or that a probe finds behind the bucket
// twice in a row, is started again from scratch, with a pause between failed attempts.
func (v *View) follow(ctx context.Context, s *Store, w jetstream.KeyWatcher, log *slog.Logger, probe time.Duration) {
	tick := time.NewTicker(probe)
	defer tick.Stop()
	behind := 0
	restart := func(why string) {
		if w != nil {
			_ = w.Stop()
			w = nil
		}
		log.Warn("config watch restarted", "reason", why)
		for ctx.Err() == nil {
			var err error
			if w, err = v.load(ctx, s, log); err == nil {
				behind = 0
				return
			}
			log.Error("config watch could not restart; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}
	for {
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.Updates()
		}
		select {
		case <-ctx.Done():
			if w != nil {
				_ = w.Stop()
			}
			return
		case <-v.endWatch:
			if w != nil {
				_ = w.Stop() // no restart here: ending or falling silent must be noticed as in production
			}
		case e, ok := <-updates:
			switch {
			case !ok:
				restart("the watch ended")
			case e != nil:
				v.mu.Lock()
				v.state.apply(e, log)
				v.mu.Unlock()
				v.rev.Store(max(v.rev.Load(), e.Revision()))
			}
		case <-tick.C:
			last, err := s.lastRevision(ctx)
			switch {
			case err != nil:
				log.Warn("config probe failed", "error", err)
			case v.rev.Load() >= last:
				behind = 0
				v.confirm()
			default:
				if behind++; behind >= 2 {
					restart(fmt.Sprintf("the view is at revision %d, the bucket at %d", v.rev.Load(), last))
				}
			}
		}
	}
}

// lastRevision is the revision of the bucket's newest entry.
func (s *Store) lastRevision(ctx context.Context) (uint64, error) {
	st, err := s.kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("config status: %w", err)
	}
	kvs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("config status: unexpected type %T", st)
	}
	return kvs.StreamInfo().State.LastSeq, nil
}

func (st *viewState) apply(e jetstream.KeyValueEntry, log *slog.Logger) {
	deleted := e.Operation() != jetstream.KeyValuePut
	kind, id := kindOf(e.Key())
	switch kind {
	case workspaceKey:
		ws := &configv1.Workspace{}
		if deleted || decode(e, ws, log) {
			if deleted {
				ws = nil
			}
			st.workspace = ws
		}
	case strings.TrimSuffix(sourcePrefix, "."):
		if old, ok := st.sources[id]; ok {
			for _, k := range old.GetWriteKeys() {
				delete(st.writeKeys, k)
			}
			for _, k := range old.GetRetiringWriteKeys() {
				delete(st.retiring, k.GetWriteKey())
			}
			delete(st.sources, id)
		}
		src := &configv1.Source{}
		if !deleted && decode(e, src, log) {
			st.sources[id] = src
			for _, k := range src.GetWriteKeys() {
				st.writeKeys[k] = id
			}
			for _, k := range src.GetRetiringWriteKeys() {
				st.retiring[k.GetWriteKey()] = retiringKey{sourceID: id, expires: k.GetExpiresAt().AsTime()}
			}
		}
	case settingsKey:
		set := &configv1.Settings{}
		if deleted || decode(e, set, log) {
			if deleted {
				set = nil
			}
			st.settings = set
		}
	case strings.TrimSuffix(destinationPrefix, "."):
		delete(st.destinations, id)
		d := &configv1.Destination{}
		if !deleted && decode(e, d, log) {
			st.destinations[id] = d
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

// Retention is the installation's retention (Settings, written by the admin service), or
// bus.DefaultRetention before it set one.
func (v *View) Retention() time.Duration {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if r := v.state.settings.GetRetention().AsDuration(); r > 0 {
		return r
	}
	return bus.DefaultRetention
}

// Workspace returns the workspace, or nil before one exists.
func (v *View) Workspace() *configv1.Workspace {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.state.workspace
}

// SourceByWriteKey returns the enabled or disabled source a write key belongs to: one of its current
// keys, or a rotated key still in its grace period. A retiring key stops working at its expiry by the
// clock, with no config change needed.
func (v *View) SourceByWriteKey(key string) (*configv1.Source, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	id, ok := v.state.writeKeys[key]
	if !ok {
		r, retiring := v.state.retiring[key]
		if !retiring || !v.now().Before(r.expires) {
			return nil, false
		}
		id = r.sourceID
	}
	src, ok := v.state.sources[id]
	return src, ok
}

// Source returns a source by ID.
func (v *View) Source(id string) (*configv1.Source, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s, ok := v.state.sources[id]
	return s, ok
}

// Destination returns a destination by ID.
func (v *View) Destination(id string) (*configv1.Destination, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d, ok := v.state.destinations[id]
	return d, ok
}

// Destinations returns every destination, in ID order.
func (v *View) Destinations() []*configv1.Destination {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*configv1.Destination, 0, len(v.state.destinations))
	for _, d := range v.state.destinations {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *configv1.Destination) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// Sources returns every source, in ID order.
func (v *View) Sources() []*configv1.Source {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*configv1.Source, 0, len(v.state.sources))
	for _, s := range v.state.sources {
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
