package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/s3dest/s3dest/pkg/awsclient"
	"github.com/s3dest/s3dest/pkg/localaws"
)

const (
	gateWorkspace = "ws-gate-test"
	gateRole      = "arn:aws:iam::111111111111:role/customer"
)

func setUpCustomerRole(t *testing.T, g *Gate, bucket string) {
	t.Helper()
	trust, err := localaws.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Principal":{"AWS":"` + g.PrincipalARN + `"},"Action":"sts:AssumeRole",
		"Condition":{"StringEquals":{"sts:ExternalId":"` + gateWorkspace + `"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	perms, err := localaws.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Sid":"PutObjectsInBucket","Effect":"Allow",
		"Action":["s3:PutObject","s3:PutObjectAcl"],"Resource":"arn:aws:s3:::` + bucket + `/segment-logs/*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	g.Dir.PutRole(localaws.Role{ARN: gateRole, TrustPolicy: trust, PermissionPolicies: []localaws.Policy{perms}})
}

func gateSTS(g *Gate) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(g.URL), HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(g.MinIO.RootUser, g.MinIO.RootPassword, "")})
}

func TestTheGateRefusesARoleWithoutTheRequiredExternalID(t *testing.T) {
	g := StartGate(t)
	setUpCustomerRole(t, g, "cust")
	for name, ext := range map[string]*string{"no External ID": nil, "a wrong External ID": aws.String("ws-other")} {
		_, err := gateSTS(g).AssumeRole(context.Background(), &sts.AssumeRoleInput{
			RoleArn: aws.String(gateRole), RoleSessionName: aws.String("gate-test"), ExternalId: ext})
		if awsclient.ErrorCode(err) != "AccessDenied" {
			t.Errorf("%s: got %v, want AccessDenied", name, err)
		}
	}
	if _, err := gateSTS(g).AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String(gateRole), RoleSessionName: aws.String("gate-test"), ExternalId: aws.String(gateWorkspace)}); err != nil {
		t.Fatalf("with the workspace ID: %v", err)
	}
}

func TestMinIOCredentialsFromTheGateWriteOnlyUnderSegmentLogs(t *testing.T) {
	g := StartGate(t)
	g.CreateBucket(t, "cust")
	setUpCustomerRole(t, g, "cust")
	out, err := gateSTS(g).AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String(gateRole), RoleSessionName: aws.String("gate-test"), ExternalId: aws.String(gateWorkspace)})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	cli := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(g.MinIO.URL), UsePathStyle: true, HTTPClient: awshttp.NewBuildableClient(),
		Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))})
	ctx := context.Background()
	if _, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cust"), Key: aws.String("segment-logs/s/1/f.gz"),
		Body: strings.NewReader("ok"), ACL: types.ObjectCannedACLBucketOwnerFullControl}); err != nil {
		t.Fatalf("write under segment-logs/: %v", err)
	}
	for _, key := range []string{"other/f.gz", "f.gz"} {
		_, err := cli.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cust"), Key: aws.String(key), Body: strings.NewReader("no")})
		if awsclient.ErrorCode(err) != "AccessDenied" {
			t.Errorf("write %s: got %v, want AccessDenied", key, err)
		}
	}
}
