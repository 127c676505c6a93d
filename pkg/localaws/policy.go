package localaws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Policy is an IAM policy document: identity, trust or bucket policy. It reads and writes real IAM
// JSON, where Statement may be one object or a list and Action, Resource and condition values may be
// one string or a list.
type Policy struct {
	Version   string      `json:"Version,omitempty"`
	ID        string      `json:"Id,omitempty"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a policy.
type Statement struct {
	Sid          string                           `json:"Sid,omitempty"`
	Effect       string                           `json:"Effect"`
	Principal    *Principal                       `json:"Principal,omitempty"`
	NotPrincipal *Principal                       `json:"NotPrincipal,omitempty"`
	Action       StringList                       `json:"Action,omitempty"`
	NotAction    StringList                       `json:"NotAction,omitempty"`
	Resource     StringList                       `json:"Resource,omitempty"`
	NotResource  StringList                       `json:"NotResource,omitempty"`
	Condition    map[string]map[string]StringList `json:"Condition,omitempty"`
}

// Principal is "*" (All) or a map of principal types to identifiers.
type Principal struct {
	All       bool
	AWS       StringList `json:"AWS,omitempty"`
	Service   StringList `json:"Service,omitempty"`
	Federated StringList `json:"Federated,omitempty"`
}

// StringList is a JSON string or list of strings (numbers and booleans are kept as their text).
type StringList []string

// UnmarshalJSON accepts a string, a number, a boolean or a list of them.
func (s *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make([]string, 0, len(raw))
		for _, r := range raw {
			v, err := scalar(r)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		*s = out
		return nil
	}
	v, err := scalar(b)
	if err != nil {
		return err
	}
	*s = StringList{v}
	return nil
}

func scalar(b json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return string(bytes.TrimSpace(b)), nil
	}
	return "", fmt.Errorf("want a string, got %s", b)
}

// UnmarshalJSON accepts "*" or an object.
func (p *Principal) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "*" {
			return fmt.Errorf(`a principal string must be "*", got %q`, s)
		}
		*p = Principal{All: true}
		return nil
	}
	type plain Principal
	var v plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("principal: %w", err)
	}
	*p = Principal(v)
	return nil
}

// MarshalJSON writes "*" or the object.
func (p Principal) MarshalJSON() ([]byte, error) {
	if p.All {
		return []byte(`"*"`), nil
	}
	type plain Principal
	return json.Marshal(plain(p))
}

// UnmarshalJSON accepts Statement as one object or a list.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var raw struct {
		Version   string          `json:"Version"`
		ID        string          `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	p.Version, p.ID, p.Statement = raw.Version, raw.ID, nil
	st := bytes.TrimSpace(raw.Statement)
	switch {
	case len(st) == 0:
	case st[0] == '{':
		var one Statement
		if err := json.Unmarshal(st, &one); err != nil {
			return fmt.Errorf("Statement: %w", err)
		}
		p.Statement = []Statement{one}
	default:
		if err := json.Unmarshal(st, &p.Statement); err != nil {
			return fmt.Errorf("Statement: %w", err)
		}
	}
	return nil
}

// conditionOperators are the operators Evaluate understands (each also with an IfExists suffix).
var conditionOperators = map[string]bool{
	"StringEquals": true, "StringNotEquals": true, "StringEqualsIgnoreCase": true, "StringNotEqualsIgnoreCase": true,
	"StringLike": true, "StringNotLike": true, "ArnEquals": true, "ArnLike": true, "ArnNotEquals": true, "ArnNotLike": true,
	"Null": true, "Bool": true,
}

// ParsePolicy parses and checks a policy document. Errors name the statement and the rule.
func ParsePolicy(data []byte) (Policy, error) {
	var p Policy
	if err := json.Unmarshal(data, &p); err != nil {
		return Policy{}, fmt.Errorf("policy is not valid IAM JSON: %w", err)
	}
	if len(p.Statement) == 0 {
		return Policy{}, errors.New("Statement: a policy needs at least one statement")
	}
	for i, s := range p.Statement {
		where := fmt.Sprintf("Statement[%d]", i)
		if s.Sid != "" {
			where += " (" + s.Sid + ")"
		}
		if s.Effect != "Allow" && s.Effect != "Deny" {
			return Policy{}, fmt.Errorf("%s.Effect: must be Allow or Deny, got %q", where, s.Effect)
		}
		if len(s.Action) == 0 && len(s.NotAction) == 0 {
			return Policy{}, fmt.Errorf("%s: needs Action or NotAction", where)
		}
		for op := range s.Condition {
			base := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(op, "ForAnyValue:"), "ForAllValues:"), "IfExists")
			if !conditionOperators[base] {
				return Policy{}, fmt.Errorf("%s.Condition: unsupported operator %q", where, op)
			}
		}
	}
	return p, nil
}

