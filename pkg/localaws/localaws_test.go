package localaws

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/s3dest/s3dest/pkg/awsclient"
)

const (
	workspace    = "ws-0123456789"
	intermediate = "arn:aws:iam::000000000000:role/s3dest-intermediate"
	customerRole = "arn:aws:iam::111111111111:role/customer"
	userARN      = "arn:aws:iam::000000000000:user/s3dest"
	userKey      = "AKIAUSER0000000001"
	userSecret   = "user-secret-user-secret-user-secret-0001"
)

// The reference's documents, verbatim but for the placeholders.
const referenceTrust = `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "",
      "Effect": "Allow",
      "Principal": {
        "AWS": "PRINCIPAL"
      },
      "Action": "sts:AssumeRole",
      "Condition": {
        "StringEquals": {
          "sts:ExternalId": "WORKSPACE"
        }
      }
    }
  ]
}`

const referencePermissions = `{
    "Version": "2012-10-17",
    "Statement": [
        {
        "Sid": "PutObjectsInBucket",
        "Effect": "Allow",
        "Action": [
            "s3:PutObject",
            "s3:PutObjectAcl"
        ],
        "Resource": "arn:aws:s3:::BUCKET/segment-logs/*"
        }
  ]
}`

func mustPolicy(t *testing.T, doc string, repl ...string) Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(strings.NewReplacer(repl...).Replace(doc)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stack is a local AWS: our user, our intermediate role, and a customer role with the reference's
// policies on bucket "cust".
type stack struct {
	dir       *Directory
	sts, s3   *httptest.Server
	s3srv     *S3Server
	dataDir   string
	stsClient *sts.Client
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dir := NewDirectory()
	dir.AddIdentity(Identity{AccessKeyID: userKey, SecretAccessKey: userSecret, PrincipalARN: userARN,
		Policies: []Policy{mustPolicy(t, `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`)}})
	dir.AddIdentity(Identity{AccessKeyID: "AKIAROOT", SecretAccessKey: "root-secret", PrincipalARN: "arn:aws:iam::000000000000:root", Admin: true})
	dir.PutRole(Role{ARN: intermediate,
		TrustPolicy: mustPolicy(t, referenceTrust, "PRINCIPAL", userARN, `"Condition": {
        "StringEquals": {
          "sts:ExternalId": "WORKSPACE"
        }
      }`, `"Condition": {}`),
		PermissionPolicies: []Policy{mustPolicy(t, `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`)}})
	dir.PutRole(Role{ARN: customerRole,
		TrustPolicy:        mustPolicy(t, referenceTrust, "PRINCIPAL", intermediate, "WORKSPACE", workspace),
		PermissionPolicies: []Policy{mustPolicy(t, referencePermissions, "BUCKET", "cust")}})
	st := &stack{dir: dir, dataDir: t.TempDir()}
	stsSrv, err := NewSTSServer(dir, STSConfig{Region: "us-east-1", Issuer: LocalIssuer{}})
	if err != nil {
		t.Fatal(err)
	}
	st.sts = httptest.NewServer(stsSrv)
	t.Cleanup(st.sts.Close)
	st.startS3(t)
	if err := st.s3srv.EnsureBucket(Bucket{Name: "cust", Account: "111111111111"}); err != nil {
		t.Fatal(err)
	}
	if err := st.s3srv.EnsureBucket(Bucket{Name: "eu-bucket", Region: "eu-west-1", Account: "111111111111"}); err != nil {
		t.Fatal(err)
	}
	st.stsClient = st.stsFor(credentials.NewStaticCredentialsProvider(userKey, userSecret, ""))
	return st
}

func (st *stack) startS3(t *testing.T) {
	t.Helper()
	srv, err := NewS3Server(st.dir, S3Config{DataDir: st.dataDir, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	st.s3srv = srv
	st.s3 = httptest.NewServer(srv)
	t.Cleanup(st.s3.Close)
}

func (st *stack) stsFor(creds aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(st.sts.URL), Credentials: creds, HTTPClient: awshttp.NewBuildableClient()})
}

func (st *stack) s3For(creds aws.CredentialsProvider, region string) *s3.Client {
	return s3.New(s3.Options{Region: region, BaseEndpoint: aws.String(st.s3.URL), Credentials: creds, UsePathStyle: true,
		HTTPClient: awshttp.NewBuildableClient(), RetryMaxAttempts: 1})
}

func assume(t *testing.T, c *sts.Client, role string, externalID *string) (aws.CredentialsProvider, error) {
	t.Helper()
	out, err := c.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("test-session"), ExternalId: externalID})
	if err != nil {
		return nil, err
	}
	c2 := out.Credentials
	return credentials.NewStaticCredentialsProvider(aws.ToString(c2.AccessKeyId), aws.ToString(c2.SecretAccessKey), aws.ToString(c2.SessionToken)), nil
}

