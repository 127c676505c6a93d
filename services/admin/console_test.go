package admin

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// browserReq is one request as the console's page sends it: the session cookie, and when given the
// CSRF header and the Origin.
type browserReq struct {
	method, path, body string
	cookie, csrf       string
	origin             string
}

func (a *api) browser(r browserReq) (*http.Response, map[string]any) {
	a.t.Helper()
	req, _ := http.NewRequest(r.method, a.url+r.path, strings.NewReader(r.body))
	req.Header.Set("Content-Type", "application/json")
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: r.cookie})
	}
	if r.csrf != "" {
		req.Header.Set(CSRFHeader, r.csrf)
	}
	if r.origin != "" {
		req.Header.Set("Origin", r.origin)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp, out
}

// signIn signs in with the admin token and returns the session cookie and the CSRF token.
func (a *api) signIn() (*http.Cookie, string) {
	a.t.Helper()
	resp, out := a.browser(browserReq{method: http.MethodPost, path: "/console/session", body: `{"token":"` + token + `"}`})
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("sign in answered %d: %v", resp.StatusCode, out)
	}
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			return c, out["data"].(map[string]any)["csrfToken"].(string)
		}
	}
	a.t.Fatalf("sign in set no %s cookie: %v", SessionCookie, resp.Header["Set-Cookie"])
	return nil, ""
}

// clock is a settable time for the sessions.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func TestTheConsoleIsServedFromEmbeddedAssetsWithHeadersThatKeepItToItsOrigin(t *testing.T) {
	a := newAPI(t)
	resp, _ := a.browser(browserReq{method: http.MethodGet, path: "/console"})
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != ConsolePath {
		t.Errorf("GET /console answered %d to %q, want a redirect to %s", resp.StatusCode, resp.Header.Get("Location"), ConsolePath)
	}
	for path, want := range map[string]string{"/console/": "text/html", "/console/app.js": "text/javascript", "/console/style.css": "text/css"} {
		resp, _ := a.browser(browserReq{method: http.MethodGet, path: path})
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s answered %d %q, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q lets scripts or frames in from elsewhere", path, csp)
		}
	}
	// The console needs no token to load, but its data does.
	resp, out := a.browser(browserReq{method: http.MethodGet, path: "/sources"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /sources without token or session answered %d %v, want 401", resp.StatusCode, out)
	}
}

func TestSignInSetsAnHttpOnlyStrictSessionCookieThatIsSecureOverTLS(t *testing.T) {
	a := newAPI(t)
	c, csrf := a.signIn()
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Errorf("cookie over plain HTTP: HttpOnly=%v SameSite=%v Path=%q Secure=%v; want HttpOnly, Strict, /, not Secure",
			c.HttpOnly, c.SameSite, c.Path, c.Secure)
	}
	if c.MaxAge != int(SessionTTL/time.Second) || len(c.Value) < 40 || len(csrf) < 40 || c.Value == csrf {
		t.Errorf("cookie MaxAge %d, %d-character session, %d-character CSRF token: want %s and two distinct random tokens",
			c.MaxAge, len(c.Value), len(csrf), SessionTTL)
	}

	// Behind a TLS-terminating proxy that says so, and served over TLS directly, the cookie is Secure.
	req := httptest.NewRequest(http.MethodPost, "/console/session", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	if !sessionCookie(req, "x", 1).Secure {
		t.Error("cookie behind X-Forwarded-Proto: https is not Secure")
	}
	h, err := restHandler(t.Context(), nil, token, newSessions(time.Now))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	client := ts.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the test server's own certificate
	resp, err := client.Post(ts.URL+"/console/session", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie over TLS: %v, want one Secure, HttpOnly, SameSite=Strict cookie", resp.Header["Set-Cookie"])
	}
}

func TestSignInRefusesAMissingOrWrongTokenAndAnotherOrigin(t *testing.T) {
	a := newAPI(t)
	for _, c := range []struct {
		name, body, origin string
		code               int
		message            string
	}{
		{"no token", `{}`, "", http.StatusUnprocessableEntity, "token: the admin token is required"},
		{"wrong token", `{"token":"not-the-admin-token-at-all"}`, "", http.StatusForbidden, "token: the admin token is not valid"},
		{"not JSON", `token=x`, "", http.StatusBadRequest, "body: must be JSON"},
		{"another origin", `{"token":"` + token + `"}`, "https://evil.example", http.StatusForbidden, "Origin: sign in from the console's own origin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out := a.browser(browserReq{method: http.MethodPost, path: "/console/session", body: c.body, origin: c.origin})
			if resp.StatusCode != c.code || !strings.Contains(errorMessage(out), c.message) {
				t.Errorf("answered %d %v, want %d %q", resp.StatusCode, out, c.code, c.message)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("a refused sign-in set cookies: %v", resp.Header["Set-Cookie"])
			}
			if strings.Contains(errorMessage(out), "not-the-admin-token") {
				t.Errorf("the refusal echoes the token: %v", out)
			}
		})
	}
}

