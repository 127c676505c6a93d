// Package layout is the contract of where s3dest writes in a customer's bucket (DESIGN.md §2) and what
// the destination settings mean: `mybucket/path/prefix` is bucket `mybucket` with every key under
// `path/prefix/`, and files land at `{prefix/}segment-logs/{sourceId}/{receivedDayMs}/{file}.gz` (`{file}.parquet` for a destination whose
// format is parquet).
package layout

import (
	"errors"
	"fmt"
	"strings"
)

// Destination kinds, by their Segment catalog metadata ID and slug.
const (
	AWSS3MetadataID    = "60be92c8dabdd561bf6c9130"
	AWSS3Slug          = "aws-s3"
	AmazonS3MetadataID = "54f418c3db31d978f14aa925"
	AmazonS3Slug       = "amazon-s3"
)

// Root is the folder every file and the validator's dummy object live under.
const Root = "segment-logs"

// ErrURI is returned for a bucket setting that is a URI or ARN instead of a name.
var ErrURI = errors.New("enter the bucket's name, not its URI")

// SplitBucket splits the bucket setting into the bucket name and the key prefix ("" or ending in "/").
func SplitBucket(setting string) (bucket, prefix string, err error) {
	s := strings.TrimSpace(setting)
	lower := strings.ToLower(s)
	for _, scheme := range []string{"s3://", "s3a://", "s3n://", "arn:", "http://", "https://"} {
		if strings.HasPrefix(lower, scheme) {
			return "", "", ErrURI
		}
	}
	bucket, prefix, _ = strings.Cut(s, "/")
	if bucket == "" {
		return "", "", errors.New("the bucket name is empty")
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if strings.Contains(prefix, "//") {
			return "", "", fmt.Errorf("the path prefix %q has an empty folder name", prefix)
		}
		prefix += "/"
	}
	return bucket, prefix, nil
}

// ObjectKey is where a file of a source and received day lands.
func ObjectKey(prefix, sourceID string, receivedDayMs int64, fileName string) string {
	return fmt.Sprintf("%s%s/%s/%d/%s", prefix, Root, sourceID, receivedDayMs, fileName)
}

// File formats of a destination (settings.format). The batcher writes every file as gzipped NDJSON,
// `{file}.gz`, shared by all the destinations of its source; the copier converts it for a Parquet
// destination into `{file}.parquet` under the same folder.
const (
	FormatJSON    = "json"
	FormatParquet = "parquet"
)

// CheckFormat applies the rule of settings.format: empty (json), json or parquet.
func CheckFormat(format string) error {
	switch format {
	case "", FormatJSON, FormatParquet:
		return nil
	}
	return fmt.Errorf("must be %q (gzipped NDJSON, the default) or %q, got %q", FormatJSON, FormatParquet, format)
}

// FileName is the name a destination of the given format gives a batch's file (`{file}.gz`): the same
// name for json, `{file}.parquet` for parquet.
func FileName(gzName, format string) string {
	if format != FormatParquet {
		return gzName
	}
	return strings.TrimSuffix(gzName, ".gz") + ".parquet"
}

// DummyObjectKey is the object the validator uploads to test the role.
func DummyObjectKey(prefix string) string { return prefix + Root + "/dummy-object.txt" }
