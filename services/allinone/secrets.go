package allinone

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// secrets are generated on the first start and kept in the data directory (mode 0600), so a restart
// keeps the same admin token, keys and credential-encryption key. A secret that a data directory from
// an older version lacks is generated on the next start and added to the file; the others are kept.
type secrets struct {
	AdminToken string `json:"adminToken"`
	// ValidatorToken is what ValidatorService requires of its caller, the admin service. Nobody else
	// needs it, so the summary does not carry it.
	ValidatorToken string `json:"validatorToken"`
	CredentialsKey string `json:"credentialsKey"`
	// Root is the local S3's superuser, for the user to look into buckets.
	RootAccessKey string `json:"rootAccessKey"`
	RootSecretKey string `json:"rootSecretKey"`
	// Service is our own principal: it writes staging and assumes our intermediate role.
	ServiceAccessKey string `json:"serviceAccessKey"`
	ServiceSecretKey string `json:"serviceSecretKey"`
}

func loadSecrets(dataDir string) (secrets, error) {
	path := filepath.Join(dataDir, "secrets.json")
	var s secrets
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &s); err != nil {
			return s, fmt.Errorf("%s: %w", path, err)
		}
	case !os.IsNotExist(err):
		return s, err
	}
	added := false
	fill := func(field *string, generate func() string) {
		if *field == "" {
			*field, added = generate(), true
		}
	}
	fill(&s.AdminToken, func() string { return "s3dest_" + randomString(32) })
	fill(&s.ValidatorToken, func() string { return "s3dest_validator_" + randomString(32) })
	fill(&s.CredentialsKey, func() string {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		return base64.StdEncoding.EncodeToString(key)
	})
	fill(&s.RootAccessKey, func() string { return "AKIAROOT" + randomString(12) })
	fill(&s.RootSecretKey, func() string { return randomString(40) })
	fill(&s.ServiceAccessKey, func() string { return "AKIASVC" + randomString(13) })
	fill(&s.ServiceSecretKey, func() string { return randomString(40) })
	if !added {
		return s, nil
	}
	data, _ = json.MarshalIndent(s, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return s, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return s, fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphanumeric[int(b[i])%len(alphanumeric)]
	}
	return string(b)
}
