// Package configstore keeps the control plane's state (workspace, sources, destinations) in the
// JetStream KV bucket CONFIG, so it is replicated with the rest of JetStream, and gives every service a
// live, watched view of it. The admin service is the only writer; everyone else reads a View.
package configstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
)

// Keys of the CONFIG bucket.
const (
	workspaceKey      = "workspace"
	sourcePrefix      = "sources."
	destinationPrefix = "destinations."
	validationPrefix  = "validations."
	settingsKey       = "settings"
)

// ErrNotFound is returned for a missing workspace, source or destination.
var ErrNotFound = errors.New("not found")

// Store reads and writes the CONFIG bucket.
type Store struct {
	kv jetstream.KeyValue
	// js publishes the conditional writes that KeyValue has no call for (PutDestinationUnderClaim).
	js jetstream.JetStream
}

func bucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      "CONFIG",
		Description: "s3dest workspace, sources and destinations",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Own creates or updates the CONFIG bucket to this configuration: only its owner, the admin service
// (and s3dest dev in its place), calls it.
func Own(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	var kv jetstream.KeyValue
	err := bus.AgainOnTimeout(ctx, func() (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, bucketConfig(replicas))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open config bucket: %w", err)
	}
	return &Store{kv: kv, js: js}, nil
}

// Open opens the CONFIG bucket, creating it if it is missing (any service may start first). One that
// exists is not changed: where its replicas differ from the caller's, that is logged with both values.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*Store, error) {
	kv, err := openOrCreate(ctx, js, bucketConfig(replicas))
	if err != nil {
		return nil, fmt.Errorf("open config bucket: %w", err)
	}
	if st, err := kv.Status(ctx); err == nil {
		if kvs, ok := st.(*jetstream.KeyValueBucketStatus); ok && kvs.StreamInfo().Config.Replicas != replicas {
			log.Warn("a JetStream setting differs from this service's configuration; not changed here (its owner is the admin service)",
				"kv", "CONFIG", "field", "replicas", "has", kvs.StreamInfo().Config.Replicas, "configured", replicas)
		}
	}
	return &Store{kv: kv, js: js}, nil
}

// openOrCreate opens the bucket cfg names, creating it with cfg if it is missing; one that exists is
// not changed. Another service may create it at the same moment: that is success too.
func openOrCreate(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := bus.AgainOnTimeout(ctx, func() (err error) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				kv, err = js.KeyValue(ctx, cfg.Bucket)
			}
		}
		return err
	})
	return kv, err
}

// OpenWithStreams is what every service but the owner does at start: Open, then bus.EnsureStreams with
// its replicas and partitions (base) and the retention the admin service set (the default before it did).
func OpenWithStreams(ctx context.Context, js jetstream.JetStream, base bus.StreamConfig, log *slog.Logger) (*Store, error) {
	store, err := Open(ctx, js, base.Replicas, log)
	if err != nil {
		return nil, err
	}
	sc, err := store.StreamConfig(ctx, base)
	if err != nil {
		return nil, err
	}
	if err := bus.EnsureStreams(ctx, js, sc, log); err != nil {
		return nil, err
	}
	return store, nil
}

// Settings returns the installation's settings; ErrNotFound before the admin service wrote them.
func (s *Store) Settings(ctx context.Context) (*configv1.Settings, error) {
	st := &configv1.Settings{}
	return st, s.get(ctx, settingsKey, st)
}

// PutSettings stores the installation's settings. Only the admin service writes them.
func (s *Store) PutSettings(ctx context.Context, st *configv1.Settings) error {
	return s.put(ctx, settingsKey, st)
}

// StreamConfig is the stream configuration a service ensures: base (its replicas and partitions) with
// the retention the admin service set, or base's before it did.
func (s *Store) StreamConfig(ctx context.Context, base bus.StreamConfig) (bus.StreamConfig, error) {
	sc := base
	st, err := s.Settings(ctx)
	if errors.Is(err, ErrNotFound) {
		return sc, nil
	}
	if err != nil {
		return sc, err
	}
	if r := st.GetRetention().AsDuration(); r > 0 {
		sc.Retention = r
	}
	return sc, nil
}