// customer walks the chain: user → intermediate role → customer role with the External ID.
func (st *stack) customer(t *testing.T) aws.CredentialsProvider {
	t.Helper()
	inter, err := assume(t, st.stsClient, intermediate, nil)
	if err != nil {
		t.Fatalf("assume intermediate: %v", err)
	}
	cust, err := assume(t, st.stsFor(inter), customerRole, aws.String(workspace))
	if err != nil {
		t.Fatalf("assume customer role: %v", err)
	}
	return cust
}

func TestTrustPolicyRequiresTheExternalID(t *testing.T) {
	st := newStack(t)
	inter, err := assume(t, st.stsClient, intermediate, nil)
	if err != nil {
		t.Fatal(err)
	}
	via := st.stsFor(inter)
	cases := []struct {
		name       string
		externalID *string
		ok         bool
	}{
		{"with the workspace ID", aws.String(workspace), true},
		{"without an External ID", nil, false},
		{"with another External ID", aws.String("ws-someone-else"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := assume(t, via, customerRole, c.externalID)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && awsclient.ErrorCode(err) != "AccessDenied" {
				t.Fatalf("got %v, want AccessDenied", err)
			}
		})
	}
}

func TestARoleThatDoesNotTrustTheCallerRefusesIt(t *testing.T) {
	st := newStack(t)
	// Our user, not the intermediate role, asks for the customer role: its trust names the role only.
	if _, err := assume(t, st.stsClient, customerRole, aws.String(workspace)); awsclient.ErrorCode(err) != "AccessDenied" {
		t.Fatalf("got %v, want AccessDenied", err)
	}
	if _, err := assume(t, st.stsClient, "arn:aws:iam::111111111111:role/missing", aws.String(workspace)); awsclient.ErrorCode(err) != "AccessDenied" {
		t.Fatalf("unknown role: got %v, want AccessDenied", err)
	}
}

func TestRoleChainingCapsSessionsAtOneHour(t *testing.T) {
	st := newStack(t)
	inter, err := assume(t, st.stsClient, intermediate, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.stsFor(inter).AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(customerRole),
		RoleSessionName: aws.String("long"), ExternalId: aws.String(workspace), DurationSeconds: aws.Int32(7200)})
	if awsclient.ErrorCode(err) != "ValidationError" || !strings.Contains(err.Error(), "role chaining") {
		t.Fatalf("got %v, want the role-chaining ValidationError", err)
	}
	who, err := st.stsFor(st.customer(t)).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(who.Arn); got != "arn:aws:sts::111111111111:assumed-role/customer/test-session" {
		t.Fatalf("caller = %s", got)
	}
}

func TestSignaturesAreChecked(t *testing.T) {
	st := newStack(t)
	bad := []aws.CredentialsProvider{
		credentials.NewStaticCredentialsProvider(userKey, "wrong-secret", ""),
		credentials.NewStaticCredentialsProvider("AKIAUNKNOWN", userSecret, ""),
	}
	for _, creds := range bad {
		_, err := st.stsFor(creds).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if c := awsclient.ErrorCode(err); c != "SignatureDoesNotMatch" && c != "InvalidAccessKeyId" {
			t.Fatalf("got %v, want a signature error", err)
		}
	}
	// An expired session is refused.
	st.dir.AddIdentity(Identity{AccessKeyID: "ASIAEXPIRED", SecretAccessKey: "s", SessionToken: "t", PrincipalARN: customerRole, RoleARN: customerRole, Expires: time.Now().Add(-time.Minute)})
	_, err := st.s3For(credentials.NewStaticCredentialsProvider("ASIAEXPIRED", "s", "t"), "us-east-1").PutObject(context.Background(),
		&s3.PutObjectInput{Bucket: aws.String("cust"), Key: aws.String("segment-logs/x"), Body: strings.NewReader("x")})
	if awsclient.ErrorCode(err) != "ExpiredToken" {
		t.Fatalf("got %v, want ExpiredToken", err)
	}
}

