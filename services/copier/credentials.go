package copier

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/s3dest/s3dest/pkg/awsclient"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
)

// refreshBefore is how long before expiry cached credentials are replaced, so no copy starts with
// credentials that expire mid-upload.
const refreshBefore = 10 * time.Minute

// credCache hands out each destination's role credentials. They are cached in Redis, encrypted with
// AES-GCM, under a key that changes with the role and workspace, so a settings change never reuses old
// credentials. One STS call per destination at a time: singleflight within a process, a Redis lock
// across copiers.
type credCache struct {
	rdb     *redis.Client
	aead    cipher.AEAD
	clients *awsclient.Clients
	log     *slog.Logger
	clock   atomic.Pointer[func() time.Time] // time.Now; tests move it
	// refresh is refreshBefore; the STS benchmark scales it down with the sessions.
	refresh time.Duration
	flight  singleflight.Group
	// assumed, if set, is told the outcome of every AssumeRole into a customer's role (the metrics).
	assumed func(context.Context, error)

	mu           sync.Mutex
	intermediate aws.Credentials

	// mem keeps the credentials this process last used per cache key, so a copy does not read and
	// decrypt Redis each time; drop clears it with Redis.
	memMu sync.Mutex
	mem   map[string]aws.Credentials
}

func newCredCache(rdb *redis.Client, keyB64 string, clients *awsclient.Clients, log *slog.Logger) (*credCache, error) {
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		return nil, fmt.Errorf("credentials key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credentials key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	c := &credCache{rdb: rdb, aead: aead, clients: clients, log: log, refresh: refreshBefore, mem: map[string]aws.Credentials{}}
	c.setClock(time.Now)
	return c, nil
}

func (c *credCache) setClock(now func() time.Time) { c.clock.Store(&now) }

func (c *credCache) now() time.Time { return (*c.clock.Load())() }

type cachedCreds struct {
	AccessKeyID     string    `json:"a"`
	SecretAccessKey string    `json:"s"`
	SessionToken    string    `json:"t"`
	Expires         time.Time `json:"e"`
}

func cacheKey(d *configv1.Destination, workspaceID string) string {
	h := sha256.Sum256([]byte(d.GetSettings().GetIamRoleArn() + "\x00" + workspaceID))
	return "s3dest:creds:" + d.GetId() + ":" + hex.EncodeToString(h[:8])
}

// get returns credentials for the destination's role: from this process's memory, else Redis, else STS.
func (c *credCache) get(ctx context.Context, d *configv1.Destination, workspaceID string) (aws.CredentialsProvider, error) {
	key := cacheKey(d, workspaceID)
	c.memMu.Lock()
	creds, ok := c.mem[key]
	c.memMu.Unlock()
	if ok && creds.Expires.Sub(c.now()) > c.refresh {
		return credentials.StaticCredentialsProvider{Value: creds}, nil
	}
	v, err, _ := c.flight.Do(key, func() (any, error) { return c.load(ctx, key, d, workspaceID) })
	if err != nil {
		return nil, err
	}
	creds = v.(aws.Credentials)
	c.remember(key, creds)
	return credentials.StaticCredentialsProvider{Value: creds}, nil
}

func (c *credCache) remember(key string, creds aws.Credentials) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	c.mem[key] = creds
}

// drop forgets a destination's cached credentials, after a 403 or a settings change.
func (c *credCache) drop(ctx context.Context, d *configv1.Destination, workspaceID string) {
	c.memMu.Lock()
	delete(c.mem, cacheKey(d, workspaceID))
	c.memMu.Unlock()
	if err := c.rdb.Del(ctx, cacheKey(d, workspaceID)).Err(); err != nil {
		c.log.Warn("drop cached credentials", "destination", d.GetId(), "error", err)
	}
}

