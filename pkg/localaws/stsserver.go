package localaws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// STSConfig configures the STS server.
type STSConfig struct {
	Region string
	Issuer Issuer
	// Now defaults to time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// STSServer answers STS's Query API (AssumeRole, GetCallerIdentity) like AWS: every request must be
// signed by a key of the Directory, and AssumeRole succeeds only when the role's trust policy allows the
// caller, with the External ID it sent, and the caller's own policies allow sts:AssumeRole on the role.
type STSServer struct {
	dir *Directory
	cfg STSConfig
}

// NewSTSServer returns a server over dir.
func NewSTSServer(dir *Directory, cfg STSConfig) (*STSServer, error) {
	if cfg.Issuer == nil {
		return nil, fmt.Errorf("sts: an Issuer is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return &STSServer{dir: dir, cfg: cfg}, nil
}

var (
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

// ServeHTTP implements the STS Query API.
func (s *STSServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, _, err := VerifyRequest(r, s.dir, s.cfg.Now())
	if err != nil {
		e := err.(*Error)
		if e.Code == "AccessDenied" && r.Header.Get("Authorization") == "" {
			e = &Error{Code: "MissingAuthenticationToken", Status: 403, Message: "Request is missing Authentication Token"}
		}
		s.fail(w, e)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, &Error{Code: "MalformedInput", Status: 400, Message: err.Error()})
		return
	}
	switch action := r.Form.Get("Action"); action {
	case "AssumeRole":
		s.assumeRole(w, r, caller)
	case "GetCallerIdentity":
		s.respond(w, "GetCallerIdentity", struct {
			Arn     string `xml:"Arn"`
			UserID  string `xml:"UserId"`
			Account string `xml:"Account"`
		}{callerARN(caller), caller.AccessKeyID, AccountOf(caller.PrincipalARN)})
	default:
		s.fail(w, &Error{Code: "InvalidAction", Status: 400, Message: fmt.Sprintf("Could not find operation %q for version 2011-06-15", action)})
	}
}

func (s *STSServer) assumeRole(w http.ResponseWriter, r *http.Request, caller Identity) {
	roleARN := r.Form.Get("RoleArn")
	session := r.Form.Get("RoleSessionName")
	externalID, hasExternalID := r.Form.Get("ExternalId"), r.Form.Has("ExternalId")
	if !sessionNameRE.MatchString(session) {
		s.fail(w, &Error{Code: "ValidationError", Status: 400, Message: "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*, length 2..64"})
		return
	}
	if hasExternalID && (len(externalID) < 2 || len(externalID) > 1224 || !externalIDRE.MatchString(externalID)) {
		s.fail(w, &Error{Code: "ValidationError", Status: 400, Message: "1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]*, length 2..1224"})
		return
	}
	duration := time.Hour
	if v := r.Form.Get("DurationSeconds"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 900 {
			s.fail(w, &Error{Code: "ValidationError", Status: 400, Message: "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"})
			return
		}
		duration = time.Duration(secs) * time.Second
	}
	denied := &Error{Code: "AccessDenied", Status: 403,
		Message: fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", callerARN(caller), roleARN)}
	role, ok := s.dir.Role(roleARN)
	if !ok {
		s.log(r, "AssumeRole denied: no such role", caller, roleARN)
		s.fail(w, denied)
		return
	}
	ctx := map[string]string{"aws:PrincipalArn": caller.PrincipalARN, "sts:RoleSessionName": session}
	if hasExternalID {
		ctx["sts:ExternalId"] = externalID
	}
	trust := role.TrustPolicy.Evaluate(AuthzRequest{Principal: caller.PrincipalARN, Action: "sts:AssumeRole", Resource: roleARN, Context: ctx})
	if trust != Allow {
		s.log(r, "AssumeRole denied by the trust policy", caller, roleARN)
		s.fail(w, denied)
		return
	}
	if !caller.Admin {
		own := NotApplicable
		for _, p := range s.dir.identityPolicies(caller) {
			own = max(own, p.Evaluate(AuthzRequest{Principal: caller.PrincipalARN, Action: "sts:AssumeRole", Resource: roleARN, Context: ctx}))
		}
		// Within one account the trust policy alone may grant; across accounts the caller's policies must too.
		if own == ExplicitDeny || (own != Allow && AccountOf(caller.PrincipalARN) != AccountOf(roleARN)) {
			s.log(r, "AssumeRole denied by the caller's own policies", caller, roleARN)
			s.fail(w, denied)
			return
		}
	}
	chained := caller.RoleARN != ""
	maxDuration := role.MaxSessionDuration
	if maxDuration == 0 {
		maxDuration = time.Hour
	}
	if chained && duration > time.Hour {
		s.fail(w, &Error{Code: "ValidationError", Status: 400, Message: "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."})
		return
	}
	if duration > maxDuration {
		s.fail(w, &Error{Code: "ValidationError", Status: 400, Message: "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."})
		return
	}
	id, err := s.cfg.Issuer.Issue(r.Context(), role, session, duration)
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "issue credentials", "role", roleARN, "error", err)
		s.fail(w, &Error{Code: "ServiceUnavailable", Status: 503, Message: "could not issue credentials"})
		return
	}
	id.PrincipalARN, id.RoleARN, id.SessionName, id.Chained = roleARN, roleARN, session, chained
	if id.Expires.IsZero() {
		id.Expires = s.cfg.Now().Add(duration)
	}
	s.dir.AddIdentity(id)
	s.log(r, "AssumeRole allowed", caller, roleARN)
	s.respond(w, "AssumeRole", struct {
		Credentials struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		} `xml:"Credentials"`
		AssumedRoleUser struct {
			AssumedRoleID string `xml:"AssumedRoleId"`
			Arn           string `xml:"Arn"`
		} `xml:"AssumedRoleUser"`
	}{
		Credentials: struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		}{id.AccessKeyID, id.SecretAccessKey, id.SessionToken, id.Expires.UTC().Format(time.RFC3339)},
		AssumedRoleUser: struct {
			AssumedRoleID string `xml:"AssumedRoleId"`
			Arn           string `xml:"Arn"`
		}{"AROA" + strings.ToUpper(hex.EncodeToString([]byte(roleARN))[:16]) + ":" + session, assumedRoleARN(roleARN, session)},
	})
}

