package allinone

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/s3dest/s3dest/pkg/localaws"
	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/services/admin"
)

// The demo customer: an account of its own, with the bucket and role a customer creates by following
// the reference.
const (
	demoAccount    = "111111111111"
	demoBucket     = "s3dest-demo"
	demoRoleARN    = "arn:aws:iam::" + demoAccount + ":role/s3dest-demo"
	stagingBucket  = "s3dest-staging"
	serviceUserARN = "arn:aws:iam::" + localaws.DefaultAccountID + ":user/s3dest"
)

// s3BodyTimeout bounds reading a request and writing an answer of the local S3, so it takes and gives
// whole objects: a file is up to 100 MB, about 13 minutes at 1 Mbit/s, so a slow link still gets
// through while a stalled client is let go.
const s3BodyTimeout = 15 * time.Minute

// localAWS is the embedded S3 and STS with the accounts of the dev stack.
type localAWS struct {
	dir      *localaws.Directory
	s3srv    *localaws.S3Server
	s3, sts  *httpServer
	stopS3   func()
	stopSTS  func()
	external bool
}

func (a *localAWS) stop() {
	a.stopSTS()
	a.stopS3()
}

// startLocalAWS sets up our principal and intermediate role, the staging bucket, the demo customer's
// bucket and role (with the reference's trust and permission policies, so the External ID is the
// workspace ID), and whatever --dev-aws-config adds.
func startLocalAWS(cfg DevConfig, sec secrets, workspaceID string, log *slog.Logger) (*localAWS, error) {
	dir := localaws.NewDirectory()
	dir.AddIdentity(localaws.Identity{
		AccessKeyID: sec.RootAccessKey, SecretAccessKey: sec.RootSecretKey,
		PrincipalARN: "arn:aws:iam::" + localaws.DefaultAccountID + ":root", Admin: true,
	})
	allowAll, err := localaws.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`))
	if err != nil {
		return nil, err
	}
	dir.AddIdentity(localaws.Identity{
		AccessKeyID: sec.ServiceAccessKey, SecretAccessKey: sec.ServiceSecretKey,
		PrincipalARN: serviceUserARN, Policies: []localaws.Policy{allowAll},
	})
	if cfg.IntermediateRoleARN != "" {
		trust, err := localaws.ParsePolicy(fmt.Appendf(nil, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
			"Principal":{"AWS":%q},"Action":"sts:AssumeRole"}]}`, serviceUserARN))
		if err != nil {
			return nil, err
		}
		assume, err := localaws.ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`))
		if err != nil {
			return nil, err
		}
		dir.PutRole(localaws.Role{ARN: cfg.IntermediateRoleARN, TrustPolicy: trust, PermissionPolicies: []localaws.Policy{assume}})
	}
	demoTrust, err := localaws.ParsePolicy([]byte(trustPolicy(cfg.IntermediateRoleARN, workspaceID)))
	if err != nil {
		return nil, err
	}
	demoPerms, err := localaws.ParsePolicy([]byte(permissionPolicy(demoBucket)))
	if err != nil {
		return nil, err
	}
	dir.PutRole(localaws.Role{ARN: demoRoleARN, TrustPolicy: demoTrust, PermissionPolicies: []localaws.Policy{demoPerms}})

	s3srv, err := localaws.NewS3Server(dir, localaws.S3Config{DataDir: filepath.Join(cfg.DataDir, "s3"), Region: cfg.Region, Logger: log.With("component", "local-s3")})
	if err != nil {
		return nil, err
	}
	buckets := []localaws.Bucket{
		{Name: stagingBucket, Region: cfg.Region, Account: localaws.DefaultAccountID},
		{Name: demoBucket, Region: cfg.Region, Account: demoAccount},
	}
	if cfg.DevAWSConfig != "" {
		extra, err := localaws.LoadDevConfig(cfg.DevAWSConfig)
		if err != nil {
			return nil, fmt.Errorf("dev-aws-config: %w", err)
		}
		extra.Apply(dir)
		buckets = append(buckets, extra.Buckets...)
	}
	for _, b := range buckets {
		if b.Region == "" {
			b.Region = cfg.Region
		}
		if err := s3srv.EnsureBucket(b); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", b.Name, err)
		}
	}
	stssrv, err := localaws.NewSTSServer(dir, localaws.STSConfig{Region: cfg.Region, Issuer: localaws.LocalIssuer{}, Logger: log.With("component", "local-sts")})
	if err != nil {
		return nil, err
	}
	a := &localAWS{dir: dir, s3srv: s3srv}
	if a.s3, err = listenHTTP("local-s3", cfg.S3Addr, s3srv, platform.HTTPTimeouts{Read: s3BodyTimeout, Write: s3BodyTimeout}); err != nil {
		return nil, err
	}
	if a.sts, err = listenHTTP("local-sts", cfg.STSAddr, stssrv, platform.HTTPTimeouts{}); err != nil {
		return nil, err
	}
	a.stopS3 = a.s3.serveBackground()
	a.stopSTS = a.sts.serveBackground()
	return a, nil
}

// trustPolicy is the reference's trust relationship, with our intermediate role as the Principal.
func trustPolicy(principal, workspaceID string) string {
	return admin.TrustPolicy(principal, workspaceID)
}

// permissionPolicy is the reference's permission policy for a bucket.
func permissionPolicy(bucket string) string { return admin.PermissionPolicy("aws", bucket, "") }