func errorMessage(out map[string]any) string {
	errs, _ := out["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	m, _ := errs[0].(map[string]any)
	s, _ := m["message"].(string)
	return s
}

func TestASessionReadsTheAPIAndChangesItOnlyWithItsCSRFTokenFromItsOwnOrigin(t *testing.T) {
	a := newAPI(t)
	c, csrf := a.signIn()
	otherCookie, otherCSRF := a.signIn()
	if resp, out := a.browser(browserReq{method: http.MethodGet, path: "/sources", cookie: c.Value}); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sources with the session answered %d %v", resp.StatusCode, out)
	}
	create := func(r browserReq) (int, string) {
		r.method, r.path, r.body = http.MethodPost, "/sources", `{"slug":"made-by-console"}`
		resp, out := a.browser(r)
		return resp.StatusCode, errorMessage(out)
	}
	for _, bad := range []struct {
		name string
		req  browserReq
		code int
		msg  string
	}{
		{"no CSRF token", browserReq{cookie: c.Value}, http.StatusForbidden, CSRFHeader + ": a state-changing console call must carry the session's CSRF token"},
		{"a wrong CSRF token", browserReq{cookie: c.Value, csrf: "forged"}, http.StatusForbidden, CSRFHeader},
		{"another session's CSRF token", browserReq{cookie: c.Value, csrf: otherCSRF}, http.StatusForbidden, CSRFHeader},
		{"another origin", browserReq{cookie: c.Value, csrf: csrf, origin: "https://evil.example"}, http.StatusForbidden, "Origin: a console call must come from the console's own origin"},
		{"a CSRF token without its session", browserReq{csrf: csrf}, http.StatusUnauthorized, "Authorization: a bearer token is required"},
	} {
		if code, msg := create(bad.req); code != bad.code || !strings.Contains(msg, bad.msg) {
			t.Errorf("POST /sources with %s answered %d %q, want %d %q", bad.name, code, msg, bad.code, bad.msg)
		}
	}
	if _, out := a.call(http.MethodGet, "/sources", "", "Bearer "+token); len(out["data"].(map[string]any)["sources"].([]any)) != 0 {
		t.Fatalf("refused calls created sources: %v", out)
	}
	if code, msg := create(browserReq{cookie: c.Value, csrf: csrf, origin: a.url}); code != http.StatusCreated {
		t.Fatalf("POST /sources with session, CSRF token and own origin answered %d %q, want 201", code, msg)
	}
	if code, msg := create(browserReq{cookie: otherCookie.Value, csrf: otherCSRF}); code != http.StatusCreated {
		t.Errorf("POST /sources with the second session and its own CSRF token answered %d %q, want 201", code, msg)
	}
	// The bearer token keeps working as before, and decides when a call carries both.
	if code, _ := a.call(http.MethodGet, "/sources", "", "Bearer "+token); code != http.StatusOK {
		t.Errorf("GET /sources with the bearer token answered %d", code)
	}
	resp, _ := a.browser(browserReq{method: http.MethodGet, path: "/sources", cookie: c.Value})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /sources with the session answered %d", resp.StatusCode)
	}
}

func TestExpiredForgedAndSignedOutSessionsAreRefused(t *testing.T) {
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	a, _ := newAPIServing(t, nil, newSessions(clk.Now))
	get := func(cookie string) (int, string) {
		resp, out := a.browser(browserReq{method: http.MethodGet, path: "/sources", cookie: cookie})
		return resp.StatusCode, errorMessage(out)
	}
	const refused = "session: the console session has expired or is not valid; sign in again"

	c, _ := a.signIn()
	if code, msg := get(c.Value + "x"); code != http.StatusUnauthorized || msg != refused {
		t.Errorf("a forged session answered %d %q, want 401 %q", code, msg, refused)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("an empty session cookie answered %d, want 401", code)
	}
	clk.Add(SessionTTL - time.Second)
	if code, msg := get(c.Value); code != http.StatusOK {
		t.Fatalf("a session a second before it expires answered %d %q, want 200", code, msg)
	}
	clk.Add(time.Second)
	if code, msg := get(c.Value); code != http.StatusUnauthorized || msg != refused {
		t.Errorf("an expired session answered %d %q, want 401 %q", code, msg, refused)
	}
	resp, out := a.browser(browserReq{method: http.MethodGet, path: "/console/session", cookie: c.Value})
	if resp.StatusCode != http.StatusOK || out["data"].(map[string]any)["signedIn"] != false {
		t.Errorf("GET /console/session with an expired session answered %d %v, want signedIn false", resp.StatusCode, out)
	}

	// Sign-out needs the CSRF token, ends the session on the server, and deletes the cookie.
	c, csrf := a.signIn()
	if resp, _ := a.browser(browserReq{method: http.MethodDelete, path: "/console/session", cookie: c.Value}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token answered %d, want 403", resp.StatusCode)
	}
	if code, _ := get(c.Value); code != http.StatusOK {
		t.Fatalf("the session stopped working after a refused sign-out: %d", code)
	}
	resp, _ = a.browser(browserReq{method: http.MethodDelete, path: "/console/session", cookie: c.Value, csrf: csrf})
	if cs := resp.Cookies(); resp.StatusCode != http.StatusOK || len(cs) != 1 || cs[0].MaxAge >= 0 || cs[0].Value != "" {
		t.Errorf("sign-out answered %d with cookies %v, want 200 and the cookie deleted", resp.StatusCode, resp.Header["Set-Cookie"])
	}
	if code, msg := get(c.Value); code != http.StatusUnauthorized || msg != refused {
		t.Errorf("a signed-out session answered %d %q, want 401 %q", code, msg, refused)
	}
}

func TestSessionsAreBoundedSoSignInFloodsCannotGrowMemory(t *testing.T) {
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	s := newSessions(clk.Now)
	first, _ := s.create()
	for range maxSessions {
		clk.Add(time.Millisecond)
		s.create()
	}
	if len(s.byID) != maxSessions {
		t.Errorf("%d sessions kept, want at most %d", len(s.byID), maxSessions)
	}
	if _, ok := s.get(first); ok {
		t.Error("the oldest session survived the flood")
	}
}
