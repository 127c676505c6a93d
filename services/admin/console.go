package admin

import (
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/s3dest/s3dest/pkg/platform"
)

// consoleAssets are the web console's pages, hand-written HTML, CSS and JavaScript modules with no build
// step, served as they are committed.
//
//go:embed console
var consoleAssets embed.FS

// ConsolePath is where admin serves the web console (DESIGN.md §10).
const ConsolePath = "/console/"

// consoleSecurityHeaders keep the console's pages to their own origin: no inline script, no frames, no
// referrer carrying IDs elsewhere.
var consoleSecurityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
	"Cache-Control":          "no-cache",
}

// consoleHandler serves the console under ConsolePath: its assets, and the session endpoint
// ConsolePath+"session" (POST signs in with the admin token, GET says whether the browser is signed in
// and returns the session's CSRF token, DELETE signs out).
func consoleHandler(tc platform.BearerToken, sess *sessions) http.Handler {
	assets, _ := fs.Sub(consoleAssets, "console") // the directory is embedded: Sub cannot fail
	files := http.StripPrefix(ConsolePath, http.FileServerFS(assets))
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+ConsolePath+"session", func(w http.ResponseWriter, r *http.Request) { signIn(w, r, tc, sess) })
	mux.HandleFunc("GET "+ConsolePath+"session", func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie(SessionCookie)
		var id string
		if c != nil {
			id = c.Value
		}
		// Not signed in is an answer, not an error: the page asks on every load, and a browser logs
		// every 4xx as an error on its console.
		s, ok := sess.get(id)
		if !ok {
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"signedIn": false}})
			return
		}
		writeSession(w, s)
	})
	mux.HandleFunc("DELETE "+ConsolePath+"session", func(w http.ResponseWriter, r *http.Request) {
		if c, _ := r.Cookie(SessionCookie); c != nil {
			if _, ok := sess.get(c.Value); ok {
				if err := sess.check(r, c.Value); err != nil {
					writeError(r.Context(), nil, nil, w, r, err)
					return
				}
				sess.end(c.Value)
			}
		}
		http.SetCookie(w, sessionCookie(r, "", -1))
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]string{"status": "SUCCESS"}})
	})
	mux.Handle("GET "+ConsolePath, files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range consoleSecurityHeaders {
			w.Header().Set(k, v)
		}
		mux.ServeHTTP(w, r)
	})
}

// signIn checks the admin token a person typed and starts a session: an HttpOnly, SameSite=Strict
// cookie (Secure over TLS) and a CSRF token the page keeps in memory.
func signIn(w http.ResponseWriter, r *http.Request, tc platform.BearerToken, sess *sessions) {
	if !sameOrigin(r) {
		writeErrors(w, http.StatusForbidden, "forbidden", "Origin: sign in from the console's own origin")
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		writeErrors(w, http.StatusRequestEntityTooLarge, "validation", "body: at most 4 KiB")
		return
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		writeErrors(w, http.StatusBadRequest, "validation", `body: must be JSON {"token":"<admin token>"}`)
		return
	}
	if body.Token == "" {
		writeErrors(w, http.StatusUnprocessableEntity, "validation", "token: the admin token is required")
		return
	}
	if err := tc.Check("Bearer " + body.Token); err != nil {
		writeErrors(w, http.StatusForbidden, "forbidden", "token: the admin token is not valid")
		return
	}
	id, s := sess.create()
	http.SetCookie(w, sessionCookie(r, id, int(SessionTTL/time.Second)))
	writeSession(w, s)
}

func writeSession(w http.ResponseWriter, s session) {
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"signedIn": true, "csrfToken": s.csrf, "expiresAt": s.expires.UTC().Format(time.RFC3339),
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
