package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/configstore"
	validatorv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/validator/v1"
	"github.com/s3dest/s3dest/pkg/testenv"
)

const (
	token     = "test-admin-token-0123456789"
	principal = "arn:aws:iam::000000000000:role/s3dest-intermediate"
)

type api struct {
	t    *testing.T
	url  string
	view viewOf
}

func newAPI(t *testing.T, opts ...Option) *api {
	t.Helper()
	a, _ := newAPIWith(t, nil, opts...)
	return a
}

// newAPIWith serves the REST API of a Server that asks val (nil: no validator) for validations.
func newAPIWith(t *testing.T, val validatorv1.ValidatorServiceClient, opts ...Option) (*api, *Server) {
	t.Helper()
	return newAPIServing(t, val, newSessions(time.Now), opts...)
}

// newAPIServing is newAPIWith with the console's sessions given (a test sets their clock).
func newAPIServing(t *testing.T, val validatorv1.ValidatorServiceClient, sess *sessions, opts ...Option) (*api, *Server) {
	t.Helper()
	_, _, js := testenv.NATS(t)
	ctx := context.Background()
	store, err := configstore.Own(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureWorkspace(ctx, store, "ws-admin-test"); err != nil {
		t.Fatal(err)
	}
	view, err := store.Watch(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, view, val, nil, slog.New(slog.DiscardHandler), append([]Option{WithPrincipal(principal)}, opts...)...)
	h, err := restHandler(ctx, srv, token, sess)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &api{t: t, url: hs.URL, view: viewOf{view}}, srv
}

// call sends a request the way the reference's curl commands do and decodes the JSON answer.
func (a *api) call(method, path, body, auth string) (int, map[string]any) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("%s %s answered non-JSON %d: %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func (a *api) ok(method, path, body string) map[string]any {
	a.t.Helper()
	code, out := a.call(method, path, body, "Bearer "+token)
	if code != 200 && code != 201 {
		a.t.Fatalf("%s %s = %d %v", method, path, code, out)
	}
	return out["data"].(map[string]any)
}

func errorOf(t *testing.T, out map[string]any) (string, string) {
	t.Helper()
	errs, ok := out["errors"].([]any)
	if !ok || len(errs) != 1 {
		t.Fatalf("want {\"errors\":[{type,message}]}, got %v", out)
	}
	e := errs[0].(map[string]any)
	return e["type"].(string), e["message"].(string)
}

func TestTheReferencesPublicAPICallsWorkAsWritten(t *testing.T) {
	a := newAPI(t, WithLegacyS3(true))
	src := a.ok("POST", "/sources", `{"slug":"web","name":"Web"}`)["source"].(map[string]any)
	sourceID := src["id"].(string)
	if keys := src["writeKeys"].([]any); len(keys) != 1 || src["enabled"] != true || src["slug"] != "web" {
		t.Fatalf("source = %v", src)
	}

	// The reference's create body, with the legacy destination beside it as during a migration.
	legacy := a.ok("POST", "/destinations", `{"sourceId":"`+sourceID+`","metadataId":"54f418c3db31d978f14aa925","name":"Amazon S3",
		"settings":{"region":"us-west-2","s3Bucket":"my-bucket"}}`)["destination"].(map[string]any)
	dest := a.ok("POST", "/destinations", `{
	 "sourceId": "`+sourceID+`",
	 "metadataId": "60be92c8dabdd561bf6c9130",
	 "name": "AWS S3",
	 "settings": {
	  "region": "us-west-2",
	  "s3Bucket": "my-bucket/segment-logs/test",
	  "iamRoleArn": "arn:aws:iam::123456789012:role/segment"
	 }}`)["destination"].(map[string]any)
	if dest["enabled"] != true || dest["sourceId"] != sourceID || dest["metadata"].(map[string]any)["slug"] != "aws-s3" {
		t.Fatalf("destination = %v", dest)
	}
	if s := dest["settings"].(map[string]any); s["s3Bucket"] != "my-bucket/segment-logs/test" || s["iamRoleArn"] != "arn:aws:iam::123456789012:role/segment" {
		t.Fatalf("settings = %v", s)
	}

	page := a.ok("GET", "/destinations?pagination.count=1", "")
	if got := page["destinations"].([]any); len(got) != 1 {
		t.Fatalf("pagination.count=1 gave %d destinations", len(got))
	}
	next := page["pagination"].(map[string]any)["next"].(string)
	page2 := a.ok("GET", "/destinations?pagination.count=1&pagination.cursor="+next, "")
	first, second := page["destinations"].([]any)[0].(map[string]any)["id"], page2["destinations"].([]any)[0].(map[string]any)["id"]
	if next, ok := page2["pagination"].(map[string]any)["next"]; first == second || ok && next != nil {
		t.Fatalf("pages overlap or do not end: %v then %v (next %v)", first, second, next)
	}

	// The reference's PATCH, disabling the legacy destination.
	off := a.ok("PATCH", "/destinations/"+legacy["id"].(string), `{"destinationId":"`+legacy["id"].(string)+`","enabled":false}`)["destination"].(map[string]any)
	if off["enabled"] != false {
		t.Fatalf("PATCH enabled:false left %v", off["enabled"])
	}
	if got := a.ok("GET", "/destinations/"+legacy["id"].(string), "")["destination"].(map[string]any); got["enabled"] != false {
		t.Fatalf("GET after PATCH: enabled = %v", got["enabled"])
	}
	if st := a.ok("DELETE", "/destinations/"+legacy["id"].(string), "")["status"]; st != "SUCCESS" {
		t.Fatalf("DELETE status = %v", st)
	}
	if code, out := a.call("GET", "/destinations/"+legacy["id"].(string), "", "Bearer "+token); code != 404 {
		t.Fatalf("GET deleted = %d %v", code, out)
	}
}

func TestBadSettingsAreRefusedNamingTheSetting(t *testing.T) {
	a := newAPI(t)
	sourceID := a.ok("POST", "/sources", `{"slug":"app"}`)["source"].(map[string]any)["id"].(string)
	body := func(region, bucket, role string) string {
		return `{"sourceId":"` + sourceID + `","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"` + region + `","s3Bucket":"` + bucket + `","iamRoleArn":"` + role + `"}}`
	}
	const role = "arn:aws:iam::123456789012:role/r"
	cases := []struct{ name, body, want string }{
		{"bucket as s3 URI", body("us-east-1", "s3://my-bucket", role), "settings.s3Bucket: enter the bucket's name, not its URI"},
		{"bucket as ARN", body("us-east-1", "arn:aws:s3:::my-bucket", role), "settings.s3Bucket: enter the bucket's name, not its URI"},
		{"bucket as URL", body("us-east-1", "https://my-bucket.s3.amazonaws.com", role), "settings.s3Bucket: enter the bucket's name, not its URI"},
		{"bucket with capitals", body("us-east-1", "My_Bucket", role), "settings.s3Bucket"},
		{"bucket like an IP", body("us-east-1", "192.168.1.1", role), "settings.s3Bucket"},
		{"malformed role ARN", body("us-east-1", "b1b", "arn:aws:iam::1234:role/r"), "settings.iamRoleArn"},
		{"user ARN instead of a role", body("us-east-1", "b1b", "arn:aws:iam::123456789012:user/u"), "settings.iamRoleArn"},
		{"unknown region", body("us-middle-1", "b1b", role), "settings.region"},
		{"unknown metadata ID", `{"sourceId":"` + sourceID + `","metadataId":"x","settings":{}}`, "metadataId"},
		{"unknown field", `{"sourceId":"` + sourceID + `","bogus":1}`, "bogus"},
		{"unknown source", `{"sourceId":"nope","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"us-east-1","s3Bucket":"b1b","iamRoleArn":"` + role + `"}}`, "source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := a.call("POST", "/destinations", c.body, "Bearer "+token)
			typ, msg := errorOf(t, out)
			if code != 422 && code != 404 || !strings.Contains(msg, c.want) || typ == "" {
				t.Fatalf("got %d %s %q, want 422 naming %q", code, typ, msg, c.want)
			}
		})
	}
	// One AWS S3 destination per source.
	a.ok("POST", "/destinations", body("us-east-1", "b1b", role))
	code, out := a.call("POST", "/destinations", body("us-middle-1", "b2b", role), "Bearer "+token)
	if f := out["errors"].([]any)[0].(map[string]any)["field"]; code != 422 || f != "settings.region" {
		t.Fatalf("bad region: %d, field %v, want 422 with field settings.region: %v", code, f, out)
	}
	code, out = a.call("POST", "/destinations", body("us-east-1", "b2b", role), "Bearer "+token)
	if _, msg := errorOf(t, out); code != 422 || msg != "Multiple instance of AWS S3 are not allowed for this source" {
		t.Fatalf("second AWS S3 destination: %d %q", code, msg)
	}
}

