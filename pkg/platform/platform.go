// Package platform is the plumbing every s3dest process shares: structured logs that carry trace IDs,
// OpenTelemetry traces and metrics configured from the standard OTEL_* variables, connections to NATS
// and Redis, the operational HTTP server (/livez, /readyz, /metrics), and the constructors of every HTTP
// and gRPC server (timeouts, message bounds, keepalive rules, bearer-token authentication).
package platform
