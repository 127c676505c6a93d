package localaws

import (
	"fmt"
	"net/http"
	"sync"
)

// Directory knows every signing key, role and bucket of the local AWS. It is safe for concurrent use.
type Directory struct {
	mu         sync.RWMutex
	identities map[string]Identity
	roles      map[string]Role
	buckets    map[string]Bucket
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{identities: map[string]Identity{}, roles: map[string]Role{}, buckets: map[string]Bucket{}}
}

// AddIdentity adds or replaces a signing key.
func (d *Directory) AddIdentity(id Identity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.identities[id.AccessKeyID] = id
}

// Lookup returns the identity of an access key.
func (d *Directory) Lookup(accessKeyID string) (Identity, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, ok := d.identities[accessKeyID]
	return id, ok
}

// PutRole adds or replaces a role; sessions of the role see the change at once.
func (d *Directory) PutRole(r Role) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.roles[r.ARN] = r
}

// Role returns a role by ARN.
func (d *Directory) Role(arn string) (Role, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	r, ok := d.roles[arn]
	return r, ok
}

// PutBucket registers a bucket.
func (d *Directory) PutBucket(b Bucket) {
	if b.Account == "" {
		b.Account = DefaultAccountID
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buckets[b.Name] = b
}

// DeleteBucket forgets a bucket.
func (d *Directory) DeleteBucket(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.buckets, name)
}

// Bucket returns a bucket by name.
func (d *Directory) Bucket(name string) (Bucket, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	b, ok := d.buckets[name]
	return b, ok
}

// Buckets returns every bucket.
func (d *Directory) Buckets() []Bucket {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Bucket, 0, len(d.buckets))
	for _, b := range d.buckets {
		out = append(out, b)
	}
	return out
}

// identityPolicies are what an identity's own permissions are: its role's policies for a role session
// (looked up now, so policy changes apply to live sessions), else its user policies.
func (d *Directory) identityPolicies(id Identity) []Policy {
	if id.RoleARN != "" {
		r, _ := d.Role(id.RoleARN)
		return r.PermissionPolicies
	}
	return id.Policies
}

// Authorize decides whether id may perform action on resource, like IAM: an explicit Deny in the
// identity's policies or the bucket policy refuses; within the bucket owner's account an Allow in
// either grants; across accounts both must allow. Admin identities may do anything.
func (d *Directory) Authorize(id Identity, action, resource string, bucket *Bucket) error {
	if id.Admin {
		return nil
	}
	req := AuthzRequest{Principal: id.PrincipalARN, Action: action, Resource: resource}
	identity := NotApplicable
	for _, p := range d.identityPolicies(id) {
		identity = max(identity, p.Evaluate(req))
	}
	resourceDecision := NotApplicable
	sameAccount := true
	if bucket != nil {
		if bucket.Policy != nil {
			resourceDecision = bucket.Policy.Evaluate(req)
		}
		owner := bucket.Account
		if owner == "" {
			owner = DefaultAccountID
		}
		sameAccount = AccountOf(id.PrincipalARN) == owner
	}
	allowed := false
	switch {
	case identity == ExplicitDeny || resourceDecision == ExplicitDeny:
	case sameAccount:
		allowed = identity == Allow || resourceDecision == Allow
	default:
		allowed = identity == Allow && resourceDecision == Allow
	}
	if allowed {
		return nil
	}
	return &Error{Code: "AccessDenied", Status: http.StatusForbidden,
		Message: fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s", id.PrincipalARN, action, resource)}
}
