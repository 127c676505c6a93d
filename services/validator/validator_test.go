package validator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/configstore"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/testenv"
)

const (
	workspace    = "ws-validate-1"
	intermediate = "arn:aws:iam::000000000000:role/s3dest-intermediate"
	userARN      = "arn:aws:iam::000000000000:user/s3dest"
	userKey      = "AKIASVC000000000001"
	userSecret   = "svc-secret-svc-secret-svc-secret-000001"
	rootKey      = "AKIAROOT00000000001"
	rootSecret   = "root-secret-root-secret-root-secret-001"
)

func policy(t testing.TB, doc string) localaws.Policy {
	t.Helper()
	p, err := localaws.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func trust(principal, condition string) string {
	if condition != "" {
		condition = `,"Condition":` + condition
	}
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + principal + `"},"Action":"sts:AssumeRole"` + condition + `}]}`
}

func putPolicy(actions, resource string) string {
	return `{"Version":"2012-10-17","Statement":[{"Sid":"PutObjectsInBucket","Effect":"Allow","Action":` + actions + `,"Resource":"` + resource + `"}]}`
}

const referenceCondition = `{"StringEquals":{"sts:ExternalId":"` + workspace + `"}}`

// localStack is the local STS and S3 with our principal and intermediate role; tests add customer roles.
type localStack struct {
	dir      *localaws.Directory
	stsURL   string
	s3URL    string
	stsCalls atomic.Int64
	// hold, when set, makes STS wait until the channel closes.
	hold atomic.Pointer[chan struct{}]
}

func newLocalStack(t testing.TB) *localStack {
	t.Helper()
	dir := localaws.NewDirectory()
	dir.AddIdentity(localaws.Identity{AccessKeyID: userKey, SecretAccessKey: userSecret, PrincipalARN: userARN,
		Policies: []localaws.Policy{policy(t, `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`)}})
	dir.AddIdentity(localaws.Identity{AccessKeyID: rootKey, SecretAccessKey: rootSecret, PrincipalARN: "arn:aws:iam::000000000000:root", Admin: true})
	dir.PutRole(localaws.Role{ARN: intermediate, TrustPolicy: policy(t, trust(userARN, "")),
		PermissionPolicies: []localaws.Policy{policy(t, `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`)}})
	stsSrv, err := localaws.NewSTSServer(dir, localaws.STSConfig{Region: "us-east-1", Issuer: localaws.LocalIssuer{}})
	if err != nil {
		t.Fatal(err)
	}
	s3Srv, err := localaws.NewS3Server(dir, localaws.S3Config{DataDir: t.TempDir(), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []localaws.Bucket{{Name: "cust", Account: "111111111111"}, {Name: "eu-cust", Region: "eu-west-1", Account: "111111111111"}} {
		if err := s3Srv.EnsureBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	ls := &localStack{dir: dir}
	st := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls.stsCalls.Add(1)
		if h := ls.hold.Load(); h != nil {
			<-*h
		}
		stsSrv.ServeHTTP(w, r)
	}))
	t.Cleanup(st.Close)
	s3 := httptest.NewServer(s3Srv)
	t.Cleanup(s3.Close)
	ls.stsURL, ls.s3URL = st.URL, s3.URL
	return ls
}

func (ls *localStack) validator(t testing.TB, stsURL string, timeout time.Duration) *Validator {
	t.Helper()
	clients, err := awsclient.New(context.Background(), awsclient.Config{Region: "us-east-1", STSEndpoint: stsURL, S3Endpoint: ls.s3URL,
		AccessKeyID: userKey, SecretAccessKey: userSecret, IntermediateRoleARN: intermediate, PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewValidator(clients, workspaceView(t, workspace), slog.New(slog.DiscardHandler), timeout, nil)
}

// workspaceView is a config store on an embedded NATS holding the workspace id (none when empty),
// and a View of it, as the validator binary follows it.
func workspaceView(t testing.TB, id string) *configstore.View {
	t.Helper()
	_, _, js := testenv.NATS(t)
	ctx := context.Background()
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if id != "" {
		if _, err := store.CreateWorkspace(ctx, &configv1.Workspace{Id: id}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	view, err := store.Watch(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return view
}

// request is what the admin service sends: the settings, and no External ID.
func request(dest, region, bucket, role string) *validatorv1.ValidateRequest {
	return &validatorv1.ValidateRequest{DestinationId: dest,
		Settings: &configv1.DestinationSettings{Region: region, S3Bucket: bucket, IamRoleArn: role}}
}

func TestValidationGivesTheReferencesMessageForEachMistake(t *testing.T) {
	ls := newLocalStack(t)
	role := func(name string) string { return "arn:aws:iam::111111111111:role/" + name }
	setups := map[string]struct{ trust, perms string }{
		"healthy":          {trust(intermediate, referenceCondition), putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*")},
		"no-external-id":   {trust(intermediate, ""), putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*")},
		"other-external":   {trust(intermediate, `{"StringEquals":{"sts:ExternalId":"ws-someone-else"}}`), putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*")},
		"untrusting":       {trust("arn:aws:iam::999999999999:role/someone", referenceCondition), putPolicy(`["s3:PutObject"]`, "arn:aws:s3:::cust/*")},
		"no-put":           {trust(intermediate, referenceCondition), putPolicy(`["s3:GetObject"]`, "arn:aws:s3:::cust/segment-logs/*")},
		"other-prefix":     {trust(intermediate, referenceCondition), putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/other/*")},
		"healthy-eu":       {trust(intermediate, referenceCondition), putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::eu-cust/segment-logs/*")},
		"healthy-prefixed": {trust(intermediate, referenceCondition), putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/path/prefix/segment-logs/*")},
	}
	for name, s := range setups {
		ls.dir.PutRole(localaws.Role{ARN: role(name), TrustPolicy: policy(t, s.trust), PermissionPolicies: []localaws.Policy{policy(t, s.perms)}})
	}
	v := ls.validator(t, ls.stsURL, 10*time.Second)
	cases := []struct {
		name, region, bucket, role string
		code                       validatorv1.ValidationCode
		message                    string
	}{
		{"a healthy role passes", "us-east-1", "cust", role("healthy"), validatorv1.ValidationCode_VALIDATION_CODE_OK, MsgOK},
		{"a bucket with a path prefix passes", "us-east-1", "cust/path/prefix", role("healthy-prefixed"), validatorv1.ValidationCode_VALIDATION_CODE_OK, MsgOK},
		{"a trust policy without External ID is caught", "us-east-1", "cust", role("no-external-id"), validatorv1.ValidationCode_VALIDATION_CODE_EXTERNAL_ID_NOT_REQUIRED, MsgExternalID},
		{"a trust policy with another External ID is caught", "us-east-1", "cust", role("other-external"), validatorv1.ValidationCode_VALIDATION_CODE_ROLE_ACCESS_DENIED, MsgExternalID},
		{"a role that does not trust us is caught", "us-east-1", "cust", role("untrusting"), validatorv1.ValidationCode_VALIDATION_CODE_ROLE_ACCESS_DENIED, MsgExternalID},
		{"a role without s3:PutObject is caught", "us-east-1", "cust", role("no-put"), validatorv1.ValidationCode_VALIDATION_CODE_PUT_OBJECT_DENIED, MsgAddPutObject},
		{"PutObject under another prefix is caught", "us-east-1", "cust", role("other-prefix"), validatorv1.ValidationCode_VALIDATION_CODE_PUT_OBJECT_DENIED, MsgAddPutObject},
		{"a missing bucket is named", "us-east-1", "no-such-bucket", role("healthy"), validatorv1.ValidationCode_VALIDATION_CODE_BUCKET_NOT_FOUND, "The bucket no-such-bucket does not exist. Please check the Bucket Name setting."},
		{"a wrong region names the right one", "us-east-1", "eu-cust", role("healthy-eu"), validatorv1.ValidationCode_VALIDATION_CODE_WRONG_REGION, "The bucket eu-cust is in region eu-west-1, not us-east-1. Please correct the AWS Region setting."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := v.Validate(context.Background(), request("dest-"+c.name[:5], c.region, c.bucket, c.role))
			if err != nil {
				t.Fatal(err)
			}
			r := out.GetResult()
			if r.GetCode() != c.code || r.GetMessage() != c.message || r.GetOk() != (c.code == validatorv1.ValidationCode_VALIDATION_CODE_OK) {
				t.Fatalf("got %s %q (steps %v), want %s %q", r.GetCode(), r.GetMessage(), r.GetSteps(), c.code, c.message)
			}
		})
	}

	// The healthy prefixed run left the dummy object where the reference says, with the ACL.
	root := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(ls.s3URL), UsePathStyle: true, HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(rootKey, rootSecret, "")})
	obj, err := root.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("cust"), Key: aws.String("path/prefix/segment-logs/dummy-object.txt")})
	if err != nil {
		t.Fatalf("dummy object: %v", err)
	}
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !strings.Contains(string(body), "s3dest validation") {
		t.Fatalf("dummy object body = %q", body)
	}
	acl, err := root.GetObjectAcl(context.Background(), &s3.GetObjectAclInput{Bucket: aws.String("cust"), Key: aws.String("path/prefix/segment-logs/dummy-object.txt")})
	if err != nil || len(acl.Grants) != 2 {
		t.Fatalf("dummy object ACL: %v %+v, want bucket-owner-full-control's two grants", err, acl)
	}
}

func TestAnUnassumableIntermediateRoleSaysTryAgain(t *testing.T) {
	ls := newLocalStack(t)
	ls.dir.PutRole(localaws.Role{ARN: intermediate, TrustPolicy: policy(t, trust("arn:aws:iam::000000000000:user/nobody", ""))})
	out, err := ls.validator(t, ls.stsURL, 10*time.Second).Validate(context.Background(), request("d", "us-east-1", "cust", "arn:aws:iam::111111111111:role/x"))
	if err != nil {
		t.Fatal(err)
	}
	if r := out.GetResult(); r.GetCode() != validatorv1.ValidationCode_VALIDATION_CODE_INTERMEDIATE_ROLE_FAILED || r.GetMessage() != MsgTryAgain {
		t.Fatalf("got %s %q", r.GetCode(), r.GetMessage())
	}
}

func TestAHangingSTSYieldsUnknownErrorWithinTheTimeout(t *testing.T) {
	ls := newLocalStack(t)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a client that gave up only once the body is read
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	v := ls.validator(t, hang.URL, 2*time.Second)
	done := make(chan *validatorv1.ValidationResult, 1)
	go func() {
		out, err := v.Validate(context.Background(), request("d", "us-east-1", "cust", "arn:aws:iam::111111111111:role/x"))
		if err != nil {
			t.Error(err)
		}
		done <- out.GetResult()
	}()
	select {
	case r := <-done:
		if r.GetCode() != validatorv1.ValidationCode_VALIDATION_CODE_INTERMEDIATE_ROLE_FAILED || r.GetMessage() != MsgTryAgain {
			t.Fatalf("got %s %q", r.GetCode(), r.GetMessage())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("validation did not give up within its bound")
	}
}

func TestMalformedSettingsAreRefusedNamingTheSetting(t *testing.T) {
	v := newLocalStack(t).validator(t, "http://127.0.0.1:1", time.Second)
	cases := map[string]*validatorv1.ValidateRequest{
		"settings.s3Bucket":   request("d", "us-east-1", "s3://cust", "arn:aws:iam::111111111111:role/r"),
		"settings.region":     request("d", "", "cust", "arn:aws:iam::111111111111:role/r"),
		"settings.iamRoleArn": request("d", "us-east-1", "cust", "arn:aws:iam::1111:role/r"),
	}
	for field, req := range cases {
		if _, err := v.Validate(context.Background(), req); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func TestTheSameDestinationValidatedTwiceAtOnceRunsOnce(t *testing.T) {
	ls := newLocalStack(t)
	ls.dir.PutRole(localaws.Role{ARN: "arn:aws:iam::111111111111:role/ok", TrustPolicy: policy(t, trust(intermediate, referenceCondition)),
		PermissionPolicies: []localaws.Policy{policy(t, putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*"))}})
	// Hold STS until both callers have reached the flight, so they overlap for sure.
	release := make(chan struct{})
	ls.hold.Store(&release)
	v := ls.validator(t, ls.stsURL, 10*time.Second)
	var arrived sync.WaitGroup
	arrived.Add(2)
	v.beforeFlight = arrived.Done
	go func() { arrived.Wait(); close(release) }()
	var wg sync.WaitGroup
	results := make([]*validatorv1.ValidationResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := v.Validate(context.Background(), request("same", "us-east-1", "cust", "arn:aws:iam::111111111111:role/ok"))
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = out.GetResult()
		}()
	}
	wg.Wait()
	if results[0] == nil || !results[0].GetOk() || results[0] != results[1] {
		t.Fatalf("results %v %v: want one shared successful result", results[0], results[1])
	}
	if n := ls.stsCalls.Load(); n != 3 {
		t.Fatalf("STS saw %d calls, want 3 (intermediate, without and with External ID) for both validations", n)
	}
}

func TestFiftyValidationsOfDifferentDestinationsDoNotInterfere(t *testing.T) {
	ls := newLocalStack(t)
	for i := range 50 {
		perms := putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*")
		if i%2 == 1 {
			perms = putPolicy(`["s3:GetObject"]`, "arn:aws:s3:::cust/segment-logs/*") // every other role lacks PutObject
		}
		ls.dir.PutRole(localaws.Role{ARN: fmt.Sprintf("arn:aws:iam::111111111111:role/r%d", i), TrustPolicy: policy(t, trust(intermediate, referenceCondition)),
			PermissionPolicies: []localaws.Policy{policy(t, perms)}})
	}
	v := ls.validator(t, ls.stsURL, 10*time.Second)
	var wg sync.WaitGroup
	results := make([]*validatorv1.ValidationResult, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := v.Validate(context.Background(), request(fmt.Sprintf("dest-%d", i), "us-east-1", "cust", fmt.Sprintf("arn:aws:iam::111111111111:role/r%d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = out.GetResult()
		}()
	}
	wg.Wait()
	for i, r := range results {
		want := validatorv1.ValidationCode_VALIDATION_CODE_OK
		if i%2 == 1 {
			want = validatorv1.ValidationCode_VALIDATION_CODE_PUT_OBJECT_DENIED
		}
		if r.GetCode() != want {
			t.Errorf("destination %d: %s, want %s", i, r.GetCode(), want)
		}
	}
}

// BenchmarkValidate measures one full validation (three AssumeRole calls and a PutObject) against the
// local STS and S3.
func BenchmarkValidate(b *testing.B) {
	ls := newLocalStack(b)
	ls.dir.PutRole(localaws.Role{ARN: "arn:aws:iam::111111111111:role/ok", TrustPolicy: policy(b, trust(intermediate, referenceCondition)),
		PermissionPolicies: []localaws.Policy{policy(b, putPolicy(`["s3:PutObject","s3:PutObjectAcl"]`, "arn:aws:s3:::cust/segment-logs/*"))}})
	v := ls.validator(b, ls.stsURL, 10*time.Second)
	b.ResetTimer()
	for i := range b.N {
		out, err := v.Validate(context.Background(), request(fmt.Sprintf("bench-%d", i), "us-east-1", "cust", "arn:aws:iam::111111111111:role/ok"))
		if err != nil || !out.GetResult().GetOk() {
			b.Fatalf("%v %v", err, out.GetResult())
		}
	}
}
