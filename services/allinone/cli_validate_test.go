package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/testenv"
	"github.com/s3dest/s3dest/services/admin"
	"github.com/s3dest/s3dest/services/validator"
)

const (
	testIntermediate = "arn:aws:iam::000000000000:role/s3dest-intermediate"
	rowsAccount      = "222222222222"
)

// devAWSConfig writes a --dev-aws-config file and returns its path.
func devAWSConfig(t *testing.T, doc map[string]any) string {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dev-aws-config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// role is a --dev-aws-config role: a trust policy and one permission policy, as IAM JSON.
func role(name, trust, perms string) map[string]any {
	return map[string]any{"arn": roleARN(name), "trustPolicy": json.RawMessage(trust), "permissionPolicies": []any{json.RawMessage(perms)}}
}

func roleARN(name string) string { return "arn:aws:iam::" + rowsAccount + ":role/" + name }

// trustDoc trusts principal, with condition (a JSON object, or "" for none).
func trustDoc(principal, condition string) string {
	c := ""
	if condition != "" {
		c = `,"Condition":` + condition
	}
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole"%s}]}`, principal, c)
}

// allowDoc allows action (with s3:PutObjectAcl when it is s3:PutObject, as the reference does) on resource.
func allowDoc(action, resource string) string {
	actions, _ := json.Marshal([]string{action})
	if action == "s3:PutObject" {
		actions, _ = json.Marshal([]string{action, "s3:PutObjectAcl"})
	}
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":%s,"Resource":%q}]}`, actions, resource)
}

func testClient(t *testing.T, sum Summary) *apiClient {
	t.Helper()
	api, err := newAPIClient(ClientConfig{AdminURL: sum.AdminURL, Token: sum.AdminToken})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// must is one admin REST call that has to succeed; it decodes "data" into out.
func must(t *testing.T, api *apiClient, method, path string, body, out any) {
	t.Helper()
	if _, err := api.call(context.Background(), method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

func createSource(t *testing.T, api *apiClient, slug string) apiSource {
	t.Helper()
	var got struct {
		Source apiSource `json:"source"`
	}
	must(t, api, http.MethodPost, "/sources", map[string]any{"slug": slug}, &got)
	return got.Source
}

type destAndValidation struct {
	Destination apiDestination `json:"destination"`
	Validation  *apiValidation `json:"validation"`
}

func TestEveryValidatorRowSetUpWithDevAWSConfigYieldsItsMessageThroughREST(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	const ws = "ws-validator-rows"
	ext := `{"StringEquals":{"sts:ExternalId":"` + ws + `"}}`
	put := "s3:PutObject"
	cfg := devConfig(t, t.TempDir())
	cfg.WorkspaceID = ws
	cfg.DevAWSConfig = devAWSConfig(t, map[string]any{
		"buckets": []any{map[string]any{"name": "rows-bucket", "account": rowsAccount}, map[string]any{"name": "rows-eu", "region": "eu-west-1", "account": rowsAccount}},
		"roles": []any{
			// The healthy role carries exactly what GET /workspace tells a customer to attach.
			role("healthy", admin.TrustPolicy(testIntermediate, ws), admin.PermissionPolicy("aws", "rows-bucket", "")),
			role("no-external-id", trustDoc(testIntermediate, ""), allowDoc(put, "arn:aws:s3:::rows-bucket/segment-logs/*")),
			role("other-external-id", trustDoc(testIntermediate, `{"StringEquals":{"sts:ExternalId":"someone-else"}}`), allowDoc(put, "arn:aws:s3:::rows-bucket/segment-logs/*")),
			role("trusts-someone-else", trustDoc("arn:aws:iam::333333333333:role/other", ext), allowDoc(put, "arn:aws:s3:::rows-bucket/segment-logs/*")),
			role("no-put-object", trustDoc(testIntermediate, ext), allowDoc("s3:GetObject", "arn:aws:s3:::rows-bucket/segment-logs/*")),
			role("other-prefix", trustDoc(testIntermediate, ext), allowDoc(put, "arn:aws:s3:::rows-bucket/elsewhere/segment-logs/*")),
			role("any-bucket", trustDoc(testIntermediate, ext), allowDoc(put, "arn:aws:s3:::*")),
		},
	})
	sum, _ := runDev(t, cfg)
	api := testClient(t, sum)

	cases := []struct {
		name, role, bucket, region string
		code, message              string
	}{
		{"a healthy role passes", "healthy", "rows-bucket", "us-east-1", "VALIDATION_CODE_OK", validator.MsgOK},
		{"a trust policy without External ID", "no-external-id", "rows-bucket", "us-east-1", "VALIDATION_CODE_EXTERNAL_ID_NOT_REQUIRED", validator.MsgExternalID},
		{"a trust policy with another External ID", "other-external-id", "rows-bucket", "us-east-1", "VALIDATION_CODE_ROLE_ACCESS_DENIED", validator.MsgExternalID},
		{"a role that does not trust our principal", "trusts-someone-else", "rows-bucket", "us-east-1", "VALIDATION_CODE_ROLE_ACCESS_DENIED", validator.MsgExternalID},
		{"a role without s3:PutObject", "no-put-object", "rows-bucket", "us-east-1", "VALIDATION_CODE_PUT_OBJECT_DENIED", validator.MsgAddPutObject},
		{"PutObject only under another prefix", "other-prefix", "rows-bucket", "us-east-1", "VALIDATION_CODE_PUT_OBJECT_DENIED", validator.MsgAddPutObject},
		{"a bucket that does not exist", "any-bucket", "no-such-bucket", "us-east-1", "VALIDATION_CODE_BUCKET_NOT_FOUND", "The bucket no-such-bucket does not exist. Please check the Bucket Name setting."},
		{"a wrong region", "any-bucket", "rows-eu", "us-east-1", "VALIDATION_CODE_WRONG_REGION", "The bucket rows-eu is in region eu-west-1, not us-east-1. Please correct the AWS Region setting."},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := createSource(t, api, fmt.Sprintf("row-%d", i))
			// Creating the destination validates it; GET and the status API show the result.
			var created destAndValidation
			must(t, api, http.MethodPost, "/destinations", map[string]any{"sourceId": src.ID, "metadataId": "60be92c8dabdd561bf6c9130",
				"settings": apiSettings{Region: c.region, S3Bucket: c.bucket, IamRoleArn: roleARN(c.role)}}, &created)
			got := awaitValidation(t, api, created.Destination.ID)
			checkValidation(t, "GET /destinations/{id}", got, c.code, c.message)
			var st struct {
				Status apiStatus `json:"status"`
			}
			must(t, api, http.MethodGet, "/destinations/"+created.Destination.ID+"/status", nil, &st)
			checkValidation(t, "GET /destinations/{id}/status", st.Status.Validation, c.code, c.message)
			// The explicit REST call says the same.
			v, err := api.validate(context.Background(), created.Destination.ID)
			if err != nil {
				t.Fatal(err)
			}
			checkValidation(t, "POST /destinations/{id}/validate", v, c.code, c.message)
			if c.code != "VALIDATION_CODE_OK" && (v.FailedStep == "" || v.FailedStep == "VALIDATION_STEP_UNSPECIFIED") {
				t.Errorf("a failed validation names no failed step: %+v", v)
			}
		})
	}

	// Changing the settings validates again, and the new result replaces the old one.
	var fixed destAndValidation
	src := createSource(t, api, "fix-me")
	must(t, api, http.MethodPost, "/destinations", map[string]any{"sourceId": src.ID, "metadataId": "60be92c8dabdd561bf6c9130",
		"settings": apiSettings{Region: "us-east-1", S3Bucket: "rows-bucket", IamRoleArn: roleARN("no-put-object")}}, &fixed)
	checkValidation(t, "before the fix", awaitValidation(t, api, fixed.Destination.ID), "VALIDATION_CODE_PUT_OBJECT_DENIED", validator.MsgAddPutObject)
	must(t, api, http.MethodPatch, "/destinations/"+fixed.Destination.ID, map[string]any{"settings": apiSettings{IamRoleArn: roleARN("healthy")}}, &fixed)
	if fixed.Validation != nil && fixed.Validation.Code != "VALIDATION_CODE_OK" {
		t.Fatalf("PATCH settings answered with the old settings' validation: %+v", fixed.Validation)
	}
	checkValidation(t, "GET after the fix", awaitValidation(t, api, fixed.Destination.ID), "VALIDATION_CODE_OK", validator.MsgOK)
	// `s3dest destinations get` shows it with the destination.
	var out strings.Builder
	if err := RunCLI(context.Background(), []string{"destinations", "get", fixed.Destination.ID, "--admin-url", sum.AdminURL, "--admin-token", sum.AdminToken}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "VALIDATION_CODE_OK: "+validator.MsgOK) {
		t.Fatalf("destinations get printed:\n%s", out.String())
	}
	// `s3dest workspace --bucket` prints the documents the healthy role was given.
	if got := cli(t, sum, "workspace", "--bucket", "rows-bucket"); !strings.Contains(got, "Workspace ID (External ID): "+ws) ||
		!strings.Contains(got, admin.TrustPolicy(testIntermediate, ws)) || !strings.Contains(got, admin.PermissionPolicy("aws", "rows-bucket", "")) {
		t.Fatalf("workspace printed:\n%s", got)
	}
}

func TestAnIntermediateRoleWeCannotAssumeYieldsTryAgainThroughREST(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	cfg := devConfig(t, t.TempDir())
	// --dev-aws-config replaces our intermediate role by one that trusts nobody we are.
	cfg.DevAWSConfig = devAWSConfig(t, map[string]any{"roles": []any{map[string]any{
		"arn": testIntermediate, "trustPolicy": json.RawMessage(trustDoc("arn:aws:iam::444444444444:user/not-us", "")),
		"permissionPolicies": []any{json.RawMessage(allowDoc("sts:AssumeRole", "*"))},
	}}})
	sum, _ := runDev(t, cfg)
	v, err := testClient(t, sum).validate(context.Background(), sum.DestinationID)
	if err != nil {
		t.Fatal(err)
	}
	checkValidation(t, "POST /destinations/{id}/validate", v, "VALIDATION_CODE_INTERMEDIATE_ROLE_FAILED", validator.MsgTryAgain)
	if v.FailedStep != "VALIDATION_STEP_ASSUME_INTERMEDIATE_ROLE" {
		t.Fatalf("failed step = %s", v.FailedStep)
	}
}

// awaitValidation waits for the background validation of a destination's current settings.
func awaitValidation(t *testing.T, api *apiClient, destinationID string) *apiValidation {
	t.Helper()
	var got destAndValidation
	testenv.Eventually(t, 15*time.Second, "the automatic validation of "+destinationID, func() bool {
		must(t, api, http.MethodGet, "/destinations/"+destinationID, nil, &got)
		return got.Validation != nil
	})
	return got.Validation
}

func checkValidation(t *testing.T, where string, v *apiValidation, code, message string) {
	t.Helper()
	if v == nil {
		t.Fatalf("%s: no validation", where)
	}
	if v.Code != code || v.Message != message || v.CheckedAt == "" || v.Ok != (code == "VALIDATION_CODE_OK") {
		t.Fatalf("%s: validation = %s %q (ok %v, checkedAt %q), want %s %q", where, v.Code, v.Message, v.Ok, v.CheckedAt, code, message)
	}
}

func TestAHangingSTSYieldsTryAgainThroughRESTWithinTheValidatorsBound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole dev stack: skipped under -short")
	}
	// s3dest dev with MinIO as its S3 and, as its STS, a server that never answers.
	m := testenv.MinIO(t)
	quit := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-quit: // the test is over: let the copier's STS calls fail so that dev stops
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(hang.Close)
	cfg := devConfig(t, t.TempDir())
	cfg.S3URL, cfg.STSURL = m.URL, hang.URL
	cfg.AWSAccessKeyID, cfg.AWSSecretAccessKey = m.RootUser, m.RootPassword
	sum, _ := runDev(t, cfg)
	t.Cleanup(func() { close(quit) }) // runs before dev's stop, registered by runDev

	// The validator's bound is 10 s (S3DEST_VALIDATE_TIMEOUT); the call must end well inside the
	// client's own 20 s with the reference's "try again" message.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := testClient(t, sum).validate(ctx, sum.DestinationID)
	if err != nil {
		t.Fatalf("validation did not end within its bound: %v", err)
	}
	checkValidation(t, "POST /destinations/{id}/validate", v, "VALIDATION_CODE_INTERMEDIATE_ROLE_FAILED", validator.MsgTryAgain)
}
