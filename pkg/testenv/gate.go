package testenv

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/localaws"
)

// Gate is the STS trust gate in front of a MinIO (DESIGN.md §7): an STS that checks SigV4, evaluates
// each role's trust policy (Principal, sts:ExternalId) and, on Allow, hands out real MinIO temporary
// credentials limited by the role's permission policies, which MinIO then enforces.
type Gate struct {
	URL   string
	MinIO *MinIOServer
	// Dir holds the gate's principals and roles: add roles with Dir.PutRole.
	Dir *localaws.Directory
	// Principal is our own principal (MinIO's root user), trusted by roles that name PrincipalARN.
	PrincipalARN string
}

// PrincipalARN is the ARN the gate gives MinIO's root user.
const PrincipalARN = "arn:aws:iam::" + localaws.DefaultAccountID + ":user/s3dest"

// StartGate starts MinIO and the gate in front of it.
func StartGate(t testing.TB) *Gate {
	t.Helper()
	m := MinIO(t)
	dir := localaws.NewDirectory()
	dir.AddIdentity(localaws.Identity{
		AccessKeyID: m.RootUser, SecretAccessKey: m.RootPassword, PrincipalARN: PrincipalARN, Admin: true,
	})
	sts, err := localaws.NewSTSServer(dir, localaws.STSConfig{
		Region: "us-east-1",
		Issuer: &localaws.MinIOIssuer{Endpoint: m.URL, AccessKey: m.RootUser, SecretKey: m.RootPassword, Region: "us-east-1", HTTPClient: awshttp.NewBuildableClient()},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sts)
	t.Cleanup(srv.Close)
	return &Gate{URL: srv.URL, MinIO: m, Dir: dir, PrincipalARN: PrincipalARN}
}

// RootS3 is an S3 client of MinIO's root user, for tests to arrange and inspect buckets.
func (g *Gate) RootS3() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(g.MinIO.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(g.MinIO.RootUser, g.MinIO.RootPassword, ""),
		HTTPClient:   awshttp.NewBuildableClient(),
	})
}

// CreateBucket creates a bucket in MinIO.
func (g *Gate) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := g.RootS3().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// PutIntermediateRole adds our intermediate role: trusted by our principal, allowed to assume any role.
func (g *Gate) PutIntermediateRole(t testing.TB, arn string) {
	t.Helper()
	trust, err := localaws.ParsePolicy(fmt.Appendf(nil, `{"Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole"}]}`, g.PrincipalARN))
	if err != nil {
		t.Fatal(err)
	}
	perm, err := localaws.ParsePolicy([]byte(`{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	g.Dir.PutRole(localaws.Role{ARN: arn, TrustPolicy: trust, PermissionPolicies: []localaws.Policy{perm}})
}
