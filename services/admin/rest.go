package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
)

// tokenCheck compares bearer tokens in constant time; only the token's digest is kept.
type tokenCheck [sha256.Size]byte

func newTokenCheck(token string) tokenCheck { return sha256.Sum256([]byte(token)) }

// check returns Unauthenticated for a missing token and PermissionDenied for a wrong one.
func (t tokenCheck) check(header string) error {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || tok == "" {
		return status.Error(codes.Unauthenticated, "Authorization: a bearer token is required (Authorization: Bearer <token>)")
	}
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], t[:]) != 1 {
		return status.Error(codes.PermissionDenied, "Authorization: the bearer token is not valid")
	}
	return nil
}

// UnaryAuth requires the bearer token in the `authorization` metadata of every gRPC call.
func UnaryAuth(token string) grpc.UnaryServerInterceptor {
	tc := newTokenCheck(token)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		var h string
		if v := md.Get("authorization"); len(v) > 0 {
			h = v[0]
		}
		if err := tc.check(h); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// RESTHandler is the Segment-Public-API-shaped REST face of srv: grpc-gateway over the same methods,
// answers wrapped in {"data": ...} (the messages are shaped that way), errors as
// {"errors":[{"type","message"}]}, and the bearer token required on every path.
func RESTHandler(ctx context.Context, srv *Server, token string) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithErrorHandler(writeError),
		runtime.WithRoutingErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			msg := "no such endpoint: " + r.Method + " " + r.URL.Path
			if code == http.StatusMethodNotAllowed {
				msg = "method " + r.Method + " is not allowed on " + r.URL.Path
			}
			writeErrors(w, code, errorType(code), msg)
		}),
	)
	if err := adminv1.RegisterAdminServiceHandlerServer(ctx, mux, srv); err != nil {
		return nil, err
	}
	tc := newTokenCheck(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := tc.check(r.Header.Get("Authorization")); err != nil {
			writeError(r.Context(), mux, nil, w, r, err)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// writeError renders a gRPC status the way Segment's Public API renders errors.
func writeError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	st := status.Convert(err)
	code := runtime.HTTPStatusFromCode(st.Code())
	msg := st.Message()
	if st.Code() == codes.Internal || st.Code() == codes.Unknown {
		msg = "internal error"
	}
	if st.Code() == codes.InvalidArgument && strings.Contains(msg, "unknown field") {
		msg = "body: " + msg
	}
	writeErrors(w, code, errorType(code), msg)
}

func errorType(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "validation"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not-found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusMethodNotAllowed:
		return "method-not-allowed"
	}
	return "internal"
}

func writeErrors(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"type": typ, "message": msg}}})
}