func TestPermissionPolicyLimitsWritesToSegmentLogs(t *testing.T) {
	st := newStack(t)
	cli := st.s3For(st.customer(t), "us-east-1")
	ctx := context.Background()
	put := func(key string, acl types.ObjectCannedACL) error {
		_, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cust"), Key: aws.String(key), Body: strings.NewReader("hello"), ACL: acl})
		return err
	}
	if err := put("segment-logs/src/1/a.gz", types.ObjectCannedACLBucketOwnerFullControl); err != nil {
		t.Fatalf("write under segment-logs/: %v", err)
	}
	for _, key := range []string{"elsewhere/a.gz", "segment-logsX/a.gz", "a.gz"} {
		if err := put(key, ""); awsclient.ErrorCode(err) != "AccessDenied" {
			t.Fatalf("write %s: got %v, want AccessDenied", key, err)
		}
	}
	if _, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("cust"), Key: aws.String("segment-logs/src/1/a.gz")}); awsclient.ErrorCode(err) != "AccessDenied" {
		t.Fatalf("read: got %v, want AccessDenied (the role may only write)", err)
	}
	// Without s3:PutObjectAcl a write that sets an ACL is refused, as in AWS.
	st.dir.PutRole(Role{ARN: customerRole, TrustPolicy: mustPolicy(t, referenceTrust, "PRINCIPAL", intermediate, "WORKSPACE", workspace),
		PermissionPolicies: []Policy{mustPolicy(t, referencePermissions, "BUCKET", "cust", `"s3:PutObjectAcl"`, `"s3:PutObjectRetention"`)}})
	if err := put("segment-logs/src/1/b.gz", types.ObjectCannedACLBucketOwnerFullControl); awsclient.ErrorCode(err) != "AccessDenied" {
		t.Fatalf("ACL write without s3:PutObjectAcl: got %v, want AccessDenied", err)
	}
	if err := put("segment-logs/src/1/b.gz", ""); err != nil {
		t.Fatalf("plain write: %v", err)
	}
}

func TestObjectsRoundTripAndSurviveARestart(t *testing.T) {
	st := newStack(t)
	root := credentials.NewStaticCredentialsProvider("AKIAROOT", "root-secret", "")
	cli := st.s3For(root, "us-east-1")
	ctx := context.Background()
	big := make([]byte, 12<<20+123)
	_, _ = rand.Read(big)

	// Multipart, by hand as s3put does it.
	up, err := cli.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("cust"), Key: aws.String("big"), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, off := int32(1), 0; off < len(big); i, off = i+1, off+5<<20 {
		end := min(off+5<<20, len(big))
		out, err := cli.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("cust"), Key: aws.String("big"), UploadId: up.UploadId,
			PartNumber: aws.Int32(i), Body: bytes.NewReader(big[off:end]), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(i), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
	}
	if _, err := cli.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("cust"), Key: aws.String("big"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfNoneMatch: aws.String("*")}); err != nil {
		t.Fatal(err)
	}
	// Over TLS, an unseekable body goes out aws-chunked with a trailing checksum.
	tlsSrv := httptest.NewTLSServer(st.s3srv)
	defer tlsSrv.Close()
	tlsCli := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(tlsSrv.URL), Credentials: root, UsePathStyle: true,
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.TLSClientConfig = tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig
		})})
	if _, err := tlsCli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cust"), Key: aws.String("stream"), Body: io.MultiReader(strings.NewReader("streamed body"))}); err != nil {
		t.Fatalf("unseekable put: %v", err)
	}
	// If-None-Match: * refuses a second write.
	_, err = cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cust"), Key: aws.String("big"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
	if awsclient.ErrorCode(err) != "PreconditionFailed" {
		t.Fatalf("second conditional write: got %v, want PreconditionFailed", err)
	}

	st.s3.Close()
	st.startS3(t)
	cli = st.s3For(root, "us-east-1")
	got, err := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("cust"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(data, big) {
		t.Fatalf("multipart object differs after restart: %d bytes, want %d", len(data), len(big))
	}
	s, _ := cli.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("cust"), Key: aws.String("stream")})
	sd, _ := io.ReadAll(s.Body)
	if string(sd) != "streamed body" {
		t.Fatalf("streamed object = %q", sd)
	}
}

