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
// keeps the same admin token, keys and credential-encryption key.
type secrets struct {
	AdminToken     string `json:"adminToken"`
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
	if err == nil {
		if err := json.Unmarshal(data, &s); err != nil {
			return s, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
	if !os.IsNotExist(err) {
		return s, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s = secrets{
		AdminToken:       "s3dest_" + randomString(32),
		CredentialsKey:   base64.StdEncoding.EncodeToString(key),
		RootAccessKey:    "AKIAROOT" + randomString(12),
		RootSecretKey:    randomString(40),
		ServiceAccessKey: "AKIASVC" + randomString(13),
		ServiceSecretKey: randomString(40),
	}
	data, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, data, 0o600); err != nil {
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