func TestTheFormatSettingIsJSONByDefaultParquetOnRequestAndNothingElse(t *testing.T) {
	a := newAPI(t)
	sourceID := a.ok("POST", "/sources", `{"slug":"app"}`)["source"].(map[string]any)["id"].(string)
	body := func(format string) string {
		return `{"sourceId":"` + sourceID + `","metadataId":"60be92c8dabdd561bf6c9130","settings":{"region":"us-east-1","s3Bucket":"b1b",` +
			`"iamRoleArn":"arn:aws:iam::123456789012:role/r"` + format + `}}`
	}
	for _, bad := range []string{`,"format":"csv"`, `,"format":"JSON"`, `,"format":"parquet "`} {
		code, out := a.call("POST", "/destinations", body(bad), "Bearer "+token)
		if _, msg := errorOf(t, out); code != 422 || !strings.Contains(msg, `settings.format: must be "json" (gzipped NDJSON, the default) or "parquet"`) {
			t.Fatalf("settings%s: %d %q, want 422 naming settings.format and its values", bad, code, msg)
		}
	}
	dest := a.ok("POST", "/destinations", body(""))["destination"].(map[string]any)
	if f := dest["settings"].(map[string]any)["format"]; f != "json" {
		t.Fatalf("a destination created without a format shows format %v, want json", f)
	}
	id := dest["id"].(string)
	if code, out := a.call("PATCH", "/destinations/"+id, `{"settings":{"format":"xml"}}`, "Bearer "+token); code != 422 {
		t.Fatalf("PATCH format xml: %d %v, want 422", code, out)
	}
	changed := a.ok("PATCH", "/destinations/"+id, `{"settings":{"format":"parquet"}}`)["destination"].(map[string]any)
	if s := changed["settings"].(map[string]any); s["format"] != "parquet" || s["s3Bucket"] != "b1b" {
		t.Fatalf("PATCH format parquet left settings %v, want format parquet and the rest kept", s)
	}
	if f := a.ok("GET", "/destinations/"+id, "")["destination"].(map[string]any)["settings"].(map[string]any)["format"]; f != "parquet" {
		t.Fatalf("GET after PATCH: format %v, want parquet", f)
	}
}

