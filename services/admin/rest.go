package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	"github.com/s3dest/s3dest/pkg/platform"
)

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
	tc := platform.NewBearerToken(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := tc.Check(r.Header.Get("Authorization")); err != nil {
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