// callerARN is how AWS names a caller in messages: a role session as its assumed-role ARN.
func callerARN(id Identity) string {
	if id.RoleARN != "" {
		return assumedRoleARN(id.RoleARN, id.SessionName)
	}
	return id.PrincipalARN
}

func assumedRoleARN(roleARN, session string) string {
	parts := strings.SplitN(roleARN, ":", 6)
	if len(parts) < 6 {
		return roleARN
	}
	name := parts[5][strings.LastIndexByte(parts[5], '/')+1:]
	return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", parts[1], parts[4], name, session)
}

// log records a decision, never a secret.
func (s *STSServer) log(r *http.Request, msg string, caller Identity, roleARN string) {
	s.cfg.Logger.InfoContext(r.Context(), msg, "caller", callerARN(caller), "role", roleARN, "externalIdSent", r.Form.Has("ExternalId"))
}

func (s *STSServer) respond(w http.ResponseWriter, action string, result any) {
	body, err := xml.Marshal(struct {
		XMLName  xml.Name `xml:""`
		Xmlns    string   `xml:"xmlns,attr"`
		Result   any      `xml:""`
		Metadata struct {
			RequestID string `xml:"RequestId"`
		} `xml:"ResponseMetadata"`
	}{XMLName: xml.Name{Local: action + "Response"}, Xmlns: stsNS, Result: wrapped{name: action + "Result", v: result}})
	if err != nil {
		s.fail(w, &Error{Code: "InternalFailure", Status: 500, Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(body)
}

// wrapped marshals v inside an element called name.
type wrapped struct {
	name string
	v    any
}

func (x wrapped) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(x.v, xml.StartElement{Name: xml.Name{Local: x.name}})
}

func (s *STSServer) fail(w http.ResponseWriter, e *Error) {
	body, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"ErrorResponse"`
		Xmlns   string   `xml:"xmlns,attr"`
		Error   struct {
			Type    string `xml:"Type"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		} `xml:"Error"`
		RequestID string `xml:"RequestId"`
	}{Xmlns: stsNS, Error: struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}{"Sender", e.Code, e.Message}, RequestID: requestID()})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

func requestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// LocalIssuer mints random credentials; the S3 server of the same Directory accepts them.
type LocalIssuer struct{}

// Issue implements Issuer.
func (LocalIssuer) Issue(_ context.Context, _ Role, _ string, d time.Duration) (Identity, error) {
	return Identity{
		AccessKeyID:     "ASIA" + randomUpper(16),
		SecretAccessKey: randomUpper(40),
		SessionToken:    "s3dest-session-" + randomUpper(64),
		Expires:         time.Now().Add(d),
	}, nil
}

func randomUpper(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
