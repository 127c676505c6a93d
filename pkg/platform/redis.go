package platform

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ConnectRedis opens a client for a redis:// URL, a rediss:// URL (TLS), either with a password
// (redis://:PASSWORD@host:6379/0), or a bare host:port, and checks that it answers. Errors name the
// address, never the URL, which may hold the password.
func ConnectRedis(ctx context.Context, url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		opts = &redis.Options{Addr: url}
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect redis %s: %w", opts.Addr, err)
	}
	return c, nil
}
