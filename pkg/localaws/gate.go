package localaws

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// GatePrincipalARN is the ARN the gate gives MinIO's root user: our own principal, which our
// intermediate role trusts.
const GatePrincipalARN = "arn:aws:iam::" + DefaultAccountID + ":user/s3dest"

// GateDevConfigPath is where the gate takes a dev AWS config (PUT, the --dev-aws-config format), signed
// in with HTTP Basic auth as MinIO's root user: how a running cluster gets its buckets and roles.
const GateDevConfigPath = "/gate/v1/dev-aws-config"

// GateConfig configures the STS trust gate in front of a MinIO (DESIGN.md §7).
type GateConfig struct {
	MinIOURL, RootUser, RootPassword, Region string
	HTTPClient                               aws.HTTPClient
	// StateDir, when set, keeps every dev config the gate was given, so a restarted gate knows the
	// same roles. Empty keeps them in memory only.
	StateDir string
	Logger   *slog.Logger
}

// Gate is the STS trust gate: an STS that checks SigV4, evaluates each role's trust policy (Principal,
// sts:ExternalId) and, on Allow, hands out real MinIO temporary credentials limited by the role's
// permission policies, which MinIO then enforces. The roles live in Dir; MinIO holds the buckets.
type Gate struct {
	Dir *Directory
	cfg GateConfig
	sts *STSServer
	mux *http.ServeMux
}

// NewGate builds a gate with MinIO's root user as our principal (GatePrincipalARN), and replays the
// dev configs kept in StateDir. It does no network I/O.
func NewGate(cfg GateConfig) (*Gate, error) {
	if cfg.MinIOURL == "" || cfg.RootUser == "" || cfg.RootPassword == "" {
		return nil, errors.New("sts gate: the MinIO URL and its root user and password are required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir := NewDirectory()
	dir.AddIdentity(Identity{AccessKeyID: cfg.RootUser, SecretAccessKey: cfg.RootPassword, PrincipalARN: GatePrincipalARN, Admin: true})
	sts, err := NewSTSServer(dir, STSConfig{
		Region: cfg.Region, Logger: cfg.Logger,
		Issuer: &MinIOIssuer{Endpoint: cfg.MinIOURL, AccessKey: cfg.RootUser, SecretKey: cfg.RootPassword, Region: cfg.Region, HTTPClient: cfg.HTTPClient},
	})
	if err != nil {
		return nil, err
	}
	g := &Gate{Dir: dir, cfg: cfg, sts: sts, mux: http.NewServeMux()}
	g.mux.HandleFunc("PUT "+GateDevConfigPath, g.putDevConfig)
	g.mux.Handle("/", sts)
	if cfg.StateDir != "" {
		if err := g.replay(); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// ServeHTTP answers STS's Query API, and PUT GateDevConfigPath.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// PutIntermediateRole adds our intermediate role: trusted by our principal, allowed to assume any role.
func (g *Gate) PutIntermediateRole(arn string) error {
	trust, err := ParsePolicy(fmt.Appendf(nil, `{"Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole"}]}`, GatePrincipalARN))
	if err != nil {
		return err
	}
	perm, err := ParsePolicy([]byte(`{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`))
	if err != nil {
		return err
	}
	g.Dir.PutRole(Role{ARN: arn, TrustPolicy: trust, PermissionPolicies: []Policy{perm}})
	return nil
}

// RootS3 is an S3 client of MinIO's root user.
func (g *Gate) RootS3() *s3.Client {
	return MinIOS3(g.cfg.MinIOURL, g.cfg.RootUser, g.cfg.RootPassword, g.cfg.Region, g.cfg.HTTPClient)
}

// MinIOS3 is an S3 client of a MinIO user (path-style addressing, as MinIO needs).
func MinIOS3(endpoint, user, password, region string, hc aws.HTTPClient) *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(user, password, ""),
		HTTPClient:   hc,
	})
}

// Apply adds a dev config's roles and users to the gate and creates its buckets in MinIO (an existing
// bucket is fine). MinIO knows no bucket policies or accounts: only the names count.
func (g *Gate) Apply(ctx context.Context, c DevConfig) error {
	for _, b := range c.Buckets {
		_, err := g.RootS3().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.Name)})
		var owned *types.BucketAlreadyOwnedByYou
		var exists *types.BucketAlreadyExists
		if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
			return fmt.Errorf("create bucket %s: %w", b.Name, err)
		}
	}
	c.Apply(g.Dir)
	return nil
}

// ApplyAndKeep applies a dev config and, with a StateDir, keeps it for the next start.
func (g *Gate) ApplyAndKeep(ctx context.Context, raw []byte) error {
	c, err := ParseDevConfig(raw)
	if err != nil {
		return err
	}
	if err := g.Apply(ctx, c); err != nil {
		return err
	}
	if g.cfg.StateDir == "" {
		return nil
	}
	dir := filepath.Join(g.cfg.StateDir, "dev-aws-config")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	name := filepath.Join(dir, strconv.FormatInt(time.Now().UnixNano(), 10)+".json")
	if err := os.WriteFile(name+".tmp", raw, 0o600); err != nil {
		return err
	}
	return os.Rename(name+".tmp", name)
}

// replay adds the roles and users of the kept dev configs, oldest first (their buckets are in MinIO).
func (g *Gate) replay() error {
	dir := filepath.Join(g.cfg.StateDir, "dev-aws-config")
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		c, err := LoadDevConfig(name)
		if err != nil {
			return fmt.Errorf("sts gate state %s: %w", name, err)
		}
		c.Apply(g.Dir)
	}
	return nil
}

func (g *Gate) putDevConfig(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(g.cfg.RootUser)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(g.cfg.RootPassword)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="sts-gate"`)
		http.Error(w, "sign in as MinIO's root user (HTTP Basic auth)", http.StatusUnauthorized)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "dev AWS config: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := ParseDevConfig(raw); err != nil {
		http.Error(w, "dev AWS config: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := g.ApplyAndKeep(r.Context(), raw); err != nil {
		g.cfg.Logger.Error("apply a dev AWS config", "err", err)
		http.Error(w, "apply the dev AWS config: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
