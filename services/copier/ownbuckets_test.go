package copier

import (
	"strings"
	"testing"
	"time"

	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// legacyDestination stores an enabled Amazon S3 (legacy) destination of source: no role, it writes as us.
func (e *env) legacyDestination(t *testing.T, id, source, bucketSetting string) {
	t.Helper()
	d := e.destination(t, id, source, bucketSetting, "", "us-east-1")
	d.Metadata = &configv1.DestinationMetadata{Id: layout.AmazonS3MetadataID, Slug: layout.AmazonS3Slug}
	e.putDestination(t, d)
}

// Defense in depth behind admin's validation: a destination stored with one of our own buckets (the
// staging bucket, or one listed in --own-buckets) receives nothing there, of either kind, and its status
// says why; a legacy destination elsewhere still receives its files.
func TestTheCopierWritesIntoNoneOfOurOwnBucketsWhateverTheDestinationSays(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "our-archive")
	e.g.CreateBucket(t, "customer-legacy")
	const role = "arn:aws:iam::111111111111:role/archive"
	e.customerRole(t, role, "our-archive", "") // a role that could write there: the copier still must not
	e.legacyDestination(t, "dest-stage", "src-stage", testStaging+"/stolen")
	e.destination(t, "dest-archive", "src-archive", "our-archive", role, "us-east-1")
	e.legacyDestination(t, "dest-legacy", "src-legacy", "customer-legacy")
	cfg := e.config()
	cfg.OwnBuckets, cfg.EnableLegacyS3 = "our-archive", true
	e.start(t, cfg)

	e.stage(t, "src-stage", day1, "s1", `{"messageId":"s-1"}`)
	e.stage(t, "src-archive", day1, "a1", `{"messageId":"a-1"}`)
	e.stage(t, "src-legacy", day1, "l1", `{"messageId":"l-1"}`)
	e.waitKeys(t, "customer-legacy", 1)
	for dest, bucket := range map[string]string{"dest-stage": testStaging, "dest-archive": "our-archive"} {
		testenv.Eventually(t, 30*time.Second, dest+"'s status to name its bucket as ours", func() bool {
			msg := e.lastError(t, dest, day1)
			return strings.Contains(msg, `"`+bucket+`"`) && strings.Contains(msg, "Bucket Name")
		})
	}
	for _, k := range e.keys(t, testStaging) {
		if strings.HasPrefix(k, "stolen/") {
			t.Errorf("the legacy destination wrote %s into our staging bucket", k)
		}
	}
	if keys := e.keys(t, "our-archive"); len(keys) != 0 {
		t.Errorf("our-archive holds %v", keys)
	}
}

// The legacy Amazon S3 destination writes as our own principal: unless the operator enables it
// (--enable-legacy-s3), the copier writes nothing for it and its status says so.
func TestTheLegacyKindWritesNothingUnlessTheOperatorEnablesIt(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "customer-legacy")
	e.legacyDestination(t, "dest-legacy", "src-legacy", "customer-legacy")
	e.start(t, e.config())
	e.stage(t, "src-legacy", day1, "l1", `{"messageId":"l-1"}`)
	testenv.Eventually(t, 30*time.Second, "the status to say the legacy kind is off", func() bool {
		return strings.Contains(e.lastError(t, "dest-legacy", day1), "--enable-legacy-s3")
	})
	if keys := e.keys(t, "customer-legacy"); len(keys) != 0 {
		t.Errorf("customer-legacy holds %v although the legacy kind is off", keys)
	}
}
