package configstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
)

// Compare-and-set. Several admin replicas write the bucket at once, so a rule that spans objects (one AWS
// S3 destination per source, no source deleted under a new destination) or a read-modify-write (a
// source's write keys) cannot rest on a process mutex. Every such write here names the revision it was
// decided on, and JetStream refuses it with ErrConflict if the key moved since: the caller reads again
// and decides again, or reports the rule.

// ErrConflict is returned when a key changed (or appeared, or went) since the revision a write was
// decided on.
var ErrConflict = errors.New("changed meanwhile")

const claimPrefix = "claims."

// Claim is a key that makes a one-per rule hold across admin replicas: it exists at most once per scope
// (e.g. claims.awss3.<sourceId>), created with a compare-and-set, and names its holder (the destination
// that is the one). A holder that does not exist means a process died between taking the claim and
// storing what it names; such a claim may be taken over once it is older than any creation takes.
type Claim struct {
	Key, Holder string
	Revision    uint64
	Created     time.Time
}

// ClaimKey is the key of the claim on rule within scope.
func ClaimKey(rule, scope string) string { return claimPrefix + rule + "." + scope }

// TakeClaim creates the claim key naming holder; ErrConflict when it exists.
func (s *Store) TakeClaim(ctx context.Context, key, holder string) (uint64, error) {
	rev, err := s.kv.Create(ctx, key, []byte(holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("claim %s: %w", key, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("claim %s: %w", key, err)
	}
	return rev, nil
}

// ClaimOf reads a claim; ErrNotFound when nobody holds it.
func (s *Store) ClaimOf(ctx context.Context, key string) (Claim, error) {
	e, err := s.entry(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Claim{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("read %s: %w", key, err)
	}
	return Claim{Key: key, Holder: string(e.Value()), Revision: e.Revision(), Created: e.Created()}, nil
}

// TakeOverClaim gives the claim to holder if it is still at c.Revision; ErrConflict otherwise.
func (s *Store) TakeOverClaim(ctx context.Context, c Claim, holder string) (uint64, error) {
	rev, err := s.kv.Update(ctx, c.Key, []byte(holder), c.Revision)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("take over %s: %w", c.Key, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("take over %s: %w", c.Key, err)
	}
	return rev, nil
}

// ReleaseClaim deletes the claim if holder still holds it; a claim that names another holder, or none,
// is left as it is.
func (s *Store) ReleaseClaim(ctx context.Context, key, holder string) error {
	c, err := s.ClaimOf(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.Holder != holder {
		return nil
	}
	err = s.kv.Delete(ctx, key, jetstream.LastRevision(c.Revision))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}

// PutDestinationUnderClaim stores d only while the claim is still at claimRevision: a process that
// stalled after taking the claim, and lost it to a take-over meanwhile, gets ErrConflict instead of
// storing a second holder.
func (s *Store) PutDestinationUnderClaim(ctx context.Context, d *configv1.Destination, claimKey string, claimRevision uint64) error {
	return s.putIf(ctx, destinationPrefix+d.GetId(), d, claimKey, claimRevision)
}

// PutValidationAt stores the validation of a destination only while the destination is still at
// destinationRevision (the settings the validator checked); ErrConflict when it changed or went meanwhile,
// whichever admin replica changed it.
func (s *Store) PutValidationAt(ctx context.Context, destinationID string, r *validatorv1.ValidationResult, destinationRevision uint64) error {
	return s.putIf(ctx, validationPrefix+destinationID, r, destinationPrefix+destinationID, destinationRevision)
}

// putIf stores m under key only while the key cond is at revision condRev. The check and the write are
// one JetStream publish (the expected last sequence of cond's subject), so nothing comes between them.
func (s *Store) putIf(ctx context.Context, key string, m proto.Message, cond string, condRev uint64) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	msg := nats.NewMsg(s.subject(key))
	msg.Data = data
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(condRev, 10))
	msg.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, s.subject(cond))
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		if wrongLastSequence(err) {
			return fmt.Errorf("write %s: %s moved from revision %d: %w", key, cond, condRev, ErrConflict)
		}
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// SourceAt returns a source and its revision, for UpdateSource and DeleteSourceAt.
func (s *Store) SourceAt(ctx context.Context, id string) (*configv1.Source, uint64, error) {
	src := &configv1.Source{}
	rev, err := s.getAt(ctx, sourcePrefix+id, src)
	return src, rev, err
}

// UpdateSource stores src if the stored source is still at rev; ErrConflict otherwise (changed or
// deleted meanwhile).
func (s *Store) UpdateSource(ctx context.Context, src *configv1.Source, rev uint64) (uint64, error) {
	return s.update(ctx, sourcePrefix+src.GetId(), src, rev)
}

// DeleteSourceAt deletes a source if it is still at rev; ErrConflict otherwise.
func (s *Store) DeleteSourceAt(ctx context.Context, id string, rev uint64) error {
	err := s.kv.Delete(ctx, sourcePrefix+id, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("delete %s%s: %w", sourcePrefix, id, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("delete %s%s: %w", sourcePrefix, id, err)
	}
	return nil
}

// DestinationAt returns a destination and its revision, for UpdateDestination and PutValidationAt.
func (s *Store) DestinationAt(ctx context.Context, id string) (*configv1.Destination, uint64, error) {
	d := &configv1.Destination{}
	rev, err := s.getAt(ctx, destinationPrefix+id, d)
	return d, rev, err
}

// UpdateDestination stores d if the stored destination is still at rev; ErrConflict otherwise.
func (s *Store) UpdateDestination(ctx context.Context, d *configv1.Destination, rev uint64) (uint64, error) {
	return s.update(ctx, destinationPrefix+d.GetId(), d, rev)
}

func (s *Store) getAt(ctx context.Context, key string, m proto.Message) (uint64, error) {
	e, err := s.entry(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	if err := proto.Unmarshal(e.Value(), m); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

func (s *Store) update(ctx context.Context, key string, m proto.Message, rev uint64) (uint64, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	next, err := s.kv.Update(ctx, key, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("write %s: %w", key, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return next, nil
}

// subject is the JetStream subject a key of the bucket is stored under.
func (s *Store) subject(key string) string { return "$KV." + s.kv.Bucket() + "." + key }

func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// entry reads key, again while a forming cluster cannot answer (bus.AgainOnTimeout: no responders, for up
// to 2 min while ctx is alive): on a cluster, a bucket that a replica of some service has just created has
// no stream leader until its peers elect one, and a read then finds no responders; on a loaded machine the
// election of a new R3 bucket took longer than 6 s (CI), and a service starting at that moment must not
// exit for it.
func (s *Store) entry(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	var e jetstream.KeyValueEntry
	err := bus.AgainOnTimeout(ctx, func() (err error) { e, err = s.kv.Get(ctx, key); return err })
	return e, err
}
