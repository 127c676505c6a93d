package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/s3dest/s3dest/pkg/configstore"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// Rules across objects hold across admin replicas (DESIGN.md §8): nothing here rests on a process
// mutex. Each write names the revision it was decided on (configstore's compare-and-set), and a write
// that loses is decided again from what the bucket holds now.
//
//   - One AWS S3 destination per source: the claim claims.awss3.<sourceId>, created with kv.Create, names
//     the destination; the destination is stored only while the claim is at the revision its creator
//     took it at, and its deletion releases the claim. A claim whose destination does not exist (its
//     creator died between the two writes) is taken over once older than claimGrace.
//   - No destination of a deleted source: a new destination rewrites its source at the revision it read
//     (after storing itself), and DeleteSource deletes the source only at the revision it listed its
//     destinations at, so one of the two sees the other.
//   - Read-modify-writes of a source (write keys) or a destination are revision-checked updates.

// awsS3Rule names the one-AWS-S3-destination-per-source rule in its claim keys.
const awsS3Rule = "awss3"

// defaultClaimGrace is how old a claim naming no destination must be before another creation takes it
// over: far longer than the two writes of a creation take.
const defaultClaimGrace = 30 * time.Second

// casAttempts bounds how often a write is decided again after losing a compare-and-set.
const casAttempts = 20

func errMultipleAWSS3() error {
	return invalid("Multiple instance of AWS S3 are not allowed for this source")
}

// errContended is the answer when other admin replicas kept changing the same object.
func errContended(what string) error {
	return status.Errorf(codes.Aborted, "%s: changed by another admin replica %d times in a row; try again", what, casAttempts)
}

// storeSoleAWSS3 stores d, a new AWS S3 destination, unless its source has one: it takes (or takes
// over) the source's claim and stores d under it.
func (s *Server) storeSoleAWSS3(ctx context.Context, d *configv1.Destination) error {
	key := configstore.ClaimKey(awsS3Rule, d.GetSourceId())
	for range casAttempts {
		rev, err := s.store.TakeClaim(ctx, key, d.GetId())
		if errors.Is(err, configstore.ErrConflict) {
			rev, err = s.takeOverOrphanClaim(ctx, key, d.GetId())
			if errors.Is(err, configstore.ErrNotFound) {
				continue // released meanwhile: take it again
			}
		} else if err != nil {
			return internal(err)
		}
		if err != nil {
			return err
		}
		// A destination stored before claims existed holds the rule without one: give it the claim.
		if other, err := s.otherAWSS3(ctx, d); err != nil {
			return internal(err)
		} else if other != "" {
			if _, err := s.store.TakeOverClaim(ctx, configstore.Claim{Key: key, Revision: rev}, other); err != nil && !errors.Is(err, configstore.ErrConflict) {
				return internal(err)
			}
			return errMultipleAWSS3()
		}
		err = s.store.PutDestinationUnderClaim(ctx, d, key, rev)
		if errors.Is(err, configstore.ErrConflict) {
			return errMultipleAWSS3() // taken over while we stalled
		}
		if err != nil {
			return internal(err)
		}
		return nil
	}
	return errContended("sourceId " + d.GetSourceId())
}

// takeOverOrphanClaim takes the claim key for holder if the destination it names does not exist and the
// claim is older than the grace; otherwise the rule holds and the answer is its error. ErrNotFound
// means the claim went meanwhile.
func (s *Server) takeOverOrphanClaim(ctx context.Context, key, holder string) (uint64, error) {
	c, err := s.store.ClaimOf(ctx, key)
	if err != nil {
		if errors.Is(err, configstore.ErrNotFound) {
			return 0, err
		}
		return 0, internal(err)
	}
	_, err = s.store.Destination(ctx, c.Holder)
	switch {
	case err == nil:
		return 0, errMultipleAWSS3()
	case !errors.Is(err, configstore.ErrNotFound):
		return 0, internal(err)
	case time.Since(c.Created) < s.claimGrace:
		return 0, errMultipleAWSS3() // its creator may still be storing it
	}
	rev, err := s.store.TakeOverClaim(ctx, c, holder)
	if errors.Is(err, configstore.ErrConflict) {
		return 0, errMultipleAWSS3() // another creation took it over first
	}
	if err != nil {
		return 0, internal(err)
	}
	s.log.WarnContext(ctx, "took over a claim whose destination does not exist", "claim", key, "was", c.Holder, "now", holder)
	return rev, nil
}

// otherAWSS3 is the ID of another AWS S3 destination of d's source, if one is stored.
func (s *Server) otherAWSS3(ctx context.Context, d *configv1.Destination) (string, error) {
	all, err := s.store.Destinations(ctx)
	if err != nil {
		return "", err
	}
	for _, o := range all {
		if o.GetId() != d.GetId() && o.GetSourceId() == d.GetSourceId() && o.GetMetadata().GetId() == layout.AWSS3MetadataID {
			return o.GetId(), nil
		}
	}
	return "", nil
}

// confirmSource rewrites d's source at the revision just read, after d is stored: a DeleteSource that
// listed the source's destinations before d existed then fails its own revision check and lists again.
// If the source is gone, d is removed again and the answer is that the source does not exist.
func (s *Server) confirmSource(ctx context.Context, d *configv1.Destination) error {
	for range casAttempts {
		src, rev, err := s.store.SourceAt(ctx, d.GetSourceId())
		if errors.Is(err, configstore.ErrNotFound) {
			if err := s.removeDestination(ctx, d); err != nil {
				return internal(err)
			}
			return notFound("source", d.GetSourceId())
		}
		if err != nil {
			return internal(err)
		}
		_, err = s.store.UpdateSource(ctx, src, rev)
		if errors.Is(err, configstore.ErrConflict) {
			continue
		}
		if err != nil {
			return internal(err)
		}
		return nil
	}
	return errContended("sourceId " + d.GetSourceId())
}

// removeDestination deletes d, its validation and (last, so that a crash before leaves a claim naming
// no destination, which is taken over) its claim.
func (s *Server) removeDestination(ctx context.Context, d *configv1.Destination) error {
	if err := s.store.DeleteDestination(ctx, d.GetId()); err != nil {
		return err
	}
	if err := s.store.DeleteValidation(ctx, d.GetId()); err != nil {
		return err
	}
	if d.GetMetadata().GetId() == layout.AWSS3MetadataID {
		if err := s.store.ReleaseClaim(ctx, configstore.ClaimKey(awsS3Rule, d.GetSourceId()), d.GetId()); err != nil {
			return fmt.Errorf("release the AWS S3 claim of source %s: %w", d.GetSourceId(), err)
		}
	}
	return nil
}
