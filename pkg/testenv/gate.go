package testenv

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3dest/s3dest/pkg/localaws"
)

// Gate is the STS trust gate in front of a MinIO (DESIGN.md §7), as `s3dest sts-gate` runs it
// (localaws.Gate): an STS that checks SigV4, evaluates each role's trust policy (Principal,
// sts:ExternalId) and, on Allow, hands out real MinIO temporary credentials limited by the role's
// permission policies, which MinIO then enforces.
type Gate struct {
	URL   string
	MinIO *MinIOServer
	// Dir holds the gate's principals and roles: add roles with Dir.PutRole.
	Dir *localaws.Directory
	// Principal is our own principal (MinIO's root user), trusted by roles that name PrincipalARN.
	PrincipalARN string
	gate         *localaws.Gate
}

// PrincipalARN is the ARN the gate gives MinIO's root user.
const PrincipalARN = localaws.GatePrincipalARN

// StartGate starts MinIO and the gate in front of it.
func StartGate(t testing.TB) *Gate {
	t.Helper()
	m := MinIO(t)
	g, err := localaws.NewGate(localaws.GateConfig{
		MinIOURL: m.URL, RootUser: m.RootUser, RootPassword: m.RootPassword, Region: "us-east-1", HTTPClient: awshttp.NewBuildableClient(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return &Gate{URL: srv.URL, MinIO: m, Dir: g.Dir, PrincipalARN: PrincipalARN, gate: g}
}

// RootS3 is an S3 client of MinIO's root user, for tests to arrange and inspect buckets.
func (g *Gate) RootS3() *s3.Client {
	return localaws.MinIOS3(g.MinIO.URL, g.MinIO.RootUser, g.MinIO.RootPassword, "us-east-1", awshttp.NewBuildableClient())
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
	if err := g.gate.PutIntermediateRole(arn); err != nil {
		t.Fatal(err)
	}
}
