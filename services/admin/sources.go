package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/configstore"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
)

// Write keys. A source has current keys (write_keys) and rotated keys in their grace period
// (retiring_write_keys, each with an expiry). Ingest authenticates with either, through the watched
// configstore.View, which stops accepting a retiring key at its expiry by the clock: no config write and
// no restart is needed for a rotation's grace to end, and a revocation (RemoveWriteKey, or a rotation
// with zero grace) is refused by ingest as soon as the config watch delivers it, within a second.
const (
	defaultWriteKeyGrace = 24 * time.Hour
	maxWriteKeyGrace     = 30 * 24 * time.Hour
	writeKeyLen          = 32
)

// UpdateSource implements AdminService.
func (s *Server) UpdateSource(ctx context.Context, req *adminv1.UpdateSourceRequest) (*adminv1.UpdateSourceResponse, error) {
	src, err := s.changeSource(ctx, req.GetSourceId(), func(src *configv1.Source) error {
		if req.Name != nil {
			if strings.TrimSpace(req.GetName()) == "" {
				return invalid("name: must not be empty")
			}
			src.Name = req.GetName()
		}
		if req.Slug != nil {
			if !slugRE.MatchString(req.GetSlug()) {
				return invalid("slug: must be 1 to 100 lowercase letters, digits, hyphens or underscores, got %q", req.GetSlug())
			}
			src.Slug = req.GetSlug()
		}
		if req.Enabled != nil {
			src.Enabled = req.GetEnabled()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "source updated", "source", src.GetId(), "enabled", src.GetEnabled())
	ws, err := s.workspaceID(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateSourceResponse{Data: &adminv1.UpdateSourceResponse_Data{Source: presentSource(src, ws)}}, nil
}

// DeleteSource implements AdminService. A source with destinations is refused: deleting them first is
// a deliberate step, so no accepted event loses its way to a bucket by accident.
func (s *Server) DeleteSource(ctx context.Context, req *adminv1.DeleteSourceRequest) (*adminv1.DeleteSourceResponse, error) {
	if _, err := s.source(ctx, req.GetSourceId()); err != nil {
		return nil, err
	}
	deleted := false
	for range casAttempts {
		_, rev, err := s.store.SourceAt(ctx, req.GetSourceId())
		if errors.Is(err, configstore.ErrNotFound) {
			return nil, notFound("source", req.GetSourceId())
		}
		if err != nil {
			return nil, internal(err)
		}
		all, err := s.store.Destinations(ctx)
		if err != nil {
			return nil, internal(err)
		}
		var ids []string
		for _, d := range all {
			if d.GetSourceId() == req.GetSourceId() {
				ids = append(ids, d.GetId())
			}
		}
		if len(ids) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "sourceId: source %s still has destinations (%s); delete them first", req.GetSourceId(), strings.Join(ids, ", "))
		}
		// Only at the revision the destinations were listed at: a destination created meanwhile
		// rewrites its source (confirmSource), and this lists again.
		err = s.store.DeleteSourceAt(ctx, req.GetSourceId(), rev)
		if errors.Is(err, configstore.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, internal(err)
		}
		deleted = true
		break
	}
	if !deleted {
		return nil, errContended("sourceId " + req.GetSourceId())
	}
	s.log.InfoContext(ctx, "source deleted", "source", req.GetSourceId())
	return &adminv1.DeleteSourceResponse{Data: &adminv1.DeleteSourceResponse_Data{Status: "SUCCESS"}}, nil
}

// CreateWriteKey implements AdminService.
func (s *Server) CreateWriteKey(ctx context.Context, req *adminv1.CreateWriteKeyRequest) (*adminv1.CreateWriteKeyResponse, error) {
	key := newID(writeKeyLen)
	src, err := s.changeSource(ctx, req.GetSourceId(), func(src *configv1.Source) error {
		src.WriteKeys = append(src.WriteKeys, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "write key created", "source", src.GetId())
	ws, err := s.workspaceID(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateWriteKeyResponse{Data: &adminv1.CreateWriteKeyResponse_Data{Source: presentSource(src, ws), WriteKey: key}}, nil
}

// RotateWriteKey implements AdminService: a new current key, and the old one retiring for the grace.
func (s *Server) RotateWriteKey(ctx context.Context, req *adminv1.RotateWriteKeyRequest) (*adminv1.RotateWriteKeyResponse, error) {
	grace := s.writeKeyGrace
	if g := req.GetGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			return nil, invalid("gracePeriod: %v", err)
		}
		grace = g.AsDuration()
	}
	if grace < 0 || grace > maxWriteKeyGrace {
		return nil, invalid("gracePeriod: must be between 0s and %s, got %s", maxWriteKeyGrace, grace)
	}
	key := newID(writeKeyLen)
	src, err := s.changeSource(ctx, req.GetSourceId(), func(src *configv1.Source) error {
		i := slices.Index(src.GetWriteKeys(), req.GetWriteKey())
		if i < 0 {
			return writeKeyNotFound(src, req.GetWriteKey())
		}
		src.WriteKeys = append(slices.Delete(src.WriteKeys, i, i+1), key)
		if grace > 0 {
			src.RetiringWriteKeys = append(src.RetiringWriteKeys, &configv1.RetiringWriteKey{
				WriteKey: req.GetWriteKey(), ExpiresAt: timestamppb.New(s.now().Add(grace)),
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "write key rotated", "source", src.GetId(), "grace", grace)
	ws, err := s.workspaceID(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.RotateWriteKeyResponse{Data: &adminv1.RotateWriteKeyResponse_Data{Source: presentSource(src, ws), WriteKey: key}}, nil
}

// RemoveWriteKey implements AdminService: the key, current or retiring, stops working at once.
func (s *Server) RemoveWriteKey(ctx context.Context, req *adminv1.RemoveWriteKeyRequest) (*adminv1.RemoveWriteKeyResponse, error) {
	src, err := s.changeSource(ctx, req.GetSourceId(), func(src *configv1.Source) error {
		n := len(src.GetWriteKeys()) + len(src.GetRetiringWriteKeys())
		src.WriteKeys = slices.DeleteFunc(src.WriteKeys, func(k string) bool { return k == req.GetWriteKey() })
		src.RetiringWriteKeys = slices.DeleteFunc(src.RetiringWriteKeys, func(k *configv1.RetiringWriteKey) bool { return k.GetWriteKey() == req.GetWriteKey() })
		if len(src.GetWriteKeys())+len(src.GetRetiringWriteKeys()) == n {
			return writeKeyNotFound(src, req.GetWriteKey())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "write key revoked", "source", src.GetId())
	return &adminv1.RemoveWriteKeyResponse{Data: &adminv1.RemoveWriteKeyResponse_Data{Status: "SUCCESS"}}, nil
}

// writeKeyNotFound does not repeat the key: it is a credential.
func writeKeyNotFound(src *configv1.Source, key string) error {
	shown := key
	if len(shown) > 4 {
		shown = shown[:4] + "…"
	}
	return status.Errorf(codes.NotFound, "writeKey: %q is not a write key of source %s", shown, src.GetId())
}

// changeSource applies change to the stored source and stores it at the revision it read, dropping
// retiring keys whose grace has ended; when another admin replica wrote the source meanwhile, change is
// applied again to what that replica stored, so no change is lost.
func (s *Server) changeSource(ctx context.Context, id string, change func(*configv1.Source) error) (*configv1.Source, error) {
	if _, err := s.source(ctx, id); err != nil {
		return nil, err
	}
	for range casAttempts {
		src, rev, err := s.store.SourceAt(ctx, id)
		if errors.Is(err, configstore.ErrNotFound) {
			return nil, notFound("source", id)
		}
		if err != nil {
			return nil, internal(err)
		}
		if err := change(src); err != nil {
			return nil, err
		}
		now := s.now()
		src.RetiringWriteKeys = slices.DeleteFunc(src.RetiringWriteKeys, func(k *configv1.RetiringWriteKey) bool { return !now.Before(k.GetExpiresAt().AsTime()) })
		src.UpdatedAt = timestamppb.New(now)
		_, err = s.store.UpdateSource(ctx, src, rev)
		if errors.Is(err, configstore.ErrConflict) {
			continue // another replica changed it: apply the change to what it stored
		}
		if err != nil {
			return nil, internal(fmt.Errorf("store source %s: %w", id, err))
		}
		return src, nil
	}
	return nil, errContended("sourceId " + id)
}
