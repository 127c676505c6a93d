package admin

import (
	"context"
	"strings"
	"testing"

	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// Our staging bucket and every bucket the operator lists as ours are refused as the bucket of a
// destination of either kind, on create and on PATCH, with a 422 naming settings.s3Bucket and the rule.
func TestOurOwnBucketsAreRefusedAsTheBucketOfADestinationOfEitherKind(t *testing.T) {
	a := newAPI(t, WithLegacyS3(true), WithOwnBuckets("s3dest-staging", "our-archive"))
	src := a.ok("POST", "/sources", `{"slug":"own"}`)["source"].(map[string]any)["id"].(string)
	const role = "arn:aws:iam::123456789012:role/r"
	create := func(metadataID, bucket string) string {
		return `{"sourceId":"` + src + `","metadataId":"` + metadataID + `","settings":{"region":"us-east-1","s3Bucket":"` + bucket + `","iamRoleArn":"` + role + `"}}`
	}
	refused := func(t *testing.T, method, path, body, bucket string) {
		t.Helper()
		code, out := a.call(method, path, body, "Bearer "+token)
		_, msg := errorOf(t, out)
		if code != 422 || !strings.Contains(msg, "settings.s3Bucket") || !strings.Contains(msg, `"`+bucket+`"`) || !strings.Contains(msg, "s3dest") {
			t.Fatalf("%s %s with bucket %s = %d %q, want 422 naming settings.s3Bucket, the bucket and the rule", method, path, bucket, code, msg)
		}
	}
	for _, c := range []struct{ kind, metadataID, bucket, owned string }{
		{"AWS S3", "60be92c8dabdd561bf6c9130", "s3dest-staging", "s3dest-staging"},
		{"AWS S3", "60be92c8dabdd561bf6c9130", "s3dest-staging/under/a/prefix", "s3dest-staging"},
		{"AWS S3", "60be92c8dabdd561bf6c9130", "our-archive", "our-archive"},
		{"Amazon S3", "54f418c3db31d978f14aa925", "s3dest-staging", "s3dest-staging"},
		{"Amazon S3", "54f418c3db31d978f14aa925", "our-archive/x", "our-archive"},
	} {
		t.Run(c.kind+" in "+c.bucket, func(t *testing.T) { refused(t, "POST", "/destinations", create(c.metadataID, c.bucket), c.owned) })
	}

	aws := a.ok("POST", "/destinations", create("60be92c8dabdd561bf6c9130", "customer-bucket"))["destination"].(map[string]any)["id"].(string)
	legacy := a.ok("POST", "/destinations", create("54f418c3db31d978f14aa925", "customer-bucket"))["destination"].(map[string]any)["id"].(string)
	for _, id := range []string{aws, legacy} {
		refused(t, "PATCH", "/destinations/"+id, `{"settings":{"s3Bucket":"s3dest-staging/p"}}`, "s3dest-staging")
		refused(t, "PATCH", "/destinations/"+id, `{"settings":{"s3Bucket":"our-archive"}}`, "our-archive")
		got := a.ok("GET", "/destinations/"+id, "")["destination"].(map[string]any)["settings"].(map[string]any)
		if got["s3Bucket"] != "customer-bucket" {
			t.Fatalf("a refused PATCH changed the bucket to %v", got["s3Bucket"])
		}
	}
}

// The legacy Amazon S3 destination writes as our own principal: it is off unless the operator turns it
// on (--enable-legacy-s3). While it is off, one cannot be created or enabled, and one that exists can
// still be disabled (the last step of the migration to AWS S3).
func TestTheLegacyAmazonS3DestinationIsRefusedUnlessTheOperatorEnablesIt(t *testing.T) {
	a, srv := newAPIWith(t, nil)
	src := a.ok("POST", "/sources", `{"slug":"legacy"}`)["source"].(map[string]any)["id"].(string)
	wantOff := func(t *testing.T, what string, code int, out map[string]any) {
		t.Helper()
		if _, msg := errorOf(t, out); code != 422 || !strings.Contains(msg, "metadataId") || !strings.Contains(msg, "--enable-legacy-s3") {
			t.Fatalf("%s while the kind is off = %d %q, want 422 naming metadataId and --enable-legacy-s3", what, code, msg)
		}
	}
	code, out := a.call("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"54f418c3db31d978f14aa925","settings":{"region":"us-east-1","s3Bucket":"customer-bucket"}}`, "Bearer "+token)
	wantOff(t, "creating an Amazon S3 destination", code, out)

	// One stored while the kind was on.
	old := &configv1.Destination{Id: "legacy1", Name: "Amazon S3", Enabled: true, SourceId: src,
		Metadata: &configv1.DestinationMetadata{Id: layout.AmazonS3MetadataID, Slug: layout.AmazonS3Slug, Name: "Amazon S3"},
		Settings: &configv1.DestinationSettings{Region: "us-east-1", S3Bucket: "customer-bucket"}}
	if err := srv.store.PutDestination(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if got := a.ok("PATCH", "/destinations/legacy1", `{"enabled":false}`)["destination"].(map[string]any); got["enabled"] == true {
		t.Fatal("disabling the legacy destination left it enabled")
	}
	code, out = a.call("PATCH", "/destinations/legacy1", `{"enabled":true}`, "Bearer "+token)
	wantOff(t, "enabling an Amazon S3 destination", code, out)

	// The AWS S3 kind is unaffected.
	a.ok("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"us-east-1","s3Bucket":"customer-bucket","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)
}
