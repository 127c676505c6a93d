package admin

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/configstore"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// Validation results are kept in the config store (validations.<destinationId>), one per destination,
// always for the destination's current settings: a settings change deletes the old result before the
// new settings are stored, and a result is stored only if the settings it checked are still current
// (checked under s.mu, which every destination write holds). So what GET /destinations/{id} shows never
// describes settings the destination no longer has.

// autoValidateTimeout bounds an automatic validation, including reaching the validator.
const autoValidateTimeout = time.Minute

// ValidateDestination implements AdminService: it runs the validator on the destination's settings,
// stores the result and returns it.
func (s *Server) ValidateDestination(ctx context.Context, req *adminv1.ValidateDestinationRequest) (*adminv1.ValidateDestinationResponse, error) {
	if s.validator == nil {
		return nil, status.Error(codes.FailedPrecondition, "no validator is configured (validator-addr)")
	}
	d, err := s.destination(ctx, req.GetDestinationId())
	if err != nil {
		return nil, err
	}
	if d.GetMetadata().GetId() != layout.AWSS3MetadataID {
		return nil, status.Errorf(codes.FailedPrecondition, "destinationId: %s is an Amazon S3 (legacy) destination, which has no IAM role to validate", d.GetId())
	}
	res, err := s.runValidation(ctx, d)
	if err != nil {
		return nil, err
	}
	return &adminv1.ValidateDestinationResponse{Data: &adminv1.ValidateDestinationResponse_Data{Validation: res}}, nil
}

// autoValidate validates, in the background, a destination that was just created or whose settings
// just changed, and stores the result (GET /destinations/{id} shows it, usually within a second). It
// does not hold up the change, which is already stored: a slow, missing or failing validator only
// leaves the validation absent (logged). Close waits for the validations in flight.
func (s *Server) autoValidate(ctx context.Context, d *configv1.Destination) {
	if s.validator == nil || d.GetMetadata().GetId() != layout.AWSS3MetadataID {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), autoValidateTimeout)
		defer cancel()
		if _, err := s.runValidation(vctx, d); err != nil {
			s.log.WarnContext(vctx, "automatic validation did not run", "destination", d.GetId(), "error", err)
		}
	}()
}

// Close waits for the automatic validations in flight (each ends within autoValidateTimeout).
func (s *Server) Close() { s.bg.Wait() }

// runValidation asks the validator about d's settings and stores the result if they are still current.
// It does not say which External ID to use: the validator reads the workspace from the config store.
func (s *Server) runValidation(ctx context.Context, d *configv1.Destination) (*validatorv1.ValidationResult, error) {
	out, err := s.validator.Validate(ctx, &validatorv1.ValidateRequest{DestinationId: d.GetId(), Settings: d.GetSettings()})
	if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
		// Not the caller's fault: this service and the validator disagree on the token.
		return nil, status.Errorf(codes.Unavailable, "validator-token: the validator refused this admin service (%s); give both the same token", status.Convert(err).Message())
	}
	if err != nil {
		return nil, err
	}
	res := out.GetResult()
	cur, rev, err := s.store.DestinationAt(ctx, d.GetId())
	switch {
	case errors.Is(err, configstore.ErrNotFound):
		return res, nil // deleted meanwhile
	case err != nil:
		return nil, internal(err)
	case !proto.Equal(cur.GetSettings(), d.GetSettings()):
		return res, nil // changed meanwhile: that change runs its own validation
	}
	// Stored only while the destination is still at rev, whichever replica changes it.
	if err := s.store.PutValidationAt(ctx, d.GetId(), res, rev); err != nil && !errors.Is(err, configstore.ErrConflict) {
		return nil, internal(err)
	}
	return res, nil
}

// validation returns the stored validation of a destination, nil when none ran for its settings.
func (s *Server) validation(ctx context.Context, destinationID string) (*validatorv1.ValidationResult, error) {
	v, err := s.store.Validation(ctx, destinationID)
	if errors.Is(err, configstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, internal(err)
	}
	return v, nil
}
