// Package validator checks a customer's IAM setup the way the reference's "Validate" button does
// (DESIGN.md §6): assume our intermediate role; assume the customer's role without the External ID,
// which must be refused; assume it with the External ID; upload {prefix/}segment-logs/dummy-object.txt
// with ACL bucket-owner-full-control. Each outcome has a stable code and the reference's message.
//
// The validator makes our intermediate role assume a customer's role, so it trusts no caller with that:
// a caller must present the validator's bearer token, and the External ID is always the installation's
// workspace ID, read from the config store (KV CONFIG), never the caller's choice. Otherwise anyone who
// reaches the port could make our role assume any role with any External ID and write into its bucket.
package validator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/configstore"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/pkg/platform/grpcserver"
)

// The reference's messages.
const (
	MsgTryAgain       = "Unknown Error. Please try again. If the problem persists, please contact Segment support."
	MsgExternalID     = "Access Denied. Please configure External ID in the AWS IAM Console."
	MsgFollowSetup    = "Unknown Error. Please follow instructions to set up the AWS S3 destination. If the problem persists, please contact Segment support."
	MsgAddPutObject   = "Access Denied. Please add PutObject permissions to the IAM role in the AWS IAM Console."
	MsgOK             = "Validation succeeded: s3dest can write to the bucket."
	dummyBody         = "s3dest validation: this object tests the destination's IAM role. You may delete it.\n"
	maxSessionNameLen = 64
)

// Validator runs validations. It is safe for concurrent use; the same settings validated at once
// run once.
type Validator struct {
	clients *awsclient.Clients
	// view holds the workspace, whose ID is the External ID of every validation.
	view    *configstore.View
	log     *slog.Logger
	timeout time.Duration
	flight  singleflight.Group
	now     func() time.Time
	// metrics, when set, counts the AssumeRole calls into customers' roles.
	metrics *platform.Metrics
	// beforeFlight, when set, is called as a validation joins or starts its flight (tests use it).
	beforeFlight func()
	validatorv1.UnimplementedValidatorServiceServer
}

// NewValidator returns a validator using clients for AWS and the workspace of view as External ID. m,
// when not nil, counts its AssumeRole calls into customers' roles (s3dest_sts_assume_role_total).
func NewValidator(clients *awsclient.Clients, view *configstore.View, log *slog.Logger, timeout time.Duration, m *platform.Metrics) *Validator {
	return &Validator{clients: clients, view: view, log: log, timeout: timeout, now: time.Now, metrics: m}
}

// assumed counts one AssumeRole call into a customer's role.
func (v *Validator) assumed(ctx context.Context, err error) {
	if v.metrics != nil {
		v.metrics.AssumeRole.Add(ctx, 1, v.metrics.With("caller", "validator", "outcome", awsclient.AssumeOutcome(err)))
	}
}

// Register adds ValidatorService to a gRPC server.
func (v *Validator) Register(s *grpc.Server) { validatorv1.RegisterValidatorServiceServer(s, v) }

// MaxRequestBytes bounds one gRPC request to ValidatorService, which carries three settings and an ID.
const MaxRequestBytes = 64 << 10

// Validate implements ValidatorService. The External ID is the stored workspace's ID; a request naming
// another workspace is refused (PermissionDenied) rather than ignored, so a caller that believes it
// chose the External ID learns that it did not.
func (v *Validator) Validate(ctx context.Context, req *validatorv1.ValidateRequest) (*validatorv1.ValidateResponse, error) {
	externalID := v.view.Workspace().GetId()
	if externalID == "" {
		return nil, status.Error(codes.FailedPrecondition, "workspace: none exists yet; the admin service creates it on its first start, and its ID is the External ID")
	}
	//lint:ignore SA1019 the deprecated field is read only to refuse a caller's choice
	if id := req.GetWorkspaceId(); id != "" && id != externalID {
		return nil, status.Error(codes.PermissionDenied, "workspaceId: the External ID is always this installation's workspace ID, never the caller's choice; leave workspaceId empty")
	}
	set := req.GetSettings()
	bucket, prefix, err := layout.SplitBucket(set.GetS3Bucket())
	switch {
	case err != nil:
		return nil, status.Errorf(codes.InvalidArgument, "settings.s3Bucket: %v", err)
	case set.GetRegion() == "":
		return nil, status.Error(codes.InvalidArgument, "settings.region: is required, such as us-west-2")
	case !awsclient.RoleARN.MatchString(set.GetIamRoleArn()):
		return nil, status.Errorf(codes.InvalidArgument, "settings.iamRoleArn: must look like arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME, got %q", set.GetIamRoleArn())
	}
	key := strings.Join([]string{req.GetDestinationId(), set.GetRegion(), set.GetS3Bucket(), set.GetIamRoleArn(), externalID}, "\x00")
	if v.beforeFlight != nil {
		v.beforeFlight()
	}
	res, _, _ := v.flight.Do(key, func() (any, error) {
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.timeout)
		defer cancel()
		return v.run(vctx, req, externalID, bucket, prefix), nil
	})
	return &validatorv1.ValidateResponse{Result: res.(*validatorv1.ValidationResult)}, nil
}

