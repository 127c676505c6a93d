package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	"github.com/s3dest/s3dest/pkg/platform"
)

// RESTHandler is the Segment-Public-API-shaped REST face of srv: grpc-gateway over the same methods,
// answers wrapped in {"data": ...} (the messages are shaped that way), errors as
// {"errors":[{"type","message"}]}, and the bearer token required on every path. It also serves the web
// console under ConsolePath, whose pages call the same paths with a session cookie instead of the
// token (session.go).
func RESTHandler(ctx context.Context, srv *Server, token string) (http.Handler, error) {
	return restHandler(ctx, srv, token, newSessions(time.Now))
}

// restHandler is RESTHandler with the console's sessions given (a test sets their clock).
func restHandler(ctx context.Context, srv *Server, token string, sess *sessions) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		// grpc-gateway keeps the query parser process-wide; this one reads the dotted form as before.
		runtime.SetQueryParameterParser(bracketQueryParser{}),
		runtime.WithForwardResponseOption(createdStatus),
		runtime.WithErrorHandler(writeError),
		runtime.WithRoutingErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			msg := "no such endpoint: " + r.Method + " " + r.URL.Path
			if code == http.StatusMethodNotAllowed {
				msg = "method " + r.Method + " is not allowed on " + r.URL.Path
			}
			if route, ok := segmentRoute(r.URL.Path); ok {
				code, msg = http.StatusNotImplemented, "s3dest does not implement "+r.Method+" "+route+" of Segment's Public API: "+
					"it implements the workspace, sources, write keys, destinations and the catalog of its two destinations"
			}
			writeErrors(w, code, errorType(code), msg)
		}),
	)
	if err := adminv1.RegisterAdminServiceHandlerServer(ctx, mux, srv); err != nil {
		return nil, err
	}
	tc := platform.NewBearerToken(token)
	console := consoleHandler(tc, sess)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == strings.TrimSuffix(ConsolePath, "/") {
			http.Redirect(w, r, ConsolePath, http.StatusMovedPermanently)
			return
		}
		if strings.HasPrefix(r.URL.Path, ConsolePath) {
			console.ServeHTTP(w, r)
			return
		}
		if err := authorize(r, tc, sess); err != nil {
			writeError(r.Context(), mux, nil, w, r, err)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// authorize admits a call with the bearer token or, when it carries no Authorization header, with a
// console session (its cookie, and its CSRF token when the call changes state). A call with neither is
// told to bring the bearer token, as before the console existed.
func authorize(r *http.Request, tc platform.BearerToken, sess *sessions) error {
	if r.Header.Get("Authorization") == "" {
		if c, err := r.Cookie(SessionCookie); err == nil {
			return sess.check(r, c.Value)
		}
	}
	return tc.Check(r.Header.Get("Authorization"))
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
	if st.Code() == codes.InvalidArgument {
		// Segment answers a request it understood but refuses with 422, and its SDKs decode the
		// error body of a 422 (not of a 400).
		code = http.StatusUnprocessableEntity
	}
	writeErrors(w, code, errorType(code), msg)
}

func errorType(code int) string {
	switch code {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
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
	case http.StatusNotImplemented:
		return "not-implemented"
	}
	return "internal"
}

func writeErrors(w http.ResponseWriter, code int, typ, msg string) {
	e := map[string]string{"type": typ, "message": msg}
	if code == http.StatusUnprocessableEntity {
		if f := fieldRE.FindStringSubmatch(msg); f != nil {
			e["field"] = f[1]
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{e}})
}

// fieldRE finds the field a refusal names first: its messages start "settings.region: ...".
var fieldRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*): `)

// createdStatus answers 201 where Segment's API does: a created source. (Segment answers a created
// destination with 200, as its SDK's types say.)
func createdStatus(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	if _, ok := m.(*adminv1.CreateSourceResponse); ok {
		w.WriteHeader(http.StatusCreated)
	}
	return nil
}

// bracketQueryParser reads Segment's SDK query form, `pagination[count]=1&pagination[cursor]=c` (the
// qs encoding of a nested object), as the dotted form `pagination.count` that grpc-gateway reads; a
// dotted key works as before.
type bracketQueryParser struct{}

func (bracketQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	dotted := make(url.Values, len(values))
	for k, v := range values {
		dotted[bracketsToDots(k)] = append(dotted[bracketsToDots(k)], v...)
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, dotted, filter)
}

// bracketsToDots turns `a[b][c]` into `a.b.c`; a key without brackets is returned as it is.
func bracketsToDots(k string) string {
	if !strings.Contains(k, "[") {
		return k
	}
	return strings.NewReplacer("][", ".", "[", ".", "]", "").Replace(k)
}

// segmentRoutes are the paths of Segment's Public API (those of its SDK's 47.0.0) that s3dest does
// not route: a call to one is answered 501 in Segment's error shape, any other unknown path 404.
var segmentRoutes = strings.Fields(`
/audit-events /catalog/destinations /catalog/sources /catalog/sources/{} /catalog/warehouses
/catalog/warehouses/{} /delivery-overview/{} /destination/filters/preview /destination/{}/filters
/destination/{}/filters/{} /destinations/{}/delivery-metrics /destinations/{}/subscriptions
/destinations/{}/subscriptions/{} /echo /events/volume /functions /functions/{} /functions/{}/deploy
/functions/{}/versions /functions/{}/versions/{} /group/{}/users /groups /groups/{} /groups/{}/invites
/groups/{}/permissions /groups/{}/users /insert-function-instances /insert-function-instances/{} /invites
/labels /labels/{}/{} /regulations /regulations/cloudsources/{} /regulations/sources/{} /regulations/{}
/reverse-etl-models /reverse-etl-models/{} /reverse-etl-models/{}/syncs/{} /reverse-etl-syncs /roles
/sources/{}/connected-destinations /sources/{}/connected-warehouses /sources/{}/edge-functions
/sources/{}/edge-functions/disable /sources/{}/edge-functions/latest /sources/{}/edge-functions/upload-url
/sources/{}/labels /sources/{}/settings /spaces /spaces/{} /spaces/{}/audiences /spaces/{}/audiences/{}
/spaces/{}/computed-traits /spaces/{}/computed-traits/{} /spaces/{}/messaging-subscriptions
/spaces/{}/messaging-subscriptions/batch /spaces/{}/profiles-warehouses /spaces/{}/profiles-warehouses/{}
/spaces/{}/profiles-warehouses/{}/selective-syncs /suppressions /tracking-plans /tracking-plans/{}
/tracking-plans/{}/rules /tracking-plans/{}/sources /transformations /transformations/{}
/usage/api-calls/daily /usage/api-calls/sources/daily /usage/mtu/daily /usage/mtu/sources/daily /users
/users/{} /users/{}/groups /users/{}/permissions /warehouses /warehouses/validation /warehouses/{}
/warehouses/{}/advanced-sync-schedule /warehouses/{}/connected-sources /warehouses/{}/connected-sources/{}
/warehouses/{}/connected-sources/{}/selective-syncs /warehouses/{}/connected-sources/{}/syncs
/warehouses/{}/connection-state /warehouses/{}/selective-sync /warehouses/{}/syncs`)

// segmentRoute returns the route of Segment's Public API that path names, if any ({} is one segment).
func segmentRoute(path string) (string, bool) {
	got := strings.Split(strings.TrimSuffix(path, "/"), "/")
	for _, route := range segmentRoutes {
		want := strings.Split(route, "/")
		if len(want) != len(got) {
			continue
		}
		match := true
		for i := range want {
			if want[i] != "{}" && want[i] != got[i] || want[i] == "{}" && got[i] == "" {
				match = false
				break
			}
		}
		if match {
			return route, true
		}
	}
	return "", false
}
