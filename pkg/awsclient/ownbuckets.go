package awsclient

import (
	"fmt"
	"slices"
	"strings"
)

// OwnBuckets are the buckets s3dest's own principal uses: the staging bucket and any the operator lists
// (--own-buckets). None of them may be a destination's bucket, of either kind: an AWS S3 destination's
// role could be one we trust, and the legacy Amazon S3 destination writes as our own principal, which
// can reach every one of them.
type OwnBuckets map[string]bool

// ParseOwnBuckets reads the staging bucket and a comma-separated list of more bucket names. The error
// names the setting: own-buckets.
func ParseOwnBuckets(staging, list string) (OwnBuckets, error) {
	own := OwnBuckets{}
	if staging != "" {
		own[staging] = true
	}
	for _, b := range strings.Split(list, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if strings.ContainsAny(b, "/: ") {
			return nil, fmt.Errorf("own-buckets: %q is not a bucket name (a comma-separated list of names, no prefix or URI)", b)
		}
		own[b] = true
	}
	return own, nil
}

// Refuse returns an error if bucket is one of ours.
func (o OwnBuckets) Refuse(bucket string) error {
	if !o[bucket] {
		return nil
	}
	return fmt.Errorf("%q is a bucket s3dest itself uses (its staging bucket or one listed in --own-buckets): a destination may not write there; enter a bucket of your own", bucket)
}

// Names lists the buckets, sorted.
func (o OwnBuckets) Names() []string {
	var out []string
	for b := range o {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}