func (v *Validator) run(ctx context.Context, req *validatorv1.ValidateRequest, externalID, bucket, prefix string) *validatorv1.ValidationResult {
	set := req.GetSettings()
	res := &validatorv1.ValidationResult{CheckedAt: timestamppb.New(v.now())}
	session := sessionName(req.GetDestinationId())
	step := func(s validatorv1.ValidationStep, err error) bool {
		res.Steps = append(res.Steps, &validatorv1.StepResult{Step: s, Ok: err == nil, Detail: detail(err)})
		return err == nil
	}
	failed := func(s validatorv1.ValidationStep, code validatorv1.ValidationCode, msg string) *validatorv1.ValidationResult {
		res.Code, res.Message, res.FailedStep = code, msg, s
		v.log.InfoContext(ctx, "validation failed", "destination", req.GetDestinationId(), "step", s.String(), "code", code.String())
		return res
	}

	// 1. Our intermediate role.
	inter, err := v.clients.Intermediate(ctx, session)
	if err == nil {
		_, err = inter.Retrieve(ctx)
	}
	if !step(validatorv1.ValidationStep_VALIDATION_STEP_ASSUME_INTERMEDIATE_ROLE, err) {
		return failed(validatorv1.ValidationStep_VALIDATION_STEP_ASSUME_INTERMEDIATE_ROLE, validatorv1.ValidationCode_VALIDATION_CODE_INTERMEDIATE_ROLE_FAILED, MsgTryAgain)
	}

	// 2. Without the External ID the role must refuse us (403 is the healthy answer).
	s2 := validatorv1.ValidationStep_VALIDATION_STEP_ASSUME_ROLE_WITHOUT_EXTERNAL_ID
	err = v.clients.AssumeWithoutExternalID(ctx, inter, set.GetIamRoleArn(), session)
	v.assumed(ctx, err)
	switch {
	case err == nil:
		res.Steps = append(res.Steps, &validatorv1.StepResult{Step: s2, Ok: false, Detail: "assumed without External ID"})
		return failed(s2, validatorv1.ValidationCode_VALIDATION_CODE_EXTERNAL_ID_NOT_REQUIRED, MsgExternalID)
	case forbidden(err):
		res.Steps = append(res.Steps, &validatorv1.StepResult{Step: s2, Ok: true, Detail: awsclient.ErrorCode(err)})
	default:
		step(s2, err)
		return failed(s2, validatorv1.ValidationCode_VALIDATION_CODE_ROLE_UNKNOWN_ERROR, MsgFollowSetup)
	}

	// 3. With the External ID.
	s3step := validatorv1.ValidationStep_VALIDATION_STEP_ASSUME_ROLE_WITH_EXTERNAL_ID
	creds, err := v.clients.AssumeCustomerRole(ctx, inter, set.GetIamRoleArn(), externalID, session)
	v.assumed(ctx, err)
	if !step(s3step, err) {
		if forbidden(err) {
			return failed(s3step, validatorv1.ValidationCode_VALIDATION_CODE_ROLE_ACCESS_DENIED, MsgExternalID)
		}
		return failed(s3step, validatorv1.ValidationCode_VALIDATION_CODE_ROLE_UNKNOWN_ERROR, MsgFollowSetup)
	}

	// 4. The dummy object.
	s4 := validatorv1.ValidationStep_VALIDATION_STEP_PUT_DUMMY_OBJECT
	cli := v.clients.S3(staticCreds(creds), set.GetRegion())
	_, err = cli.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(bucket),
		Key:         aws.String(layout.DummyObjectKey(prefix)),
		Body:        strings.NewReader(dummyBody),
		ContentType: aws.String("text/plain; charset=utf-8"),
		ACL:         types.ObjectCannedACLBucketOwnerFullControl,
	})
	if !step(s4, err) {
		switch code := awsclient.ErrorCode(err); {
		case code == "NoSuchBucket":
			return failed(s4, validatorv1.ValidationCode_VALIDATION_CODE_BUCKET_NOT_FOUND,
				fmt.Sprintf("The bucket %s does not exist. Please check the Bucket Name setting.", bucket))
		case realRegion(err) != "" && realRegion(err) != set.GetRegion():
			return failed(s4, validatorv1.ValidationCode_VALIDATION_CODE_WRONG_REGION,
				fmt.Sprintf("The bucket %s is in region %s, not %s. Please correct the AWS Region setting.", bucket, realRegion(err), set.GetRegion()))
		case forbidden(err):
			return failed(s4, validatorv1.ValidationCode_VALIDATION_CODE_PUT_OBJECT_DENIED, MsgAddPutObject)
		}
		return failed(s4, validatorv1.ValidationCode_VALIDATION_CODE_PUT_OBJECT_UNKNOWN_ERROR, MsgFollowSetup)
	}
	res.Ok, res.Code, res.Message = true, validatorv1.ValidationCode_VALIDATION_CODE_OK, MsgOK
	return res
}

