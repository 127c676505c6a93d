package admin

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/s3dest/s3dest/pkg/configstore"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
)

// Placeholders of the reference, left in a document when the request does not fill them in.
const (
	bucketPlaceholder    = "<YOUR_BUCKET_NAME>"
	keyPlaceholder       = "<YOUR_KEY_ARN>"
	principalPlaceholder = "<S3DEST_INTERMEDIATE_ROLE_ARN>"
)

var kmsKeyRE = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_+=,.@-]+$`)

// GetWorkspace implements AdminService: the workspace, whose ID is the External ID, and the trust,
// permission and KMS policies a customer attaches to their role, filled in for the requested bucket.
func (s *Server) GetWorkspace(ctx context.Context, req *adminv1.GetWorkspaceRequest) (*adminv1.GetWorkspaceResponse, error) {
	bucket, prefix := bucketPlaceholder, ""
	if req.GetBucket() != "" {
		b, p, err := layout.SplitBucket(req.GetBucket())
		if err == nil {
			err = checkBucketName(b)
		}
		if err != nil {
			return nil, invalid("bucket: %v", err)
		}
		bucket, prefix = b, p
	}
	if r := req.GetRegion(); r != "" && !regions[r] {
		return nil, invalid("region: %q is not an AWS region name, such as us-west-2", r)
	}
	key := keyPlaceholder
	if k := req.GetKmsKeyArn(); k != "" {
		if !kmsKeyRE.MatchString(k) {
			return nil, invalid("kmsKeyArn: must look like arn:aws:kms:REGION:ACCOUNT_ID:key/KEY_ID, got %q", k)
		}
		key = k
	}
	ws, err := s.store.Workspace(ctx)
	if errors.Is(err, configstore.ErrNotFound) {
		return nil, status.Error(codes.FailedPrecondition, "no workspace yet")
	}
	if err != nil {
		return nil, internal(err)
	}
	if ws.GetSlug() == "" {
		ws.Slug = workspaceSlug(ws)
	}
	principal := s.principal
	if principal == "" {
		principal = principalPlaceholder
	}
	setup := &adminv1.IamSetup{
		ExternalId:       ws.GetId(),
		PrincipalArn:     s.principal,
		TrustPolicy:      TrustPolicy(principal, ws.GetId()),
		PermissionPolicy: PermissionPolicy(partition(req.GetRegion()), bucket, prefix),
		KmsPolicy:        KMSPolicy(key),
	}
	return &adminv1.GetWorkspaceResponse{Data: &adminv1.GetWorkspaceResponse_Data{Workspace: ws, IamSetup: setup}}, nil
}

// workspaceSlug is the slug of a workspace stored without one: its name in lowercase, with a hyphen
// for each run of other characters than letters and digits (its ID when nothing is left).
func workspaceSlug(ws *configv1.Workspace) string {
	var b strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(ws.GetName()) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			hyphen = false
		} else {
			hyphen = true
		}
	}
	if b.Len() == 0 {
		return strings.ToLower(ws.GetId())
	}
	return b.String()
}

// partition is the ARN partition of a region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// TrustPolicy is the reference's trust relationship: principal may assume the role only with the
// workspace ID as External ID.
func TrustPolicy(principal, workspaceID string) string {
	return strings.NewReplacer("PRINCIPAL", principal, "WORKSPACE", workspaceID).Replace(`{
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
}`)
}

// PermissionPolicy is the reference's permission policy: PutObject (and its ACL) under
// {bucket}/{prefix}segment-logs/. prefix is empty or ends with "/", as layout.SplitBucket returns it.
func PermissionPolicy(partition, bucket, prefix string) string {
	return strings.NewReplacer("RESOURCE", "arn:"+partition+":s3:::"+bucket+"/"+prefix+layout.Root+"/*").Replace(`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "PutObjectsInBucket",
      "Effect": "Allow",
      "Action": [
        "s3:PutObject",
        "s3:PutObjectAcl"
      ],
      "Resource": "RESOURCE"
    }
  ]
}`)
}

// KMSPolicy is the reference's policy for a bucket encrypted with a KMS key.
func KMSPolicy(keyARN string) string {
	return strings.ReplaceAll(`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AllowKMS",
      "Effect": "Allow",
      "Action": [
        "kms:GenerateDataKey",
        "kms:Decrypt"
      ],
      "Resource": "KEY"
    }
  ]
}`, "KEY", keyARN)
}
