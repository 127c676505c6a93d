package platform

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MinTokenLen is the shortest bearer token a service accepts in its configuration.
const MinTokenLen = 16

// BearerToken is a secret a caller presents as "Authorization: Bearer <token>": an HTTP header, or the
// gRPC metadata key "authorization". Only the token's SHA-256 is kept, and compared in constant time.
type BearerToken struct{ digest [sha256.Size]byte }

// NewBearerToken keeps token's digest.
func NewBearerToken(token string) BearerToken { return BearerToken{sha256.Sum256([]byte(token))} }

// Check returns Unauthenticated for a missing token and PermissionDenied for a wrong one (the REST
// gateway answers 401 and 403). An empty token is never accepted.
func (t BearerToken) Check(header string) error {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || tok == "" {
		return status.Error(codes.Unauthenticated, "Authorization: a bearer token is required (Authorization: Bearer <token>)")
	}
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], t.digest[:]) != 1 {
		return status.Error(codes.PermissionDenied, "Authorization: the bearer token is not valid")
	}
	return nil
}

// BearerCredentials sends the token with every call of a gRPC client (grpc.WithPerRPCCredentials). It
// does not require TLS: s3dest's gRPC runs on loopback or a cluster network, whose encryption (a mesh's
// mTLS) is the deployment's.
type BearerCredentials string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b BearerCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (BearerCredentials) RequireTransportSecurity() bool { return false }

// CheckSecret is the Validate rule of a required secret setting (given by value, or read by Bind from
// the file named by NAME-file): it is set and has at least minLen characters. Errors never hold it.
func CheckSecret(name, value string, minLen int) error {
	switch {
	case value == "":
		return fmt.Errorf("%s: must be set (or %s-file naming a file that holds it), at least %d characters", name, name, minLen)
	case len(value) < minLen:
		return fmt.Errorf("%s: must be at least %d characters, got %d", name, minLen, len(value))
	}
	return nil
}
