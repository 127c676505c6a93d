package localaws

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// MinIOIssuer asks a real MinIO for the credentials of a role session: MinIO's AssumeRole as its root
// user, with the role's permission policies as the session policy. MinIO then enforces those policies
// on every S3 request, so tests exercise a real S3 implementation's authorization.
type MinIOIssuer struct {
	Endpoint, AccessKey, SecretKey, Region string
	HTTPClient                             aws.HTTPClient
}

// Issue implements Issuer.
func (m *MinIOIssuer) Issue(ctx context.Context, role Role, _ string, d time.Duration) (Identity, error) {
	policy, err := minioPolicy(role.PermissionPolicies)
	if err != nil {
		return Identity{}, err
	}
	c := sts.New(sts.Options{
		Region:       m.Region,
		BaseEndpoint: aws.String(m.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		HTTPClient:   m.HTTPClient,
	})
	out, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(role.ARN),
		RoleSessionName: aws.String("s3dest"),
		Policy:          aws.String(policy),
		DurationSeconds: aws.Int32(int32(max(d, 15*time.Minute) / time.Second)),
	})
	if err != nil {
		return Identity{}, fmt.Errorf("minio assume role: %w", err)
	}
	cr := out.Credentials
	return Identity{
		AccessKeyID: aws.ToString(cr.AccessKeyId), SecretAccessKey: aws.ToString(cr.SecretAccessKey),
		SessionToken: aws.ToString(cr.SessionToken), Expires: aws.ToTime(cr.Expiration),
	}, nil
}

// minioPolicy merges the role's policies into one session policy MinIO accepts: only s3: actions
// (MinIO has no s3:PutObjectAcl, and sts: or kms: actions mean nothing to it); a role with none gets a
// policy that allows nothing useful.
func minioPolicy(policies []Policy) (string, error) {
	var out Policy
	out.Version = "2012-10-17"
	for _, p := range policies {
		for _, s := range p.Statement {
			var actions StringList
			for _, a := range s.Action {
				la := strings.ToLower(a)
				if (strings.HasPrefix(la, "s3:") || la == "*") && la != "s3:putobjectacl" && la != "s3:getobjectacl" {
					if la == "*" {
						a = "s3:*"
					}
					actions = append(actions, a)
				}
			}
			if len(actions) == 0 {
				continue
			}
			res := s.Resource
			if len(res) == 0 {
				res = StringList{"arn:aws:s3:::*"}
			}
			out.Statement = append(out.Statement, Statement{Sid: s.Sid, Effect: s.Effect, Action: actions, Resource: res, Condition: s.Condition})
		}
	}
	if len(out.Statement) == 0 {
		out.Statement = []Statement{{Effect: "Allow", Action: StringList{"s3:GetBucketLocation"}, Resource: StringList{"arn:aws:s3:::s3dest-nothing"}}}
	}
	b, err := json.Marshal(out)
	return string(b), err
}
