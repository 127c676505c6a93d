package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SessionTTL is how long a console session lasts after sign-in; it is not extended by use, so a
// forgotten tab stops working within a working day.
const SessionTTL = 8 * time.Hour

// SessionCookie names the console's session cookie.
const SessionCookie = "s3dest_session"

// CSRFHeader carries a session's CSRF token on every state-changing call the console makes.
const CSRFHeader = "X-CSRF-Token"

// maxSessions bounds the sessions one admin process keeps: signing in is open to anyone who can reach
// the port, so a flood of sign-ins must not grow memory without end. The oldest session goes first.
const maxSessions = 1000

// sessions are the console's signed-in browsers. They live in the admin process: a restart signs
// everyone out, and behind several admin replicas a browser must keep reaching the one it signed in to
// (docs/console.md). Only the SHA-256 of a session ID is kept, so a memory dump holds no usable cookie.
// Safe for concurrent use.
type sessions struct {
	now func() time.Time

	mu   sync.Mutex
	byID map[[sha256.Size]byte]session
}

// session is one signed-in browser: its CSRF token (sent to the page, echoed in CSRFHeader) and when it
// ends.
type session struct {
	csrf    string
	expires time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, byID: map[[sha256.Size]byte]session{}}
}

// create starts a session and returns its ID (the cookie's value) and CSRF token.
func (s *sessions) create() (id string, sess session) {
	id, sess = randomToken(), session{csrf: randomToken(), expires: s.now().Add(SessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	if len(s.byID) >= maxSessions {
		var oldest [sha256.Size]byte
		first := true
		for k, v := range s.byID {
			if first || v.expires.Before(s.byID[oldest].expires) {
				oldest, first = k, false
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get returns the live session with this ID; an unknown, ended or expired one is not found.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[k]
	if ok && !s.now().Before(sess.expires) {
		delete(s.byID, k)
		return session{}, false
	}
	return sess, ok
}

// end signs a session out.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sha256.Sum256([]byte(id)))
}

func (s *sessions) pruneLocked() {
	now := s.now()
	for k, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, k)
		}
	}
}

// check authorizes a REST call made with the session cookie instead of a bearer token. Reads need the
// live session; a call that changes state (any method but GET and HEAD) also needs the session's CSRF
// token in CSRFHeader and, when the browser names it, an Origin that is this server. The errors name
// what is missing, and never echo a token.
func (s *sessions) check(r *http.Request, cookie string) error {
	sess, ok := s.get(cookie)
	if !ok {
		return status.Error(codes.Unauthenticated, "session: the console session has expired or is not valid; sign in again")
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if !sameOrigin(r) {
		return status.Error(codes.PermissionDenied, "Origin: a console call must come from the console's own origin")
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
		return status.Error(codes.PermissionDenied, CSRFHeader+": a state-changing console call must carry the session's CSRF token")
	}
	return nil
}

// sameOrigin reports whether the request's Origin, when the browser sent one, is this server's host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // same-origin GETs and some same-origin POSTs carry none; SameSite=Strict and CSRF still hold
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// sessionCookie is the session cookie for id, or the one that deletes it (id "", maxAge -1). It is Secure when
// the console is served over TLS, directly or behind a proxy that says so.
func sessionCookie(r *http.Request, id string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	}
}

// randomToken is 32 random bytes, URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