func (c *credCache) load(ctx context.Context, key string, d *configv1.Destination, workspaceID string) (aws.Credentials, error) {
	if creds, ok := c.read(ctx, key); ok {
		return creds, nil
	}
	// Whoever holds the lock calls STS; the others wait for its result to appear.
	lock := key + ":lock"
	for attempt := 0; ; attempt++ {
		release, got, err := c.lock(ctx, lock, 30*time.Second)
		if err != nil {
			c.log.Warn("credential lock unavailable; calling STS without it", "destination", d.GetId(), "error", err)
			break
		}
		if got {
			defer release()
			if creds, ok := c.read(ctx, key); ok {
				return creds, nil
			}
			break
		}
		if attempt >= 100 {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return aws.Credentials{}, ctx.Err()
		case <-t.C:
		}
		if creds, ok := c.read(ctx, key); ok {
			return creds, nil
		}
	}

	inter, err := c.intermediateCreds(ctx)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("%w: %w", errIntermediate, err)
	}
	creds, err := c.clients.AssumeCustomerRole(ctx, inter, d.GetSettings().GetIamRoleArn(), workspaceID, sessionName(d.GetId()))
	if c.assumed != nil {
		c.assumed(ctx, err)
	}
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("assume role %s: %w", d.GetSettings().GetIamRoleArn(), err)
	}
	c.write(ctx, key, creds)
	return creds, nil
}

// unlock deletes a lock only if it still holds the caller's token: a lock that expired and was taken by
// another copier stays with its new owner.
var unlock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// lock takes the Redis lock named key for ttl if it is free, under a random token of this holder's;
// release gives it up if it is still this holder's (compare-and-delete).
func (c *credCache) lock(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ok, err = c.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return nil, ok, err
	}
	return func() {
		if err := unlock.Run(context.WithoutCancel(ctx), c.rdb, []string{key}, token).Err(); err != nil {
			c.log.Warn("release the credential lock", "error", err)
		}
	}, true, nil
}

// intermediateCreds caches our intermediate role's session in memory.
func (c *credCache) intermediateCreds(ctx context.Context) (aws.CredentialsProvider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.intermediate.AccessKeyID != "" && c.intermediate.Expires.Sub(c.now()) > c.refresh {
		return credentials.StaticCredentialsProvider{Value: c.intermediate}, nil
	}
	p, err := c.clients.Intermediate(ctx, "s3dest-copier")
	if err != nil {
		return nil, err
	}
	creds, err := p.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	if creds.CanExpire {
		c.intermediate = creds
	}
	return p, nil
}

func (c *credCache) read(ctx context.Context, key string) (aws.Credentials, bool) {
	blob, err := c.rdb.Get(ctx, key).Bytes()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			c.log.Warn("read cached credentials", "error", err)
		}
		return aws.Credentials{}, false
	}
	ns := c.aead.NonceSize()
	if len(blob) < ns {
		return aws.Credentials{}, false
	}
	plain, err := c.aead.Open(nil, blob[:ns], blob[ns:], []byte(key))
	if err != nil {
		c.log.Warn("cached credentials do not decrypt (was the key rotated?); assuming the role again")
		return aws.Credentials{}, false
	}
	var cc cachedCreds
	if json.Unmarshal(plain, &cc) != nil || cc.Expires.Sub(c.now()) <= c.refresh {
		return aws.Credentials{}, false
	}
	return aws.Credentials{AccessKeyID: cc.AccessKeyID, SecretAccessKey: cc.SecretAccessKey, SessionToken: cc.SessionToken,
		CanExpire: true, Expires: cc.Expires, Source: "s3dest-cache"}, true
}

func (c *credCache) write(ctx context.Context, key string, creds aws.Credentials) {
	ttl := creds.Expires.Sub(c.now()) - c.refresh
	if ttl <= 0 {
		return
	}
	plain, _ := json.Marshal(cachedCreds{creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken, creds.Expires})
	nonce := make([]byte, c.aead.NonceSize())
	_, _ = rand.Read(nonce)
	blob := c.aead.Seal(nonce, nonce, plain, []byte(key))
	c.remember(key, creds)
	if err := c.rdb.Set(ctx, key, blob, ttl).Err(); err != nil {
		c.log.Warn("cache credentials", "error", err)
	}
}

// sessionName is the RoleSessionName: it names us and the destination in the customer's CloudTrail.
func sessionName(destinationID string) string {
	n := "s3dest-" + destinationID
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}
