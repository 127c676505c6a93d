package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/configstore"
	"github.com/s3dest/s3dest/pkg/testenv"
)

func TestSourcesCanBeRenamedDisabledAndDeletedOnceTheyHaveNoDestinations(t *testing.T) {
	a := newAPI(t)
	id := a.ok("POST", "/sources", `{"slug":"web","name":"Web"}`)["source"].(map[string]any)["id"].(string)

	src := a.ok("PATCH", "/sources/"+id, `{"name":"Website","slug":"website","enabled":false}`)["source"].(map[string]any)
	if src["name"] != "Website" || src["slug"] != "website" || src["enabled"] != false {
		t.Fatalf("PATCH /sources = %v", src)
	}
	if got := a.ok("GET", "/sources/"+id, "")["source"].(map[string]any); got["enabled"] != false || got["name"] != "Website" {
		t.Fatalf("GET after PATCH = %v", got)
	}
	for _, c := range []struct{ body, want string }{
		{`{"slug":"Not A Slug"}`, "slug:"},
		{`{"name":""}`, "name: must not be empty"},
	} {
		code, out := a.call("PATCH", "/sources/"+id, c.body, "Bearer "+token)
		if _, msg := errorOf(t, out); code != 422 || !strings.Contains(msg, c.want) {
			t.Errorf("PATCH %s = %d %q, want 422 naming %q", c.body, code, msg, c.want)
		}
	}

	dest := a.ok("POST", "/destinations", `{"sourceId":"`+id+`","metadataId":"60be92c8dabdd561bf6c9130",
		"settings":{"region":"us-east-1","s3Bucket":"b1b","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)["destination"].(map[string]any)
	code, out := a.call("DELETE", "/sources/"+id, "", "Bearer "+token)
	if _, msg := errorOf(t, out); code != 400 || !strings.Contains(msg, dest["id"].(string)) {
		t.Fatalf("DELETE a source with a destination = %d %q, want 400 naming the destination", code, msg)
	}
	a.ok("DELETE", "/destinations/"+dest["id"].(string), "")
	if st := a.ok("DELETE", "/sources/"+id, "")["status"]; st != "SUCCESS" {
		t.Fatalf("DELETE /sources = %v", st)
	}
	if code, _ := a.call("GET", "/sources/"+id, "", "Bearer "+token); code != 404 {
		t.Fatalf("GET a deleted source = %d, want 404", code)
	}
	if code, _ := a.call("DELETE", "/sources/"+id, "", "Bearer "+token); code != 404 {
		t.Fatalf("DELETE a deleted source = %d, want 404", code)
	}
}

func TestWriteKeysAreCreatedRotatedWithAGraceAndRevoked(t *testing.T) {
	a := newAPI(t)
	src := a.ok("POST", "/sources", `{"slug":"app"}`)["source"].(map[string]any)
	id, first := src["id"].(string), src["writeKeys"].([]any)[0].(string)

	created := a.ok("POST", "/sources/"+id+"/writekey", "")
	second := created["writeKey"].(string)
	if keys := created["source"].(map[string]any)["writeKeys"].([]any); len(keys) != 2 || keys[1] != second {
		t.Fatalf("after create, writeKeys = %v", keys)
	}
	testenv.Eventually(t, 5*time.Second, "both keys to authenticate the source", func() bool {
		return a.view.sourceOf(first) == id && a.view.sourceOf(second) == id
	})

	// Rotate with an hour of grace: the old key still works, listed as retiring with its expiry.
	before := time.Now()
	rotated := a.ok("POST", "/sources/"+id+"/writekey/"+first+"/rotate", `{"gracePeriod":"3600s"}`)
	third := rotated["writeKey"].(string)
	rs := rotated["source"].(map[string]any)
	if keys := rs["writeKeys"].([]any); len(keys) != 2 || keys[0] != second || keys[1] != third {
		t.Fatalf("after rotate, writeKeys = %v", keys)
	}
	retiring := rs["retiringWriteKeys"].([]any)
	if len(retiring) != 1 || retiring[0].(map[string]any)["writeKey"] != first {
		t.Fatalf("after rotate, retiringWriteKeys = %v", retiring)
	}
	exp, err := time.Parse(time.RFC3339Nano, retiring[0].(map[string]any)["expiresAt"].(string))
	if err != nil || exp.Before(before.Add(time.Hour-time.Second)) || exp.After(time.Now().Add(time.Hour)) {
		t.Fatalf("expiresAt = %v (%v), want an hour from now", exp, err)
	}
	testenv.Eventually(t, 5*time.Second, "the new key to reach the view", func() bool { return a.view.sourceOf(third) == id })
	if a.view.sourceOf(first) != id {
		t.Fatal("the rotated key must keep working during its grace")
	}
	// (That it stops at its expiry by the clock alone is configstore's TestARetiringWriteKeyStopsAtItsExpiry.)

	// Rotate with zero grace: revoked at once.
	a.ok("POST", "/sources/"+id+"/writekey/"+second+"/rotate", `{"gracePeriod":"0s"}`)
	testenv.Eventually(t, 5*time.Second, "the rotation without grace to revoke the key", func() bool { return a.view.sourceOf(second) == "" })

	// Revoke the retiring key and the current one.
	a.ok("DELETE", "/sources/"+id+"/writekey/"+first, "")
	a.ok("DELETE", "/sources/"+id+"/writekey/"+third, "")
	testenv.Eventually(t, 5*time.Second, "revoked keys to stop working", func() bool {
		return a.view.sourceOf(first) == "" && a.view.sourceOf(third) == ""
	})

	for _, c := range []struct{ method, path, body, want string }{
		{"DELETE", "/sources/" + id + "/writekey/" + first, "", "writeKey:"},
		{"POST", "/sources/" + id + "/writekey/nope/rotate", "{}", "writeKey:"},
		{"POST", "/sources/" + id + "/writekey/" + first + "/rotate", `{"gracePeriod":"-5s"}`, "gracePeriod:"},
		{"POST", "/sources/" + id + "/writekey/" + first + "/rotate", `{"gracePeriod":"2678400s"}`, "gracePeriod:"},
		{"POST", "/sources/missing/writekey", "", "source"},
	} {
		code, out := a.call(c.method, c.path, c.body, "Bearer "+token)
		_, msg := errorOf(t, out)
		if code/100 != 4 || !strings.Contains(msg, c.want) || strings.Contains(msg, first) {
			t.Errorf("%s %s = %d %q, want a 4xx naming %q and not echoing the key", c.method, c.path, code, msg, c.want)
		}
	}
}

func TestWorkspaceShowsTheExternalIDAndTheFilledInPolicies(t *testing.T) {
	a := newAPI(t)
	ws := a.ok("GET", "/workspace?bucket=acme-logs/path/prefix&kmsKeyArn=arn:aws:kms:us-west-2:123456789012:key/abcd-1234", "")
	setup := ws["iamSetup"].(map[string]any)
	if setup["externalId"] != "ws-admin-test" || ws["workspace"].(map[string]any)["id"] != "ws-admin-test" || setup["principalArn"] != principal {
		t.Fatalf("iamSetup = %v", setup)
	}
	for field, want := range map[string][]string{
		"trustPolicy":      {`"AWS": "` + principal + `"`, `"sts:ExternalId": "ws-admin-test"`, `"Action": "sts:AssumeRole"`},
		"permissionPolicy": {`"Resource": "arn:aws:s3:::acme-logs/path/prefix/segment-logs/*"`, `"s3:PutObject"`, `"s3:PutObjectAcl"`},
		"kmsPolicy":        {`"Resource": "arn:aws:kms:us-west-2:123456789012:key/abcd-1234"`, `"kms:GenerateDataKey"`, `"kms:Decrypt"`},
	} {
		doc := setup[field].(string)
		for _, w := range want {
			if !strings.Contains(doc, w) {
				t.Errorf("%s lacks %s:\n%s", field, w, doc)
			}
		}
	}
	// Without a bucket, the reference's placeholders; a China region, its partition.
	plain := a.ok("GET", "/workspace", "")["iamSetup"].(map[string]any)
	if !strings.Contains(plain["permissionPolicy"].(string), "arn:aws:s3:::<YOUR_BUCKET_NAME>/segment-logs/*") || !strings.Contains(plain["kmsPolicy"].(string), "<YOUR_KEY_ARN>") {
		t.Fatalf("placeholders missing: %v", plain)
	}
	cn := a.ok("GET", "/workspace?bucket=b1b&region=cn-north-1", "")["iamSetup"].(map[string]any)
	if !strings.Contains(cn["permissionPolicy"].(string), "arn:aws-cn:s3:::b1b/segment-logs/*") {
		t.Fatalf("China partition: %s", cn["permissionPolicy"])
	}
	for q, want := range map[string]string{"bucket=s3://acme": "bucket: enter the bucket's name, not its URI", "bucket=Bad_Bucket": "bucket:",
		"region=mars-1": "region:", "kmsKeyArn=key-1": "kmsKeyArn:"} {
		code, out := a.call("GET", "/workspace?"+q, "", "Bearer "+token)
		if _, msg := errorOf(t, out); code != 422 || !strings.Contains(msg, want) {
			t.Errorf("GET /workspace?%s = %d %q, want 422 naming %q", q, code, msg, want)
		}
	}
}

func TestDestinationsCanBeListedByKind(t *testing.T) {
	a := newAPI(t, WithLegacyS3(true))
	src := a.ok("POST", "/sources", `{"slug":"s1"}`)["source"].(map[string]any)["id"].(string)
	other := a.ok("POST", "/sources", `{"slug":"s2"}`)["source"].(map[string]any)["id"].(string)
	a.ok("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"54f418c3db31d978f14aa925","settings":{"region":"us-east-1","s3Bucket":"b1b"}}`)
	a.ok("POST", "/destinations", `{"sourceId":"`+src+`","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"us-east-1","s3Bucket":"b1b","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)
	a.ok("POST", "/destinations", `{"sourceId":"`+other+`","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"us-east-1","s3Bucket":"b2b","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)
	for q, want := range map[string]int{"": 3, "?metadataId=54f418c3db31d978f14aa925": 1, "?slug=amazon-s3": 1, "?slug=aws-s3": 2,
		"?slug=aws-s3&sourceId=" + src: 1, "?sourceId=" + other: 1} {
		if got := a.ok("GET", "/destinations"+q, "")["destinations"].([]any); len(got) != want {
			t.Errorf("GET /destinations%s gave %d, want %d", q, len(got), want)
		}
	}
}

// viewOf answers which source a write key authenticates now, as ingest asks it ("" for none).
type viewOf struct{ v *configstore.View }

func (c viewOf) sourceOf(key string) string {
	src, ok := c.v.SourceByWriteKey(key)
	if !ok {
		return ""
	}
	return src.GetId()
}
