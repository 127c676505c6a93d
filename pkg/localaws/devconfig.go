package localaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"time"
)

// DevConfig is the `--dev-aws-config` file: buckets, roles and users to add to the local S3 and STS.
//
//	{"buckets": ["b1", {"name": "b2", "region": "eu-west-1", "account": "111111111111", "policy": {…}}],
//	 "roles": [{"arn": "arn:aws:iam::111111111111:role/r", "trustPolicy": {…}, "permissionPolicies": [{…}]}],
//	 "users": [{"arn": "arn:aws:iam::000000000000:user/u", "accessKeyId": "…", "secretAccessKey": "…", "policies": [{…}]}]}
//
// Policies are IAM JSON documents exactly as in AWS.
type DevConfig struct {
	Buckets []Bucket
	Roles   []Role
	Users   []Identity
}

var (
	roleARNRE    = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)
	userARNRE    = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:user/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)
	bucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	accountRE    = regexp.MustCompile(`^[0-9]{12}$`)
)

// LoadDevConfig reads and checks a dev config file.
func LoadDevConfig(path string) (DevConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return DevConfig{}, err
	}
	return ParseDevConfig(data)
}

// ParseDevConfig checks a dev config; errors name the JSON path and the rule.
func ParseDevConfig(data []byte) (DevConfig, error) {
	var raw struct {
		Buckets []json.RawMessage `json:"buckets"`
		Roles   []struct {
			ARN                       string            `json:"arn"`
			TrustPolicy               json.RawMessage   `json:"trustPolicy"`
			PermissionPolicies        []json.RawMessage `json:"permissionPolicies"`
			MaxSessionDurationSeconds int               `json:"maxSessionDurationSeconds"`
		} `json:"roles"`
		Users []struct {
			ARN             string            `json:"arn"`
			AccessKeyID     string            `json:"accessKeyId"`
			SecretAccessKey string            `json:"secretAccessKey"`
			Policies        []json.RawMessage `json:"policies"`
		} `json:"users"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return DevConfig{}, fmt.Errorf("not a dev AWS config (buckets, roles, users): %w", err)
	}
	var c DevConfig
	for i, rb := range raw.Buckets {
		var b Bucket
		var name string
		if json.Unmarshal(rb, &name) == nil {
			b.Name = name
		} else {
			var obj struct {
				Name    string          `json:"name"`
				Region  string          `json:"region"`
				Account string          `json:"account"`
				Policy  json.RawMessage `json:"policy"`
			}
			if err := json.Unmarshal(rb, &obj); err != nil {
				return DevConfig{}, fmt.Errorf("buckets[%d]: must be a name or {name, region, account, policy}: %w", i, err)
			}
			b = Bucket{Name: obj.Name, Region: obj.Region, Account: obj.Account}
			if len(obj.Policy) > 0 {
				p, err := ParsePolicy(obj.Policy)
				if err != nil {
					return DevConfig{}, fmt.Errorf("buckets[%d].policy: %w", i, err)
				}
				b.Policy = &p
			}
		}
		if !bucketNameRE.MatchString(b.Name) {
			return DevConfig{}, fmt.Errorf("buckets[%d].name: %q is not a valid bucket name (3-63 lowercase letters, digits, dots, hyphens)", i, b.Name)
		}
		if b.Account != "" && !accountRE.MatchString(b.Account) {
			return DevConfig{}, fmt.Errorf("buckets[%d].account: must be 12 digits, got %q", i, b.Account)
		}
		c.Buckets = append(c.Buckets, b)
	}
	for i, r := range raw.Roles {
		if !roleARNRE.MatchString(r.ARN) {
			return DevConfig{}, fmt.Errorf("roles[%d].arn: must look like arn:aws:iam::123456789012:role/name, got %q", i, r.ARN)
		}
		trust, err := ParsePolicy(r.TrustPolicy)
		if err != nil {
			return DevConfig{}, fmt.Errorf("roles[%d].trustPolicy: %w", i, err)
		}
		role := Role{ARN: r.ARN, TrustPolicy: trust, MaxSessionDuration: time.Duration(r.MaxSessionDurationSeconds) * time.Second}
		for j, pb := range r.PermissionPolicies {
			p, err := ParsePolicy(pb)
			if err != nil {
				return DevConfig{}, fmt.Errorf("roles[%d].permissionPolicies[%d]: %w", i, j, err)
			}
			role.PermissionPolicies = append(role.PermissionPolicies, p)
		}
		c.Roles = append(c.Roles, role)
	}
	for i, u := range raw.Users {
		if !userARNRE.MatchString(u.ARN) {
			return DevConfig{}, fmt.Errorf("users[%d].arn: must look like arn:aws:iam::123456789012:user/name, got %q", i, u.ARN)
		}
		if len(u.AccessKeyID) < 16 || len(u.SecretAccessKey) < 16 {
			return DevConfig{}, fmt.Errorf("users[%d]: accessKeyId and secretAccessKey must be at least 16 characters", i)
		}
		id := Identity{AccessKeyID: u.AccessKeyID, SecretAccessKey: u.SecretAccessKey, PrincipalARN: u.ARN}
		for j, pb := range u.Policies {
			p, err := ParsePolicy(pb)
			if err != nil {
				return DevConfig{}, fmt.Errorf("users[%d].policies[%d]: %w", i, j, err)
			}
			id.Policies = append(id.Policies, p)
		}
		c.Users = append(c.Users, id)
	}
	return c, nil
}

// Apply adds the config's roles, users and buckets to dir (the S3 server must also create the buckets).
func (c DevConfig) Apply(dir *Directory) {
	for _, r := range c.Roles {
		dir.PutRole(r)
	}
	for _, u := range c.Users {
		dir.AddIdentity(u)
	}
	for _, b := range c.Buckets {
		dir.PutBucket(b)
	}
}