// Workspace returns the workspace.
func (s *Store) Workspace(ctx context.Context) (*configv1.Workspace, error) {
	w := &configv1.Workspace{}
	return w, s.get(ctx, workspaceKey, w)
}

// CreateWorkspace stores w unless a workspace exists; either way it returns the stored one. This makes
// the workspace ID (the External ID of every customer role) stable for the life of the installation.
func (s *Store) CreateWorkspace(ctx context.Context, w *configv1.Workspace) (*configv1.Workspace, error) {
	data, err := proto.Marshal(w)
	if err != nil {
		return nil, err
	}
	_, err = s.kv.Create(ctx, workspaceKey, data)
	if err == nil {
		// Stored as given: not read back, since a direct get may be answered by a follower that has not
		// applied the write yet (on the loaded cluster admin then found no workspace and exited).
		return w, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	return s.Workspace(ctx)
}

// Source returns a source.
func (s *Store) Source(ctx context.Context, id string) (*configv1.Source, error) {
	src := &configv1.Source{}
	return src, s.get(ctx, sourcePrefix+id, src)
}

// PutSource stores a source.
func (s *Store) PutSource(ctx context.Context, src *configv1.Source) error {
	return s.put(ctx, sourcePrefix+src.GetId(), src)
}

// DeleteSource removes a source.
func (s *Store) DeleteSource(ctx context.Context, id string) error {
	return s.delete(ctx, sourcePrefix+id)
}

// Destination returns a destination.
func (s *Store) Destination(ctx context.Context, id string) (*configv1.Destination, error) {
	d := &configv1.Destination{}
	return d, s.get(ctx, destinationPrefix+id, d)
}

// PutDestination stores a destination.
func (s *Store) PutDestination(ctx context.Context, d *configv1.Destination) error {
	return s.put(ctx, destinationPrefix+d.GetId(), d)
}

// DeleteDestination removes a destination.
func (s *Store) DeleteDestination(ctx context.Context, id string) error {
	return s.delete(ctx, destinationPrefix+id)
}

// Validation returns the latest validation of a destination's current settings.
func (s *Store) Validation(ctx context.Context, destinationID string) (*validatorv1.ValidationResult, error) {
	r := &validatorv1.ValidationResult{}
	return r, s.get(ctx, validationPrefix+destinationID, r)
}

// PutValidation stores the latest validation of a destination. The caller makes sure it checked the
// destination's current settings.
func (s *Store) PutValidation(ctx context.Context, destinationID string, r *validatorv1.ValidationResult) error {
	return s.put(ctx, validationPrefix+destinationID, r)
}

// DeleteValidation forgets a destination's validation (its settings changed, or it was deleted).
func (s *Store) DeleteValidation(ctx context.Context, destinationID string) error {
	return s.delete(ctx, validationPrefix+destinationID)
}

func (s *Store) get(ctx context.Context, key string, m proto.Message) error {
	_, err := s.getAt(ctx, key, m)
	return err
}

func (s *Store) put(ctx context.Context, key string, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if _, err := s.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func kindOf(key string) (kind, id string) {
	if key == workspaceKey {
		return workspaceKey, ""
	}
	kind, id, _ = strings.Cut(key, ".")
	return kind, id
}

// Sources returns every stored source, in ID order, read from the bucket (not a view), so a caller
// sees its own writes.
func (s *Store) Sources(ctx context.Context) ([]*configv1.Source, error) {
	return list(ctx, s, sourcePrefix, func() *configv1.Source { return &configv1.Source{} })
}

// Destinations returns every stored destination, in ID order, read from the bucket.
func (s *Store) Destinations(ctx context.Context) ([]*configv1.Destination, error) {
	return list(ctx, s, destinationPrefix, func() *configv1.Destination { return &configv1.Destination{} })
}

func list[T proto.Message](ctx context.Context, s *Store, prefix string, newT func() T) ([]T, error) {
	keys, err := s.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var names []string
	for k := range keys.Keys() {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]T, 0, len(names))
	for _, k := range names {
		m := newT()
		if err := s.get(ctx, k, m); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // deleted between the listing and the read
			}
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