func TestAdminCallsNeedTheBearerToken(t *testing.T) {
	a := newAPI(t)
	if code, out := a.call("GET", "/destinations", "", ""); code != 401 {
		t.Fatalf("no token: %d %v", code, out)
	}
	if code, out := a.call("GET", "/destinations", "", "Bearer wrong-token"); code != 403 {
		t.Fatalf("wrong token: %d %v", code, out)
	}
	if typ, _ := errorOf(t, func() map[string]any { _, o := a.call("GET", "/sources", "", "Basic abc"); return o }()); typ != "unauthorized" {
		t.Fatalf("basic auth: type %q", typ)
	}
}

// Segment's SDKs send pagination in bracket form (pagination[count]=1), walk `next` until it is absent,
// and find `previous` on every page but the first.
func TestPagesAreWalkedWithSegmentsBracketQueryUntilNextIsAbsent(t *testing.T) {
	a := newAPI(t)
	want := map[string]bool{}
	for _, slug := range []string{"p1", "p2", "p3"} {
		want[a.ok("POST", "/sources", `{"slug":"`+slug+`"}`)["source"].(map[string]any)["id"].(string)] = true
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 1; ; pages++ {
		q := "/sources?pagination%5Bcount%5D=1"
		if cursor != "" {
			q += "&pagination%5Bcursor%5D=" + cursor
		}
		page := a.ok("GET", q, "")
		for _, s := range page["sources"].([]any) {
			seen[s.(map[string]any)["id"].(string)] = true
		}
		p := page["pagination"].(map[string]any)
		if prev, ok := p["previous"]; (pages == 1) != (!ok || prev == nil) {
			t.Fatalf("page %d: previous = %v", pages, prev)
		}
		if p["current"] == "" || p["totalEntries"] != float64(3) {
			t.Fatalf("page %d: pagination = %v", pages, p)
		}
		next, ok := p["next"].(string)
		if !ok {
			break
		}
		if next == "" || pages == 3 {
			t.Fatalf("page %d: next = %q", pages, next)
		}
		cursor = next
	}
	if !maps.Equal(seen, want) {
		t.Fatalf("walked %v, want %v", seen, want)
	}
}

// What Segment's SDK types require of the workspace, a source and a destination, and how s3dest answers
// the parts of Segment's API it does not implement.
func TestAnswersHaveTheShapesOfSegmentsPublicAPI(t *testing.T) {
	a := newAPI(t, WithLegacyS3(true))
	ws := a.ok("GET", "/", "")["workspace"].(map[string]any)
	if ws["id"] != "ws-admin-test" || ws["slug"] != "s3dest" || ws["name"] != "s3dest" {
		t.Fatalf("GET / workspace = %v", ws)
	}
	code, out := a.call("POST", "/sources", `{"slug":"shape","enabled":true,"metadataId":"IqDTy1TpoU"}`, "Bearer "+token)
	src := out["data"].(map[string]any)["source"].(map[string]any)
	if code != 201 || src["workspaceId"] != "ws-admin-test" || src["metadata"].(map[string]any)["slug"] != "javascript" || len(src["labels"].([]any)) != 0 {
		t.Fatalf("POST /sources = %d %v", code, src)
	}
	got := a.ok("GET", "/sources/"+src["id"].(string), "")
	if v, ok := got["trackingPlanId"]; !ok || v != nil {
		t.Fatalf("GET /sources/{id}: trackingPlanId = %v (present %v), want null", v, ok)
	}
	key := src["writeKeys"].([]any)[0].(string)
	if st := a.ok("DELETE", "/sources/"+src["id"].(string)+"/writekey/"+key, "")["status"]; st != "SUCCESS" {
		t.Fatalf("DELETE writekey: status = %v", st)
	}

	d := a.ok("POST", "/destinations", `{"sourceId":"`+src["id"].(string)+`","metadataId":"60be92c8dabdd561bf6c9130",
		"settings":{"region":"us-east-1","s3Bucket":"b1b","iamRoleArn":"arn:aws:iam::123456789012:role/r"}}`)["destination"].(map[string]any)
	md := d["metadata"].(map[string]any)
	for _, k := range []string{"description", "logos", "options", "status", "previousNames", "categories", "website", "components",
		"supportedFeatures", "supportedMethods", "supportedPlatforms", "actions", "presets"} {
		if md[k] == nil {
			t.Errorf("destination metadata lacks %s: %v", k, md)
		}
	}
	catalogEntry := a.ok("GET", "/catalog/destinations/60be92c8dabdd561bf6c9130", "")["destinationMetadata"].(map[string]any)
	var names []string
	for _, o := range catalogEntry["options"].([]any) {
		names = append(names, o.(map[string]any)["name"].(string))
	}
	if strings.Join(names, ",") != "region,s3Bucket,iamRoleArn,format" || catalogEntry["slug"] != "aws-s3" {
		t.Fatalf("catalog entry options = %v (%v)", names, catalogEntry)
	}
	if legacy := a.ok("GET", "/catalog/destinations/54f418c3db31d978f14aa925", "")["destinationMetadata"].(map[string]any); legacy["slug"] != "amazon-s3" {
		t.Fatalf("legacy catalog entry = %v", legacy)
	}

	for _, c := range []struct {
		method, path string
		code         int
		typ, want    string
	}{
		{"GET", "/catalog/destinations/nope", 404, "not-found", "destinationMetadataId"},
		{"GET", "/sources/nope", 404, "not-found", "source"},
		{"GET", "/tracking-plans?pagination%5Bcount%5D=10", 501, "not-implemented", "/tracking-plans"},
		{"POST", "/functions", 501, "not-implemented", "/functions"},
		{"GET", "/warehouses/w1/syncs", 501, "not-implemented", "/warehouses/{}/syncs"},
		{"PUT", "/sources/" + src["id"].(string) + "/labels", 501, "not-implemented", "/sources/{}/labels"},
		{"GET", "/no/such/thing", 404, "not-found", "no such endpoint"},
		{"POST", "/sources", 422, "validation", "slug"},
	} {
		code, out := a.call(c.method, c.path, `{}`, "Bearer "+token)
		if typ, msg := errorOf(t, out); code != c.code || typ != c.typ || !strings.Contains(msg, c.want) {
			t.Errorf("%s %s = %d %s %q, want %d %s naming %q", c.method, c.path, code, typ, msg, c.code, c.typ, c.want)
		}
	}
}
