package admin

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/s3dest/s3dest/pkg/awsclient"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// regions are the AWS regions a bucket can be in (commercial, China, GovCloud).
var regions = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range strings.Fields(`us-east-1 us-east-2 us-west-1 us-west-2 af-south-1 ap-east-1 ap-east-2
		ap-south-1 ap-south-2 ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5
		ap-southeast-6 ap-southeast-7 ap-northeast-1 ap-northeast-2 ap-northeast-3 ca-central-1 ca-west-1
		eu-central-1 eu-central-2 eu-west-1 eu-west-2 eu-west-3 eu-south-1 eu-south-2 eu-north-1
		il-central-1 me-south-1 me-central-1 mx-central-1 sa-east-1 cn-north-1 cn-northwest-1
		us-gov-east-1 us-gov-west-1`) {
		m[r] = true
	}
	return m
}()

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// checkBucketName applies S3's bucket naming rules.
func checkBucketName(b string) error {
	switch {
	case !bucketRE.MatchString(b):
		return fmt.Errorf("%q is not a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit", b)
	case strings.Contains(b, ".."):
		return fmt.Errorf("%q is not a bucket name: two dots in a row", b)
	case net.ParseIP(b) != nil:
		return fmt.Errorf("%q is not a bucket name: it looks like an IP address", b)
	case strings.HasPrefix(b, "xn--") || strings.HasPrefix(b, "sthree-"):
		return fmt.Errorf("%q is not a bucket name: reserved prefix", b)
	case strings.HasSuffix(b, "-s3alias") || strings.HasSuffix(b, "--ol-s3"):
		return fmt.Errorf("%q is not a bucket name: reserved suffix", b)
	}
	return nil
}

// checkSettings applies the rules of each setting; errors name the setting as the API spells it. own
// are the buckets no destination may name.
func checkSettings(s *configv1.DestinationSettings, needsRole bool, own awsclient.OwnBuckets) error {
	var errs []error
	if !regions[s.GetRegion()] {
		errs = append(errs, fmt.Errorf("settings.region: %q is not an AWS region name, such as us-west-2", s.GetRegion()))
	}
	bucket, _, err := layout.SplitBucket(s.GetS3Bucket())
	switch {
	case errors.Is(err, layout.ErrURI):
		errs = append(errs, fmt.Errorf("settings.s3Bucket: %w", err))
	case err != nil:
		errs = append(errs, fmt.Errorf("settings.s3Bucket: %w", err))
	default:
		if err := checkBucketName(bucket); err != nil {
			errs = append(errs, fmt.Errorf("settings.s3Bucket: %w", err))
		} else if err := own.Refuse(bucket); err != nil {
			errs = append(errs, fmt.Errorf("settings.s3Bucket: %w", err))
		}
	}
	if needsRole || s.GetIamRoleArn() != "" {
		if !awsclient.RoleARN.MatchString(s.GetIamRoleArn()) {
			errs = append(errs, fmt.Errorf("settings.iamRoleArn: must look like arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME, got %q", s.GetIamRoleArn()))
		}
	}
	if err := layout.CheckFormat(s.GetFormat()); err != nil {
		errs = append(errs, fmt.Errorf("settings.format: %w", err))
	}
	return errors.Join(errs...)
}

// errLegacyOff is the answer to creating or enabling an Amazon S3 (legacy) destination while the kind is
// off: it writes as our own principal, which the operator must choose to allow.
func errLegacyOff() error {
	return invalid("metadataId: the Amazon S3 destination (%s) writes as s3dest's own principal and is off on this server; "+
		"use AWS S3 (%s) with an IAM role, or ask the operator to start admin and copier with --enable-legacy-s3 (S3DEST_ENABLE_LEGACY_S3=true)",
		layout.AmazonS3MetadataID, layout.AWSS3MetadataID)
}
