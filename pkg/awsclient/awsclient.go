// Package awsclient builds the AWS clients s3dest uses and walks the role chain of DESIGN.md §4: our
// principal (default credential chain, or static keys) assumes our intermediate role, which assumes the
// customer's role with the workspace ID as External ID. Endpoints can point at the local STS and S3 of
// `s3dest dev` or at MinIO behind the STS gate in tests.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"go.opentelemetry.io/contrib/instrumentation/github.com/aws/aws-sdk-go-v2/otelaws"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Config says where AWS is and who we are.
type Config struct {
	// Region is our own region (STS and the staging bucket).
	Region string `flag:"aws-region" env:"S3DEST_AWS_REGION" default:"us-east-1" help:"our AWS region (STS, staging bucket)"`
	// STSEndpoint and S3Endpoint replace AWS's endpoints when set (local STS, MinIO).
	STSEndpoint string `flag:"sts-endpoint" env:"S3DEST_STS_ENDPOINT" help:"STS endpoint URL; empty for AWS"`
	S3Endpoint  string `flag:"s3-endpoint" env:"S3DEST_S3_ENDPOINT" help:"S3 endpoint URL; empty for AWS"`
	// AccessKeyID and SecretAccessKey are static keys of our principal; empty uses the default chain
	// (environment, web identity, instance role).
	AccessKeyID     string `flag:"aws-access-key-id" env:"S3DEST_AWS_ACCESS_KEY_ID" help:"static access key of our principal; empty for the default chain"`
	SecretAccessKey string `flag:"aws-secret-access-key" env:"S3DEST_AWS_SECRET_ACCESS_KEY" secret:"true" help:"static secret key of our principal"`
	// IntermediateRoleARN is our own role that customers trust; empty assumes customer roles directly.
	IntermediateRoleARN string `flag:"intermediate-role-arn" env:"S3DEST_INTERMEDIATE_ROLE_ARN" help:"our role that customer roles trust"`
	// PathStyle addresses buckets in the path, as local servers need.
	PathStyle bool `flag:"s3-path-style" env:"S3DEST_S3_PATH_STYLE" help:"address buckets by path (local S3, MinIO)"`
	// ResponseTimeout bounds the wait for a response's headers once a request is sent; a request that
	// times out is retried like a 5xx. There is no whole-request timeout: a large file streams for as long
	// as it streams.
	ResponseTimeout time.Duration `flag:"aws-response-timeout" env:"S3DEST_AWS_RESPONSE_TIMEOUT" default:"30s" help:"retry an AWS request whose response has not begun after this"`
}

// MaxAttempts is how many times one S3 request is tried (the first try and its retries) before the error
// goes back to the caller, whose message is then redelivered with its own backoff.
const MaxAttempts = 5

// Validate checks the rules of each field.
func (c Config) Validate() error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, errors.New("aws-region: must be set, such as us-east-1"))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("aws-access-key-id and aws-secret-access-key: set both or neither"))
	}
	if c.ResponseTimeout < 0 {
		errs = append(errs, fmt.Errorf("aws-response-timeout: must not be negative, got %s", c.ResponseTimeout))
	}
	if c.IntermediateRoleARN != "" && !RoleARN.MatchString(c.IntermediateRoleARN) {
		errs = append(errs, fmt.Errorf("intermediate-role-arn: must look like arn:aws:iam::123456789012:role/name, got %q", c.IntermediateRoleARN))
	}
	return errors.Join(errs...)
}

// RoleARN is the form of an IAM role ARN: arn:{aws|aws-cn|aws-us-gov}:iam::<12 digits>:role/<path/name>.
var RoleARN = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)

// Clients hands out AWS clients for one Config.
type Clients struct {
	cfg  Config
	http *awshttp.BuildableClient
	base aws.CredentialsProvider
	// sts is the client of our principal.
	sts *sts.Client
	// tp traces every AWS call.
	tp trace.TracerProvider
}

// New resolves our principal's credentials (without calling AWS). Every AWS call is traced with tp
// (nil uses the global provider).
func New(ctx context.Context, c Config, tp trace.TracerProvider) (*Clients, error) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = 30 * time.Second
	}
	httpc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = c.ResponseTimeout
			t.TLSHandshakeTimeout = 10 * time.Second
		})
	var base aws.CredentialsProvider
	if c.AccessKeyID != "" {
		base = credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")
	} else {
		ac, err := config.LoadDefaultConfig(ctx, config.WithRegion(c.Region), config.WithHTTPClient(httpc))
		if err != nil {
			return nil, fmt.Errorf("load default AWS credentials: %w", err)
		}
		base = ac.Credentials
	}
	cl := &Clients{cfg: c, http: httpc, base: aws.NewCredentialsCache(base), tp: tp}
	cl.sts = cl.STS(cl.base)
	return cl, nil
}

// Base returns our principal's credentials.
func (cl *Clients) Base() aws.CredentialsProvider { return cl.base }

// STS returns an STS client acting with creds.
func (cl *Clients) STS(creds aws.CredentialsProvider) *sts.Client {
	o := sts.Options{Region: cl.cfg.Region, Credentials: creds, HTTPClient: cl.http, RetryMaxAttempts: 2}
	if cl.cfg.STSEndpoint != "" {
		o.BaseEndpoint = aws.String(cl.cfg.STSEndpoint)
	}
	otelaws.AppendMiddlewares(&o.APIOptions, otelaws.WithTracerProvider(cl.tp))
	return sts.New(o)
}

