package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/cursor"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// Server implements AdminService over the config store. Writes go to the store (JetStream KV), which
// every service watches; reads come from the store too, so a caller always sees its own writes.
type Server struct {
	store     *configstore.Store
	view      *configstore.View
	validator validatorv1.ValidatorServiceClient
	cursors   *cursor.Store
	log       *slog.Logger
	now       func() time.Time
	// principal is our intermediate role, the Principal of customers' trust policies.
	principal string
	// writeKeyGrace is how long a rotated write key keeps working by default.
	writeKeyGrace time.Duration
	// own are the buckets no destination may name (ours); legacyS3 allows the Amazon S3 (legacy) kind,
	// which writes as our own principal.
	own      awsclient.OwnBuckets
	legacyS3 bool
	// js, when set, lets the status API read each destination's waiting files from its copier lane, and
	// bring the status cached in Redis up to the destination's delivery history (folder).
	js     jetstream.JetStream
	folder *cursor.Folder
	// replays, when set, holds the replays (replays.go).
	replays *configstore.Replays
	// bg counts automatic validations in flight (Close waits for them).
	bg sync.WaitGroup
	// claimGrace is how old a claim naming no destination must be to be taken over (rules.go). Rules
	// across objects hold by compare-and-set in the config bucket, never by a lock of this process, so
	// that they hold across admin replicas.
	claimGrace time.Duration
	adminv1.UnimplementedAdminServiceServer
}

// Option adjusts a Server.
type Option func(*Server)

// WithPrincipal sets our intermediate role's ARN, shown in the trust policy of GET /workspace.
func WithPrincipal(arn string) Option { return func(s *Server) { s.principal = arn } }

// WithWriteKeyGrace sets how long a rotated write key keeps working when the rotation does not say.
func WithWriteKeyGrace(d time.Duration) Option { return func(s *Server) { s.writeKeyGrace = d } }

// WithOwnBuckets names the buckets s3dest uses itself (the staging bucket, and others): no destination
// of either kind may name one.
func WithOwnBuckets(buckets ...string) Option {
	return func(s *Server) {
		for _, b := range buckets {
			s.own[b] = true
		}
	}
}

// WithLegacyS3 allows the Amazon S3 (legacy) destination, which writes as our own principal. Off, none
// can be created or enabled; one that exists can still be disabled or deleted.
func WithLegacyS3(on bool) Option { return func(s *Server) { s.legacyS3 = on } }

// WithJetStream lets GetDestinationStatus report each destination's waiting files and the deadline of
// its oldest one, read from the destination's copier lane.
func WithJetStream(js jetstream.JetStream) Option { return func(s *Server) { s.js = js } }

// NewServer returns the AdminService implementation. validator and cursors may be nil: then
// ValidateDestination and GetDestinationStatus answer FailedPrecondition, and destinations are not
// validated when created or changed.
func NewServer(store *configstore.Store, view *configstore.View, validator validatorv1.ValidatorServiceClient, cursors *cursor.Store, log *slog.Logger, opts ...Option) *Server {
	s := &Server{store: store, view: view, validator: validator, cursors: cursors, log: log, now: time.Now, writeKeyGrace: defaultWriteKeyGrace, claimGrace: defaultClaimGrace, own: awsclient.OwnBuckets{}}
	for _, o := range opts {
		o(s)
	}
	if s.js != nil && s.cursors != nil {
		s.folder = cursor.NewFolder(s.cursors, s.js)
	}
	return s
}

// Register adds AdminService to a gRPC server.
func (s *Server) Register(g *grpc.Server) { adminv1.RegisterAdminServiceServer(g, s) }

// EnsureWorkspace returns the workspace, creating it on first use with id (or a generated ID). The ID
// never changes afterwards: it is the External ID in every customer's trust policy.
func EnsureWorkspace(ctx context.Context, store *configstore.Store, id string) (*configv1.Workspace, error) {
	ws, err := store.Workspace(ctx)
	if err == nil {
		return ws, nil
	}
	if !errors.Is(err, configstore.ErrNotFound) {
		return nil, err
	}
	if id == "" {
		id = newID(22)
	}
	return store.CreateWorkspace(ctx, &configv1.Workspace{Id: id, Name: "s3dest", CreatedAt: timestamppb.Now()})
}

