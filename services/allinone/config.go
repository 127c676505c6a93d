package allinone

import (
	"errors"
	"fmt"
	"time"

	"github.com/s3dest/s3dest/services/admin"
)

// DevConfig configures `s3dest dev`. Every address accepts port 0 (a free port); the summary file
// reports the real ones. An external NATS, Redis, S3 or STS replaces the embedded one when its URL is set.
type DevConfig struct {
	DataDir     string `flag:"data-dir" env:"S3DEST_DATA_DIR" default:".s3dest" help:"where all state lives; a restart keeps it"`
	SummaryFile string `flag:"summary-file" env:"S3DEST_SUMMARY_FILE" help:"write a JSON summary of addresses and demo credentials here once ready"`
	LogLevel    string `flag:"log-level" env:"S3DEST_LOG_LEVEL" default:"info" help:"debug, info, warn or error"`

	WorkspaceID         string        `flag:"workspace-id" env:"S3DEST_WORKSPACE_ID" help:"the workspace ID (External ID); generated once when empty"`
	IntermediateRoleARN string        `flag:"intermediate-role-arn" env:"S3DEST_INTERMEDIATE_ROLE_ARN" default:"arn:aws:iam::000000000000:role/s3dest-intermediate" help:"our role that customer roles trust"`
	FlushInterval       time.Duration `flag:"flush-interval" env:"S3DEST_FLUSH_INTERVAL" default:"1m" help:"seal a file when its oldest event is this old"`
	MaxFileBytes        int64         `flag:"max-file-bytes" env:"S3DEST_MAX_FILE_BYTES" default:"99000000" help:"seal a file before its compressed size reaches this"`
	DevAWSConfig        string        `flag:"dev-aws-config" env:"S3DEST_DEV_AWS_CONFIG" help:"JSON file of extra buckets and roles for the local S3 and STS"`
	Region              string        `flag:"aws-region" env:"S3DEST_AWS_REGION" oldflag:"region" default:"us-east-1" help:"region of the local S3 and STS"`
	// EnableLegacyS3 is on in dev, unlike in the admin and copier binaries, so the reference's migration
	// from the Amazon S3 destination can be rehearsed; --enable-legacy-s3=false turns it off.
	EnableLegacyS3 bool `flag:"enable-legacy-s3" env:"S3DEST_ENABLE_LEGACY_S3" default:"true" help:"allow Amazon S3 (legacy) destinations, which write as our own principal"`
	// Retention is the admin service's --retention (dev owns the streams in its place).
	Retention  time.Duration `flag:"retention" env:"S3DEST_RETENTION" default:"168h" help:"how long staged files wait for a failing destination before they are dead-lettered (1h to 2160h)"`
	SyncAlways bool          `flag:"sync-always" env:"S3DEST_SYNC_ALWAYS" help:"fsync every JetStream write before acknowledging (survives an OS crash)"`
	// CLILogin writes the admin URL and token to the CLI's login file once ready (s3dest login's file), so
	// that the client commands work with no flags. A DevConfig built in code leaves it off.
	CLILogin bool `flag:"cli-login" env:"S3DEST_CLI_LOGIN" default:"true" help:"log the s3dest CLI in to this dev (its login file gets the admin URL and token)"`
	// JSON prints the summary as one JSON object once ready, instead of the greeting (--json).
	JSON bool

	TrackingAddr string `flag:"tracking-addr" env:"S3DEST_TRACKING_ADDR" default:"127.0.0.1:8080" help:"Tracking API address"`
	AdminAddr    string `flag:"admin-addr" env:"S3DEST_ADMIN_ADDR" default:"127.0.0.1:8081" help:"admin REST API address"`
	GRPCAddr     string `flag:"admin-grpc-addr" env:"S3DEST_ADMIN_GRPC_ADDR" oldflag:"grpc-addr" oldenv:"S3DEST_GRPC_ADDR" default:"127.0.0.1:7000" help:"gRPC address (AdminService, ValidatorService)"`
	S3Addr       string `flag:"s3-addr" env:"S3DEST_S3_ADDR" default:"127.0.0.1:9100" help:"embedded S3 address"`
	STSAddr      string `flag:"sts-addr" env:"S3DEST_STS_ADDR" default:"127.0.0.1:9101" help:"embedded STS address"`
	NATSAddr     string `flag:"nats-addr" env:"S3DEST_NATS_ADDR" default:"127.0.0.1:4222" help:"embedded NATS address"`
	RedisAddr    string `flag:"redis-addr" env:"S3DEST_REDIS_ADDR" default:"127.0.0.1:6390" help:"embedded Redis address"`
	MetricsAddr  string `flag:"ops-addr" env:"S3DEST_OPS_ADDR" oldflag:"metrics-addr" oldenv:"S3DEST_METRICS_ADDR" default:"127.0.0.1:9090" help:"address of /livez, /readyz and /metrics"`

	NATSURL  string `flag:"nats-url" env:"S3DEST_NATS_URL" help:"use this NATS instead of the embedded one"`
	RedisURL string `flag:"redis-url" env:"S3DEST_REDIS_URL" secret:"true" help:"use this Redis instead of the embedded one"`
	// S3URL and STSURL replace the embedded S3 and STS (e.g. MinIO behind the STS gate): they must hold
	// the staging bucket s3dest-staging and the demo bucket, and the demo role trusting our intermediate role.
	S3URL              string `flag:"s3-endpoint" env:"S3DEST_S3_ENDPOINT" oldflag:"s3-url" oldenv:"S3DEST_S3_URL" help:"use this S3 instead of the embedded one (needs --sts-endpoint and keys)"`
	STSURL             string `flag:"sts-endpoint" env:"S3DEST_STS_ENDPOINT" oldflag:"sts-url" oldenv:"S3DEST_STS_URL" help:"use this STS instead of the embedded one"`
	AWSAccessKeyID     string `flag:"aws-access-key-id" env:"S3DEST_AWS_ACCESS_KEY_ID" help:"our principal's access key at --s3-endpoint and --sts-endpoint"`
	AWSSecretAccessKey string `flag:"aws-secret-access-key" env:"S3DEST_AWS_SECRET_ACCESS_KEY" secret:"true" help:"our principal's secret key at --s3-endpoint and --sts-endpoint"`
}