// S3 returns an S3 client acting with creds in region ("" for our own).
func (cl *Clients) S3(creds aws.CredentialsProvider, region string) *s3.Client {
	if region == "" {
		region = cl.cfg.Region
	}
	o := s3.Options{
		Region:       region,
		Credentials:  creds,
		HTTPClient:   cl.http,
		UsePathStyle: cl.cfg.PathStyle,
		// Only what the operation requires: MinIO and older stores reject some default checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cl.cfg.S3Endpoint != "" {
		o.BaseEndpoint = aws.String(cl.cfg.S3Endpoint)
	}
	// SlowDown and other throttling, 5xx, timeouts and broken connections are retried with exponential
	// backoff and full jitter (the SDK's standard retryer); its client-side retry quota is off because
	// each destination already has its own rate limit.
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = MaxAttempts
		so.MaxBackoff = 20 * time.Second
		so.RateLimiter = ratelimit.None
	})
	otelaws.AppendMiddlewares(&o.APIOptions, otelaws.WithTracerProvider(cl.tp))
	return s3.New(o)
}

// Intermediate assumes our intermediate role, or returns our principal when none is configured.
func (cl *Clients) Intermediate(ctx context.Context, session string) (aws.CredentialsProvider, error) {
	if cl.cfg.IntermediateRoleARN == "" {
		return cl.base, nil
	}
	c, err := assume(ctx, cl.sts, cl.cfg.IntermediateRoleARN, nil, session, time.Hour)
	if err != nil {
		return nil, fmt.Errorf("assume intermediate role %s: %w", cl.cfg.IntermediateRoleARN, err)
	}
	return credentials.StaticCredentialsProvider{Value: c}, nil
}

// AssumeCustomerRole walks the chain to the customer's role, always with ExternalId = workspaceID: there
// is no way to assume a customer role without it. Chained sessions last at most one hour.
func (cl *Clients) AssumeCustomerRole(ctx context.Context, via aws.CredentialsProvider, roleARN, workspaceID, session string) (aws.Credentials, error) {
	if workspaceID == "" {
		return aws.Credentials{}, errors.New("assume customer role: the workspace ID (External ID) is empty")
	}
	return assume(ctx, cl.STS(via), roleARN, aws.String(workspaceID), session, time.Hour)
}

// AssumeWithoutExternalID is the validator's probe (DESIGN.md §6 step 2): it must FAIL for a correctly
// set up role. Nothing but the validator may call it, and its credentials are never used.
func (cl *Clients) AssumeWithoutExternalID(ctx context.Context, via aws.CredentialsProvider, roleARN, session string) error {
	_, err := assume(ctx, cl.STS(via), roleARN, nil, session, 15*time.Minute)
	return err
}

func assume(ctx context.Context, c *sts.Client, roleARN string, externalID *string, session string, d time.Duration) (aws.Credentials, error) {
	out, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(roleARN),
		RoleSessionName: aws.String(session),
		ExternalId:      externalID,
		DurationSeconds: aws.Int32(int32(d / time.Second)),
	})
	if err != nil {
		return aws.Credentials{}, err
	}
	return fromSTS(out.Credentials), nil
}

func fromSTS(c *ststypes.Credentials) aws.Credentials {
	if c == nil {
		return aws.Credentials{}
	}
	return aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		CanExpire:       c.Expiration != nil,
		Expires:         aws.ToTime(c.Expiration),
		Source:          "AssumeRole",
	}
}

// ErrorCode returns the AWS error code of err ("AccessDenied", "NoSuchBucket", ...), or "".
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// HTTPStatus returns the HTTP status of an AWS error, or 0.
func HTTPStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// IsForbidden reports a 403.
func IsForbidden(err error) bool { return HTTPStatus(err) == http.StatusForbidden }

// AssumeOutcome is the outcome of an AssumeRole call as s3dest_sts_assume_role_total counts it:
// "success", "denied" (403 or AccessDenied: the trust policy or the External ID refused us), or "error".
func AssumeOutcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case IsForbidden(err) || ErrorCode(err) == "AccessDenied":
		return "denied"
	}
	return "error"
}

// IsExpiredCredentials reports an error that says the credentials we signed with are no longer valid
// (expired, revoked, or unknown to the store): the cure is new credentials, not a new setting.
func IsExpiredCredentials(err error) bool {
	switch ErrorCode(err) {
	case "ExpiredToken", "ExpiredTokenException", "InvalidToken", "InvalidAccessKeyId", "TokenRefreshRequired", "InvalidTokenId":
		return true
	}
	return false
}

var expectingRegion = regexp.MustCompile(`expecting '([a-z0-9-]+)'`)

// BucketRegion returns the bucket's real region when err says the request went to the wrong one: S3 sends
// it in the x-amz-bucket-region header (301 PermanentRedirect, 400 AuthorizationHeaderMalformed) and
// names it in the message ("the region 'x' is wrong; expecting 'y'"). It returns "" otherwise.
func BucketRegion(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if r := re.Response.Header.Get("X-Amz-Bucket-Region"); r != "" {
			switch ErrorCode(err) {
			case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
				return r
			}
			if re.HTTPStatusCode() == http.StatusMovedPermanently {
				return r
			}
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "AuthorizationHeaderMalformed" {
		if m := expectingRegion.FindStringSubmatch(ae.ErrorMessage()); m != nil {
			return m[1]
		}
	}
	return ""
}