// Decision is the outcome of evaluating one policy.
type Decision int

// Decisions, weakest first.
const (
	NotApplicable Decision = iota
	Allow
	ExplicitDeny
)

// AuthzRequest is what is being asked.
type AuthzRequest struct {
	// Principal is the caller's ARN (a user, or the role of a role session).
	Principal string
	Action    string
	Resource  string
	// Context holds condition keys such as "sts:ExternalId"; an absent key is not present.
	Context map[string]string
}

// Evaluate applies the policy to a request: an explicit Deny wins, then any Allow.
func (p Policy) Evaluate(req AuthzRequest) Decision {
	d := NotApplicable
	for _, s := range p.Statement {
		if !s.matches(req) {
			continue
		}
		if s.Effect == "Deny" {
			return ExplicitDeny
		}
		d = Allow
	}
	return d
}

func (s Statement) matches(req AuthzRequest) bool {
	if s.Principal != nil && !s.Principal.matches(req.Principal) {
		return false
	}
	if s.NotPrincipal != nil && s.NotPrincipal.matches(req.Principal) {
		return false
	}
	if len(s.Action) > 0 && !anyMatch(s.Action, req.Action, true) {
		return false
	}
	if len(s.NotAction) > 0 && anyMatch(s.NotAction, req.Action, true) {
		return false
	}
	// Trust policies have no Resource: the role itself is the resource.
	if len(s.Resource) > 0 && !anyMatch(s.Resource, req.Resource, false) {
		return false
	}
	if len(s.NotResource) > 0 && anyMatch(s.NotResource, req.Resource, false) {
		return false
	}
	for op, keys := range s.Condition {
		for key, values := range keys {
			if !condition(op, key, values, req.Context) {
				return false
			}
		}
	}
	return true
}

func (p Principal) matches(arn string) bool {
	if p.All {
		return true
	}
	for _, id := range p.AWS {
		switch {
		case id == "*" || id == arn:
			return true
		case isAccountID(id):
			if AccountOf(arn) == id {
				return true
			}
		case strings.HasSuffix(id, ":root"):
			if acct := AccountOf(id); acct != "" && AccountOf(arn) == acct {
				return true
			}
		}
	}
	return false
}

func condition(op, key string, values []string, ctx map[string]string) bool {
	op = strings.TrimPrefix(strings.TrimPrefix(op, "ForAnyValue:"), "ForAllValues:")
	ifExists := strings.HasSuffix(op, "IfExists")
	op = strings.TrimSuffix(op, "IfExists")
	got, present := lookup(ctx, key)
	if op == "Null" {
		want := len(values) > 0 && strings.EqualFold(values[0], "true")
		return want != present
	}
	if !present {
		// Negated operators hold when the key is missing; the others need it (unless ...IfExists).
		return ifExists || strings.Contains(op, "Not")
	}
	switch op {
	case "StringEquals", "ArnEquals":
		return contains(values, got, false)
	case "StringNotEquals", "ArnNotEquals":
		return !contains(values, got, false)
	case "StringEqualsIgnoreCase":
		return contains(values, got, true)
	case "StringNotEqualsIgnoreCase":
		return !contains(values, got, true)
	case "StringLike", "ArnLike":
		return anyMatch(values, got, false)
	case "StringNotLike", "ArnNotLike":
		return !anyMatch(values, got, false)
	case "Bool":
		return contains(values, got, true)
	}
	return false
}

func lookup(ctx map[string]string, key string) (string, bool) {
	if v, ok := ctx[key]; ok {
		return v, true
	}
	for k, v := range ctx {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

func contains(values []string, v string, fold bool) bool {
	for _, x := range values {
		if x == v || (fold && strings.EqualFold(x, v)) {
			return true
		}
	}
	return false
}

func anyMatch(patterns []string, s string, fold bool) bool {
	if fold {
		s = strings.ToLower(s)
	}
	for _, p := range patterns {
		if fold {
			p = strings.ToLower(p)
		}
		if wildcard(p, s) {
			return true
		}
	}
	return false
}

// wildcard matches IAM patterns: * is any run of characters, ? is one character.
func wildcard(pattern, s string) bool {
	px, sx := 0, 0
	nextP, nextS := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextP, nextS = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextS > 0 && nextS <= len(s) {
			px, sx = nextP, nextS
			continue
		}
		return false
	}
	return true
}

// AccountOf returns the account ID of an ARN ("arn:aws:iam::123456789012:role/r" → "123456789012"),
// or the ID itself when given a bare account ID.
func AccountOf(arn string) string {
	if isAccountID(arn) {
		return arn
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return ""
	}
	return parts[4]
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Error is an AWS-shaped error: the S3 server renders it as S3 XML, the STS as an ErrorResponse.
type Error struct {
	Code    string
	Message string
	Status  int
	// Region is set for wrong-region errors: where the bucket really is.
	Region string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