func forbidden(err error) bool {
	return awsclient.IsForbidden(err) || awsclient.ErrorCode(err) == "AccessDenied"
}

// realRegion is the bucket's region when S3 says the request went to the wrong one.
func realRegion(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if r := re.Response.Header.Get("X-Amz-Bucket-Region"); r != "" {
			return r
		}
	}
	if msg := err.Error(); strings.Contains(msg, "expecting '") {
		_, after, _ := strings.Cut(msg, "expecting '")
		r, _, _ := strings.Cut(after, "'")
		return r
	}
	return ""
}

// detail names what went wrong in a step without any secret: the AWS error code, or the kind of failure.
func detail(err error) string {
	if err == nil {
		return ""
	}
	if c := awsclient.ErrorCode(err); c != "" {
		return c
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "network error"
	}
	return "error"
}

func sessionName(destinationID string) string {
	var b strings.Builder
	b.WriteString("s3dest-validate-")
	for _, r := range destinationID {
		if b.Len() >= maxSessionNameLen {
			break
		}
		if r < 128 && (r == '_' || r == '+' || r == '=' || r == ',' || r == '.' || r == '@' || r == '-' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Service is the validator binary's service: ValidatorService on its own gRPC port.
type Service struct {
	cfg Config
	p   *platform.Process
	v   *Validator
	ln  net.Listener
	srv *grpc.Server
}

// Addr is the bound gRPC address (after Start).
func (s *Service) Addr() string { return s.ln.Addr().String() }

// New validates cfg; it does no I/O.
func New(cfg Config, p *platform.Process) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, p: p}, nil
}

// Name implements service.Service.
func (s *Service) Name() string { return "validator" }

// Start follows the workspace in the config store and binds the gRPC port.
func (s *Service) Start(ctx context.Context) error {
	token := s.cfg.Token
	clients, err := awsclient.New(ctx, s.cfg.Config, s.p.Telemetry.Tracer)
	if err != nil {
		return err
	}
	store, err := configstore.Open(ctx, s.p.JS, s.cfg.Replicas, s.p.Log)
	if err != nil {
		return err
	}
	// The view lives as long as the process, so validations in flight while it stops still see it.
	view, err := store.Watch(context.WithoutCancel(ctx), s.p.Log)
	if err != nil {
		return err
	}
	m, err := platform.NewMetrics(s.p.Telemetry.Meter)
	if err != nil {
		return err
	}
	s.v = NewValidator(clients, view, s.p.Log, s.cfg.Timeout, m)
	if s.srv, err = grpcserver.New(grpcserver.Config{
		Tokens:       map[string]string{validatorv1.ValidatorService_ServiceDesc.ServiceName: token},
		MaxRecvBytes: MaxRequestBytes,
		Telemetry:    s.p.Telemetry,
	}); err != nil {
		return err
	}
	s.v.Register(s.srv)
	if s.ln, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.GRPCAddr, err)
	}
	return nil
}

// Run serves until ctx ends, then finishes the validations in flight.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.srv.GracefulStop()
	return nil
}