var (
	slugRE = regexp.MustCompile(`^[a-z0-9_-]{1,100}$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q does not exist", kind, id)
}

func internal(err error) error {
	return status.Error(codes.Internal, err.Error())
}

// CreateSource implements AdminService.
func (s *Server) CreateSource(ctx context.Context, req *adminv1.CreateSourceRequest) (*adminv1.CreateSourceResponse, error) {
	if !slugRE.MatchString(req.GetSlug()) {
		return nil, invalid("slug: must be 1 to 100 lowercase letters, digits, hyphens or underscores, got %q", req.GetSlug())
	}
	name := req.GetName()
	if name == "" {
		name = req.GetSlug()
	}
	if m := req.GetMetadataId(); m != "" && !idRE.MatchString(m) {
		return nil, invalid("metadataId: must be a catalog ID of 1 to 64 letters, digits, hyphens or underscores, got %q", m)
	}
	ws, err := s.workspaceID(ctx)
	if err != nil {
		return nil, err
	}
	now := timestamppb.New(s.now())
	src := &configv1.Source{
		Id: newID(22), Name: name, Slug: req.GetSlug(), Enabled: req.Enabled == nil || req.GetEnabled(),
		WriteKeys: []string{newID(32)}, CreatedAt: now, UpdatedAt: now,
		Metadata: &configv1.SourceMetadata{Id: sourceMetadata(req.GetMetadataId()).GetId()},
	}
	if err := s.store.PutSource(ctx, src); err != nil {
		return nil, internal(err)
	}
	s.log.InfoContext(ctx, "source created", "source", src.GetId(), "slug", src.GetSlug())
	return &adminv1.CreateSourceResponse{Data: &adminv1.CreateSourceResponse_Data{Source: presentSource(src, ws)}}, nil
}

// ListSources implements AdminService.
func (s *Server) ListSources(ctx context.Context, req *adminv1.ListSourcesRequest) (*adminv1.ListSourcesResponse, error) {
	all, err := s.store.Sources(ctx)
	if err != nil {
		return nil, internal(err)
	}
	page, out, err := paginate(req.GetPagination(), all, (*configv1.Source).GetId)
	if err != nil {
		return nil, err
	}
	ws, err := s.workspaceID(ctx)
	if err != nil {
		return nil, err
	}
	for i, src := range page {
		page[i] = presentSource(src, ws)
	}
	return &adminv1.ListSourcesResponse{Data: &adminv1.ListSourcesResponse_Data{Sources: page, Pagination: out}}, nil
}

// GetSource implements AdminService.
func (s *Server) GetSource(ctx context.Context, req *adminv1.GetSourceRequest) (*adminv1.GetSourceResponse, error) {
	src, err := s.source(ctx, req.GetSourceId())
	if err != nil {
		return nil, err
	}
	ws, err := s.workspaceID(ctx)
	if err != nil {
		return nil, err
	}
	// TrackingPlanId stays unset, which answers null: s3dest has no tracking plans.
	return &adminv1.GetSourceResponse{Data: &adminv1.GetSourceResponse_Data{Source: presentSource(src, ws)}}, nil
}

// workspaceID is the workspace's ID, which every source carries in answers.
func (s *Server) workspaceID(ctx context.Context) (string, error) {
	ws, err := s.store.Workspace(ctx)
	if err != nil {
		return "", internal(fmt.Errorf("read the workspace: %w", err))
	}
	return ws.GetId(), nil
}

func (s *Server) source(ctx context.Context, id string) (*configv1.Source, error) {
	if !idRE.MatchString(id) {
		return nil, invalid("sourceId: %q is not a source ID", id)
	}
	src, err := s.store.Source(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return nil, notFound("source", id)
	}
	if err != nil {
		return nil, internal(err)
	}
	return src, nil
}

func (s *Server) destination(ctx context.Context, id string) (*configv1.Destination, error) {
	if !idRE.MatchString(id) {
		return nil, invalid("destinationId: %q is not a destination ID", id)
	}
	d, err := s.store.Destination(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return nil, notFound("destination", id)
	}
	if err != nil {
		return nil, internal(err)
	}
	return d, nil
}

// CreateDestination implements AdminService. An AWS S3 destination is validated in the background
// once stored; GET /destinations/{id} shows the result.
func (s *Server) CreateDestination(ctx context.Context, req *adminv1.CreateDestinationRequest) (*adminv1.CreateDestinationResponse, error) {
	d, err := s.createDestination(ctx, req)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "destination created", "destination", d.GetId(), "source", d.GetSourceId(), "kind", d.GetMetadata().GetSlug())
	s.autoValidate(ctx, d)
	return &adminv1.CreateDestinationResponse{Data: &adminv1.CreateDestinationResponse_Data{Destination: presentDestination(d)}}, nil
}

func (s *Server) createDestination(ctx context.Context, req *adminv1.CreateDestinationRequest) (*configv1.Destination, error) {
	md, ok := catalogEntry(req.GetMetadataId())
	if !ok {
		return nil, invalid("metadataId: must be %s (AWS S3) or %s (Amazon S3), got %q", layout.AWSS3MetadataID, layout.AmazonS3MetadataID, req.GetMetadataId())
	}
	if req.GetSettings() == nil {
		return nil, invalid("settings: region, s3Bucket and iamRoleArn are required")
	}
	if md.GetId() == layout.AmazonS3MetadataID && !s.legacyS3 {
		return nil, errLegacyOff()
	}
	if err := checkSettings(req.GetSettings(), md.GetId() == layout.AWSS3MetadataID, s.own); err != nil {
		return nil, invalid("%v", err)
	}
	if _, err := s.source(ctx, req.GetSourceId()); err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = md.GetName()
	}
	now := timestamppb.New(s.now())
	d := &configv1.Destination{
		Id: newID(22), Name: name, Enabled: req.Enabled == nil || req.GetEnabled(), SourceId: req.GetSourceId(),
		Metadata: storedMetadata(md), Settings: req.GetSettings(), CreatedAt: now, UpdatedAt: now,
	}
	if md.GetId() == layout.AWSS3MetadataID {
		if err := s.storeSoleAWSS3(ctx, d); err != nil {
			return nil, err
		}
	} else if err := s.store.PutDestination(ctx, d); err != nil {
		return nil, internal(err)
	}
	if err := s.confirmSource(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// ListDestinations implements AdminService.
func (s *Server) ListDestinations(ctx context.Context, req *adminv1.ListDestinationsRequest) (*adminv1.ListDestinationsResponse, error) {
	all, err := s.store.Destinations(ctx)
	if err != nil {
		return nil, internal(err)
	}
	all = slices.DeleteFunc(all, func(d *configv1.Destination) bool {
		return req.GetMetadataId() != "" && d.GetMetadata().GetId() != req.GetMetadataId() ||
			req.GetSlug() != "" && d.GetMetadata().GetSlug() != req.GetSlug() ||
			req.GetSourceId() != "" && d.GetSourceId() != req.GetSourceId()
	})
	page, out, err := paginate(req.GetPagination(), all, (*configv1.Destination).GetId)
	if err != nil {
		return nil, err
	}
	for i, d := range page {
		page[i] = presentDestination(d)
	}
	return &adminv1.ListDestinationsResponse{Data: &adminv1.ListDestinationsResponse_Data{Destinations: page, Pagination: out}}, nil
}

// GetDestination implements AdminService.
func (s *Server) GetDestination(ctx context.Context, req *adminv1.GetDestinationRequest) (*adminv1.GetDestinationResponse, error) {
	d, err := s.destination(ctx, req.GetDestinationId())
	if err != nil {
		return nil, err
	}
	v, err := s.validation(ctx, d.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetDestinationResponse{Data: &adminv1.GetDestinationResponse_Data{Destination: presentDestination(d), Validation: v}}, nil
}

// UpdateDestination implements AdminService: it changes what the request sets and re-checks the result.
// A change of settings forgets the previous validation and validates the new settings in the
// background; otherwise the answer carries the destination's current validation.
func (s *Server) UpdateDestination(ctx context.Context, req *adminv1.UpdateDestinationRequest) (*adminv1.UpdateDestinationResponse, error) {
	d, changed, err := s.updateDestination(ctx, req)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "destination updated", "destination", d.GetId(), "enabled", d.GetEnabled(), "settingsChanged", changed)
	var v *validatorv1.ValidationResult
	if changed {
		s.autoValidate(ctx, d)
	} else if v, err = s.validation(ctx, d.GetId()); err != nil {
		return nil, err
	}
	return &adminv1.UpdateDestinationResponse{Data: &adminv1.UpdateDestinationResponse_Data{Destination: presentDestination(d), Validation: v}}, nil
}

func (s *Server) updateDestination(ctx context.Context, req *adminv1.UpdateDestinationRequest) (d *configv1.Destination, settingsChanged bool, err error) {
	if !idRE.MatchString(req.GetDestinationId()) {
		return nil, false, invalid("destinationId: %q is not a destination ID", req.GetDestinationId())
	}
	for range casAttempts {
		d, rev, err := s.store.DestinationAt(ctx, req.GetDestinationId())
		if errors.Is(err, configstore.ErrNotFound) {
			return nil, false, notFound("destination", req.GetDestinationId())
		}
		if err != nil {
			return nil, false, internal(err)
		}
		settingsChanged, err := s.changeDestination(d, req)
		if err != nil {
			return nil, false, err
		}
		if settingsChanged {
			// The old result describes settings that are going away.
			if err := s.store.DeleteValidation(ctx, d.GetId()); err != nil {
				return nil, false, internal(err)
			}
		}
		_, err = s.store.UpdateDestination(ctx, d, rev)
		if errors.Is(err, configstore.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, false, internal(err)
		}
		if settingsChanged {
			// A validation of the old settings stored after the delete above, by a replica that read
			// them before this update, is as old: it goes too (runValidation stores only at the
			// revision it validated, so none comes after this).
			if err := s.store.DeleteValidation(ctx, d.GetId()); err != nil {
				return nil, false, internal(err)
			}
		}
		return d, settingsChanged, nil
	}
	return nil, false, errContended("destinationId " + req.GetDestinationId())
}

// changeDestination applies what req sets to d and checks the result.
func (s *Server) changeDestination(d *configv1.Destination, req *adminv1.UpdateDestinationRequest) (settingsChanged bool, err error) {
	if d.GetMetadata().GetId() == layout.AmazonS3MetadataID && !s.legacyS3 && (req.GetEnabled() || req.GetSettings() != nil) {
		return false, errLegacyOff() // disabling, renaming and deleting it stay possible
	}
	if req.Name != nil {
		if req.GetName() == "" {
			return false, invalid("name: must not be empty")
		}
		d.Name = req.GetName()
	}
	if req.Enabled != nil {
		d.Enabled = req.GetEnabled()
	}
	if set := req.GetSettings(); set != nil {
		if set.Backfill != nil {
			return false, invalid("settings.backfill: only a destination being created can ask for backfill; to deliver retained days to an existing one, create a replay (POST /destinations/{id}/replays)")
		}
		before := proto.Clone(d.GetSettings())
		if d.Settings == nil {
			d.Settings = &configv1.DestinationSettings{}
		}
		if set.GetRegion() != "" {
			d.Settings.Region = set.GetRegion()
		}
		if set.GetS3Bucket() != "" {
			d.Settings.S3Bucket = set.GetS3Bucket()
		}
		if set.GetIamRoleArn() != "" {
			d.Settings.IamRoleArn = set.GetIamRoleArn()
		}
		if set.GetFormat() != "" {
			d.Settings.Format = set.GetFormat()
		}
		if err := checkSettings(d.GetSettings(), d.GetMetadata().GetId() == layout.AWSS3MetadataID, s.own); err != nil {
			return false, invalid("%v", err)
		}
		settingsChanged = !proto.Equal(before, d.GetSettings())
	}
	d.UpdatedAt = timestamppb.New(s.now())
	return settingsChanged, nil
}

// DeleteDestination implements AdminService.
func (s *Server) DeleteDestination(ctx context.Context, req *adminv1.DeleteDestinationRequest) (*adminv1.DeleteDestinationResponse, error) {
	d, err := s.destination(ctx, req.GetDestinationId())
	if err != nil {
		return nil, err
	}
	if err := s.removeDestination(ctx, d); err != nil {
		return nil, internal(err)
	}
	s.log.InfoContext(ctx, "destination deleted", "destination", req.GetDestinationId())
	return &adminv1.DeleteDestinationResponse{Data: &adminv1.DeleteDestinationResponse_Data{Status: "SUCCESS"}}, nil
}

// GetDestinationStatus implements AdminService from the destination's delivery history in JetStream
// (batch.delivered and batch.failed), folded into the delivery cursors that Redis caches: a read first
// folds what the cache lacks, all of it after Redis lost it.
func (s *Server) GetDestinationStatus(ctx context.Context, req *adminv1.GetDestinationStatusRequest) (*adminv1.GetDestinationStatusResponse, error) {
	if s.cursors == nil {
		return nil, status.Error(codes.FailedPrecondition, "no Redis is configured (redis-url): delivery status is unavailable")
	}
	d, err := s.destination(ctx, req.GetDestinationId())
	if err != nil {
		return nil, err
	}
	if s.folder != nil {
		if err := s.folder.CatchUp(ctx, d.GetId()); err != nil {
			return nil, status.Errorf(codes.Unavailable, "read delivery status: %v", err)
		}
	}
	days, err := s.cursors.Days(ctx, cursor.Delivered, d.GetId())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read delivery status: %v", err)
	}
	v, err := s.validation(ctx, d.GetId())
	if err != nil {
		return nil, err
	}
	st := &adminv1.GetDestinationStatusResponse_Status{DestinationId: d.GetId(), Enabled: d.GetEnabled(), Validation: v}
	for _, day := range days {
		ds := &adminv1.DayStatus{ReceivedDayMs: day.DayMs, Files: day.Files, Events: day.Events, Bytes: day.Bytes, LastError: day.LastError,
			DeadLetteredFiles: day.DeadFiles, DeadLetteredEvents: day.DeadEvents}
		if !day.LastAt.IsZero() {
			ds.LastDeliveryAt = timestamppb.New(day.LastAt)
		}
		if !day.ErrorAt.IsZero() {
			ds.LastErrorAt = timestamppb.New(day.ErrorAt)
		}
		st.Days = append(st.Days, ds)
	}
	if st.Retention, err = s.retentionStatus(ctx, d, st.Days); err != nil {
		return nil, err
	}
	if st.LastDelivery, err = s.lastDelivery(ctx, d.GetId()); err != nil {
		return nil, err
	}
	return &adminv1.GetDestinationStatusResponse{Data: &adminv1.GetDestinationStatusResponse_Data{Status: st}}, nil
}

// paginate returns one page of items (sorted by id) from the cursor. A cursor names the item a page
// starts after ("" for the first), so a page's items stay the same while others are added or removed
// elsewhere. next is absent on the last page and previous on the first.
func paginate[T any](in *adminv1.PaginationInput, items []T, id func(T) string) ([]T, *adminv1.PaginationOutput, error) {
	count := int(in.GetCount())
	switch {
	case count == 0:
		count = 10
	case count < 1 || count > 200:
		return nil, nil, invalid("pagination.count: must be between 1 and 200, got %d", in.GetCount())
	}
	sort.Slice(items, func(i, j int) bool { return id(items[i]) < id(items[j]) })
	start := 0
	if c := in.GetCursor(); c != "" {
		after, ok := decodeCursor(c)
		if !ok {
			return nil, nil, invalid("pagination.cursor: %q is not a cursor this API returned", c)
		}
		start = sort.Search(len(items), func(i int) bool { return id(items[i]) > after })
	}
	// cursorAt is the cursor of the page that starts at index i.
	cursorAt := func(i int) string {
		if i == 0 {
			return encodeCursor("")
		}
		return encodeCursor(id(items[i-1]))
	}
	end := min(start+count, len(items))
	out := &adminv1.PaginationOutput{Current: cursorAt(start), TotalEntries: int32(len(items))}
	if end < len(items) {
		out.Next = proto.String(cursorAt(end))
	}
	if start > 0 {
		out.Previous = proto.String(cursorAt(max(0, start-count)))
	}
	return items[start:end], out, nil
}

// cursorPrefix marks a cursor's ID; a cursor without it (as this API wrote them before) is the ID alone.
const cursorPrefix = "after:"

func encodeCursor(afterID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + afterID))
}

func decodeCursor(c string) (afterID string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	return strings.TrimPrefix(string(b), cursorPrefix), true
}
