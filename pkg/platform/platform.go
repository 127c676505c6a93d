// Package platform is the plumbing every s3dest process shares: structured logs that carry trace IDs,
// OpenTelemetry traces and metrics configured from the standard OTEL_* variables, connections to NATS
// and Redis, and the operational HTTP server (/livez, /readyz, /metrics).
package platform
