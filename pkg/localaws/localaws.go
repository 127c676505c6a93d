// Package localaws is a small, faithful stand-in for the parts of AWS that s3dest touches: IAM policy
// documents, SigV4 request signing, STS AssumeRole (with trust policies and role chaining) and an
// S3-compatible object store that enforces the permission policies of the role behind each request.
//
// `s3dest dev` runs the STS and S3 servers in-process so a user can rehearse a customer's IAM setup on a
// laptop; the test environment runs the same STS in front of a real MinIO (see MinIOIssuer), so trust
// policies are enforced by this package and permission policies by MinIO itself.
//
// Ownership: a Directory is the single source of truth for who a signing key belongs to and which roles
// exist. The STS server adds session identities to it; the S3 server only reads it.
package localaws

import (
	"context"
	"time"
)

// DefaultAccountID is the account that owns the dev stack's own principals and buckets.
const DefaultAccountID = "000000000000"

// Identity is one set of signing credentials and the principal they act as.
type Identity struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // empty for long-term user keys

	// PrincipalARN is what trust policies match against: a user ARN
	// ("arn:aws:iam::000000000000:user/s3dest") for long-term keys, or the role ARN
	// ("arn:aws:iam::111111111111:role/r") for a session of an assumed role.
	PrincipalARN string
	// RoleARN is set for role sessions; their S3 requests are judged by the role's permission policies.
	RoleARN     string
	SessionName string
	// Expires is zero for long-term keys.
	Expires time.Time
	// Chained is true when this session was obtained by a role session assuming another role;
	// AWS caps such sessions at one hour.
	Chained bool
	// Admin identities (the dev stack's root) may do anything; they bypass policy evaluation.
	Admin bool
	// Policies of a non-admin user (long-term keys). Role sessions use the role's policies instead.
	Policies []Policy
}

// Role is an IAM role: who may assume it (TrustPolicy) and what its sessions may do.
type Role struct {
	ARN                string
	TrustPolicy        Policy
	PermissionPolicies []Policy
	// MaxSessionDuration defaults to one hour.
	MaxSessionDuration time.Duration
}

// Bucket is an S3 bucket of the local store.
type Bucket struct {
	Name   string
	Region string // defaults to the server's region
	// Account owns the bucket; defaults to DefaultAccountID.
	Account string
	// Policy is the optional bucket policy (resource-based); it can grant other principals access.
	Policy *Policy
}

// Issuer mints the temporary credentials of a role session once the STS has decided to allow it.
// LocalIssuer mints random keys for the in-process S3 server; MinIOIssuer asks a real MinIO for
// credentials restricted to the role's permission policies.
type Issuer interface {
	Issue(ctx context.Context, role Role, sessionName string, duration time.Duration) (Identity, error)
}
