package copier

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/s3dest/s3dest/pkg/awsclient"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// The user-facing messages of the reference's troubleshooting table (the validator shows the same ones).
const (
	MsgTryAgain     = "Unknown Error. Please try again. If the problem persists, please contact Segment support."
	MsgExternalID   = "Access Denied. Please configure External ID in the AWS IAM Console."
	MsgFollowSetup  = "Unknown Error. Please follow instructions to set up the AWS S3 destination. If the problem persists, please contact Segment support."
	MsgAddPutObject = "Access Denied. Please add PutObject permissions to the IAM role in the AWS IAM Console."
)

// errIntermediate marks a failure to assume our own intermediate role: our setup, not the customer's.
var errIntermediate = errors.New("assume our intermediate role")

type step int

const (
	stepAssume step = iota // assuming the customer's role
	stepPut                // writing into the customer's bucket
)

// failure is a delivery error with what the customer is told. A failing one is something only the
// customer can fix (403, a missing bucket, a wrong region): the destination's files then wait in staging
// and are retried on the slow schedule (Config.FailingRetry) instead of the usual backoff.
//
// A permanent one can never succeed however often it is tried (S3 refusing the key or the bucket name
// itself): the file is dead-lettered for that destination with the reason instead of retried forever.
type failure struct {
	err       error
	message   string
	failing   bool
	permanent bool
}

// neverSucceeds are S3 error codes of a write that no retry, and no change of role or bucket policy, can
// make succeed for this file and these settings.
var neverSucceeds = map[string]bool{
	"KeyTooLongError":         true, // the key (prefix + layout) is over 1024 bytes
	"InvalidBucketName":       true,
	"EntityTooLarge":          true,
	"MetadataTooLarge":        true,
	"InvalidObjectName":       true,
	"XMinioInvalidObjectName": true,
}

// isPermanent reports an error no retry can fix.
func isPermanent(err error) bool {
	var f *failure
	return errors.As(err, &f) && f.permanent
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// UserMessage is what the admin status API shows for err: the reference's message, with the concrete
// cause where the reference has none (a missing bucket, a wrong region).
func UserMessage(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.message
	}
	return MsgTryAgain
}

// isFailing reports an error only the customer can fix.
func isFailing(err error) bool {
	var f *failure
	return errors.As(err, &f) && f.failing
}

// classify names what went wrong at step for destination d.
func classify(err error, at step, d *configv1.Destination) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	bucket, _, _ := layout.SplitBucket(d.GetSettings().GetS3Bucket())
	status, code := awsclient.HTTPStatus(err), awsclient.ErrorCode(err)
	if real := awsclient.BucketRegion(err); real != "" && real != d.GetSettings().GetRegion() {
		return &failure{err, fmt.Sprintf("Wrong region. The bucket %q is in %s, not in %s: please set the AWS Region setting to %s.",
			bucket, real, d.GetSettings().GetRegion(), real), true, false}
	}
	switch {
	case errors.Is(err, errUnconvertible):
		return &failure{err, MsgTryAgain + " The file could not be converted to Parquet: " + err.Error(), false, true}
	case errors.Is(err, errIntermediate):
		return &failure{err, MsgTryAgain, false, false}
	case at == stepAssume && (status == http.StatusForbidden || code == "AccessDenied"):
		return &failure{err, MsgExternalID, true, false}
	case at == stepAssume && status >= 400 && status < 500 && status != http.StatusTooManyRequests:
		return &failure{err, MsgFollowSetup, true, false}
	case at == stepPut && awsclient.IsExpiredCredentials(err):
		// Cached credentials the store no longer accepts: dropped by the caller, assumed again on retry.
		return &failure{err, MsgTryAgain, false, false}
	case at == stepPut && neverSucceeds[code]:
		return &failure{err, MsgFollowSetup + fmt.Sprintf(" S3 refused the file for good (%s): check the Bucket Name setting.", code), false, true}
	case at == stepPut && code == "NoSuchBucket":
		return &failure{err, MsgFollowSetup + fmt.Sprintf(" The bucket %q does not exist: check the Bucket Name setting.", bucket), true, false}
	case at == stepPut && (status == http.StatusForbidden || code == "AccessDenied"):
		return &failure{err, MsgAddPutObject, true, false}
	}
	return &failure{err, MsgTryAgain, false, false}
}