// Validate checks the rules of each field.
func (c DevConfig) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: must be set"))
	}
	if err := admin.CheckRetention(c.Retention); err != nil {
		errs = append(errs, err)
	}
	if c.FlushInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("flush-interval: must be at least 100ms, got %s", c.FlushInterval))
	}
	for name, v := range map[string]string{"tracking-addr": c.TrackingAddr, "admin-addr": c.AdminAddr, "admin-grpc-addr": c.GRPCAddr,
		"s3-addr": c.S3Addr, "sts-addr": c.STSAddr, "nats-addr": c.NATSAddr, "redis-addr": c.RedisAddr, "ops-addr": c.MetricsAddr} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: must be host:port (port 0 picks a free one)", name))
		}
	}
	if (c.S3URL == "") != (c.STSURL == "") {
		errs = append(errs, errors.New("s3-endpoint and sts-endpoint: set both or neither (an external S3 needs an STS that knows its roles)"))
	}
	if c.S3URL != "" && (c.AWSAccessKeyID == "" || c.AWSSecretAccessKey == "") {
		errs = append(errs, errors.New("aws-access-key-id and aws-secret-access-key: must be set with s3-endpoint"))
	}
	return errors.Join(errs...)
}

// GateConfig configures `s3dest sts-gate`: the STS trust gate in front of a real MinIO (DESIGN.md §7) as
// its own process, for the local cluster (DESIGN.md §8).
type GateConfig struct {
	Addr                string `flag:"sts-gate-addr" env:"S3DEST_STS_GATE_ADDR" oldflag:"addr" default:"127.0.0.1:9101" help:"address of the STS (and of PUT /gate/v1/dev-aws-config, GET /readyz)"`
	MinIOURL            string `flag:"minio-url" env:"S3DEST_MINIO_URL" default:"http://127.0.0.1:9000" help:"the MinIO whose temporary credentials the gate hands out"`
	MinIORootUser       string `flag:"minio-root-user" env:"S3DEST_MINIO_ROOT_USER" help:"MinIO's root user: our principal, and the gate's admin"`
	MinIORootPassword   string `flag:"minio-root-password" env:"S3DEST_MINIO_ROOT_PASSWORD" secret:"true" help:"MinIO's root password"`
	StateDir            string `flag:"sts-gate-state-dir" env:"S3DEST_STS_GATE_STATE_DIR" oldflag:"state-dir" help:"keeps the dev configs given by PUT, so a restart knows the same roles; empty keeps them in memory"`
	DevAWSConfig        string `flag:"dev-aws-config" env:"S3DEST_DEV_AWS_CONFIG" help:"JSON file of buckets and roles to add on start (the format of s3dest dev's)"`
	IntermediateRoleARN string `flag:"intermediate-role-arn" env:"S3DEST_INTERMEDIATE_ROLE_ARN" default:"arn:aws:iam::000000000000:role/s3dest-intermediate" help:"our role, trusted by MinIO's root user; empty adds none"`
	Region              string `flag:"aws-region" env:"S3DEST_AWS_REGION" oldflag:"region" default:"us-east-1" help:"region of the STS"`
	LogLevel            string `flag:"log-level" env:"S3DEST_LOG_LEVEL" default:"info" help:"debug, info, warn or error"`
}

// Validate checks the rules of each field.
func (c GateConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("sts-gate-addr: must be host:port (port 0 picks a free one)"))
	}
	if c.MinIOURL == "" {
		errs = append(errs, errors.New("minio-url: must be set"))
	}
	if c.MinIORootUser == "" || c.MinIORootPassword == "" {
		errs = append(errs, errors.New("minio-root-user and minio-root-password: must be set (S3DEST_MINIO_ROOT_USER, S3DEST_MINIO_ROOT_PASSWORD)"))
	}
	return errors.Join(errs...)
}