func TestListingPaginatesWithDelimiters(t *testing.T) {
	st := newStack(t)
	cli := st.s3For(credentials.NewStaticCredentialsProvider("AKIAROOT", "root-secret", ""), "us-east-1")
	ctx := context.Background()
	for i := range 7 {
		key := fmt.Sprintf("segment-logs/s%d/day/f.gz", i%3)
		if i >= 3 {
			key = fmt.Sprintf("segment-logs/s0/day/f%d.gz", i)
		}
		if _, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cust"), Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(cli, &s3.ListObjectsV2Input{Bucket: aws.String("cust"), Prefix: aws.String("segment-logs/"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if len(keys) != 7 {
		t.Fatalf("listed %d keys: %v", len(keys), keys)
	}
	out, err := cli.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("cust"), Prefix: aws.String("segment-logs/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CommonPrefixes) != 3 || len(out.Contents) != 0 {
		t.Fatalf("delimiter listing: %d prefixes, %d objects", len(out.CommonPrefixes), len(out.Contents))
	}
}

func TestAWrongRegionIsReportedWithTheBucketsRegion(t *testing.T) {
	st := newStack(t)
	cli := st.s3For(credentials.NewStaticCredentialsProvider("AKIAROOT", "root-secret", ""), "us-east-1")
	_, err := cli.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("eu-bucket"), Key: aws.String("k"), Body: strings.NewReader("x")})
	if awsclient.ErrorCode(err) != "AuthorizationHeaderMalformed" || !strings.Contains(err.Error(), "eu-west-1") {
		t.Fatalf("got %v, want AuthorizationHeaderMalformed naming eu-west-1", err)
	}
}

func TestPolicyEvaluation(t *testing.T) {
	p := mustPolicy(t, `{"Statement":[
		{"Effect":"Allow","Action":"s3:Put*","Resource":["arn:aws:s3:::b/segment-logs/*"]},
		{"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/segment-logs/secret/*"}]}`)
	cases := []struct {
		action, resource string
		want             Decision
	}{
		{"s3:PutObject", "arn:aws:s3:::b/segment-logs/x", Allow},
		{"S3:PUTOBJECT", "arn:aws:s3:::b/segment-logs/x", Allow},
		{"s3:PutObject", "arn:aws:s3:::b/Segment-logs/x", NotApplicable},
		{"s3:PutObject", "arn:aws:s3:::b/segment-logs/secret/x", ExplicitDeny},
		{"s3:GetObject", "arn:aws:s3:::b/segment-logs/x", NotApplicable},
	}
	for _, c := range cases {
		if got := p.Evaluate(AuthzRequest{Principal: userARN, Action: c.action, Resource: c.resource}); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.action, c.resource, got, c.want)
		}
	}
	like := mustPolicy(t, `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"sts:AssumeRole",
		"Condition":{"StringLike":{"sts:ExternalId":"ws-*"}}}]}`)
	if like.Evaluate(AuthzRequest{Principal: intermediate, Action: "sts:AssumeRole", Context: map[string]string{"sts:ExternalId": "ws-1"}}) != Allow {
		t.Error("StringLike with an account principal should allow")
	}
	if like.Evaluate(AuthzRequest{Principal: customerRole, Action: "sts:AssumeRole", Context: map[string]string{"sts:ExternalId": "ws-1"}}) != NotApplicable {
		t.Error("a principal of another account must not match")
	}
	if _, err := ParsePolicy([]byte(`{"Statement":[{"Effect":"Maybe","Action":"*"}]}`)); err == nil || !strings.Contains(err.Error(), "Effect") {
		t.Errorf("bad Effect: %v", err)
	}
}
