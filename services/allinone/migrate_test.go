package allinone

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/testenv"
	"github.com/s3dest/s3dest/services/admin"
)

func TestMigrateMovesASourceFromAmazonS3ToAWSS3StepByStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	const ws = "ws-migrate"
	t.Run("local S3 and STS", func(t *testing.T) {
		cfg := devConfig(t, t.TempDir())
		cfg.WorkspaceID = ws
		cfg.DevAWSConfig = devAWSConfig(t, map[string]any{
			"buckets": []any{legacyWritableBucket("acme-logs")},
			"roles":   []any{role("acme", admin.TrustPolicy(testIntermediate, ws), admin.PermissionPolicy("aws", "acme-logs", ""))},
		})
		sum, _ := runDev(t, cfg)
		migrateScenario(t, sum, rootS3(sum))
	})
	t.Run("MinIO behind the STS gate", func(t *testing.T) {
		g := testenv.StartGate(t)
		g.CreateBucket(t, "acme-logs")
		g.PutIntermediateRole(t, testIntermediate)
		trust, err := localaws.ParsePolicy([]byte(admin.TrustPolicy(testIntermediate, ws)))
		if err != nil {
			t.Fatal(err)
		}
		perm, err := localaws.ParsePolicy([]byte(admin.PermissionPolicy("aws", "acme-logs", "")))
		if err != nil {
			t.Fatal(err)
		}
		g.Dir.PutRole(localaws.Role{ARN: roleARN("acme"), TrustPolicy: trust, PermissionPolicies: []localaws.Policy{perm}})
		cfg := devConfig(t, t.TempDir())
		cfg.WorkspaceID = ws
		// Our principal is MinIO's root user: the legacy destination writes as it.
		cfg.S3URL, cfg.STSURL = g.MinIO.URL, g.URL
		cfg.AWSAccessKeyID, cfg.AWSSecretAccessKey = g.MinIO.RootUser, g.MinIO.RootPassword
		sum, _ := runDev(t, cfg)
		migrateScenario(t, sum, g.RootS3())
	})
}

// legacyWritableBucket is a --dev-aws-config bucket in the customer's account whose bucket policy lets the
// legacy Amazon S3 destination write, as s3dest's own principal.
func legacyWritableBucket(name string) map[string]any {
	return map[string]any{"name": name, "account": rowsAccount,
		"policy": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
			"Effect": "Allow", "Principal": map[string]any{"AWS": serviceUserARN},
			"Action": []string{"s3:PutObject", "s3:PutObjectAcl"}, "Resource": "arn:aws:s3:::" + name + "/*"}}}}
}

// keepSending posts an event with writeKey every 100 ms (messageIds prefix-0, prefix-1, …) until the
// returned function is called, which waits for the last one. A failed post shows as missing data.
func keepSending(sum Summary, writeKey, prefix string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
				_, _ = post(sum, writeKey, fmt.Sprintf("%s-%d", prefix, i))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// migrateScenario runs the reference's migration on a source whose legacy Amazon S3 destination writes to
// acme-logs, with the role acme ready for the AWS S3 destination; s3c reads the bucket.
func migrateScenario(t *testing.T, sum Summary, s3c *s3.Client) {
	api := testClient(t, sum)
	src := createSource(t, api, "shop")
	var legacy destAndValidation
	must(t, api, http.MethodPost, "/destinations", map[string]any{"sourceId": src.ID, "metadataId": "54f418c3db31d978f14aa925",
		"name": "Amazon S3", "settings": apiSettings{Region: "us-east-1", S3Bucket: "acme-logs"}}, &legacy)

	// The source keeps sending while the migration runs.
	defer keepSending(sum, src.WriteKeys[0], "migrate")()
	waitForObjects(t, s3c, "acme-logs", "segment-logs/"+src.ID+"/", 1) // the legacy destination delivers

	mc := MigrateConfig{ClientConfig: ClientConfig{AdminURL: sum.AdminURL, Token: sum.AdminToken}, SourceID: src.ID,
		RoleARN: roleARN("acme"), Wait: 30 * time.Second, Poll: 100 * time.Millisecond}

	// Answering no stops before the switch: data flows to the test folder, the legacy destination still runs.
	var out strings.Builder
	err := Migrate(context.Background(), mc, strings.NewReader("n\n"), &out)
	if err == nil || !strings.Contains(err.Error(), "stopped before the switch") {
		t.Fatalf("answering no: %v\n%s", err, out.String())
	}
	for _, want := range []string{"Step 1. Find the Amazon S3 destinations", legacy.Destination.ID,
		"Step 2. Create the AWS S3 destination with bucket acme-logs/segment-logs/test", "Step 3. Validate",
		"[ok  ] upload segment-logs/dummy-object.txt", "VALIDATION_CODE_OK", "Step 4. Wait for data at s3://acme-logs/segment-logs/test/segment-logs/",
		"data arrived", "Switch ", "to bucket acme-logs and disable the Amazon S3 destination(s) " + legacy.Destination.ID + "? [y/N]"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("migrate printed no %q:\n%s", want, out.String())
		}
	}
	if keys := listKeys(t, s3c, "acme-logs", "segment-logs/test/segment-logs/"+src.ID+"/"); len(keys) == 0 {
		t.Fatal("nothing arrived in the test folder")
	}
	var got destAndValidation
	must(t, api, http.MethodGet, "/destinations/"+legacy.Destination.ID, nil, &got)
	if !got.Destination.Enabled {
		t.Fatal("answering no disabled the legacy destination")
	}

	// Rerun and answer yes: it reuses the new destination, switches, disables the legacy one.
	out.Reset()
	if err := Migrate(context.Background(), mc, strings.NewReader("y\n"), &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	for _, want := range []string{"Reuse the AWS S3 destination", "Switch the bucket of", "Disable the Amazon S3 destination " + legacy.Destination.ID,
		"Wait for data at s3://acme-logs/segment-logs/ from", "Remove the test folder s3://acme-logs/segment-logs/test/", "Migration done."} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("migrate printed no %q:\n%s", want, out.String())
		}
	}
	must(t, api, http.MethodGet, "/destinations/"+legacy.Destination.ID, nil, &got)
	if got.Destination.Enabled {
		t.Fatal("the legacy destination is still enabled")
	}
	aws, err := api.listDestinations(context.Background(), map[string][]string{"sourceId": {src.ID}, "slug": {"aws-s3"}})
	if err != nil || len(aws) != 1 || aws[0].Settings.S3Bucket != "acme-logs" || !aws[0].Enabled {
		t.Fatalf("AWS S3 destination after the migration: %+v (%v)", aws, err)
	}
	// The new destination delivered to the bucket's root location after the switch (migrate waited for it).
	var st struct {
		Status apiStatus `json:"status"`
	}
	// The switch's PATCH validates the new settings in the background: data can arrive before the result.
	testenv.Eventually(t, 30*time.Second, "the validation of the switched settings", func() bool {
		must(t, api, http.MethodGet, "/destinations/"+aws[0].ID+"/status", nil, &st)
		return st.Status.Validation != nil
	})
	if len(st.Status.Days) == 0 || st.Status.Validation == nil || !st.Status.Validation.Ok {
		t.Fatalf("status of the new destination: %+v", st.Status)
	}
	// Migrating again finds the switch done and has nothing left to do but say so.
	out.Reset()
	if err := Migrate(context.Background(), mc, strings.NewReader(""), &out); err != nil || !strings.Contains(out.String(), "the switch is done") {
		t.Fatalf("rerun after the migration: %v\n%s", err, out.String())
	}
}
