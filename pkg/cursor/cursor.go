// Package cursor keeps per-day progress counters in Redis: for each (source, received day) what the
// batcher sealed, and for each (destination, received day) what the copier delivered, failed with and
// dead-lettered (the destination's status). They are bookkeeping and a fast path, never the source of
// truth: losing Redis loses no event and duplicates none, and a destination's status is a fold of its
// delivery history in JetStream (Folder), folded again when Redis lost it.
package cursor

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kind says whose progress a cursor counts.
type Kind string

// Kinds of cursor.
const (
	Sealed    Kind = "sealed"    // per source: files sealed by the batcher
	Delivered Kind = "delivered" // per destination: files the copier delivered
)

// Day is the progress of one (owner, received day).
type Day struct {
	DayMs     int64
	Files     int64
	Events    int64
	Bytes     int64
	LastSeq   uint64
	LastAt    time.Time
	LastError string
	ErrorAt   time.Time
	// DeadFiles and DeadEvents were dead-lettered instead of delivered (the retention ended).
	DeadFiles  int64
	DeadEvents int64
}

// Store reads and writes cursors.
type Store struct {
	rdb *redis.Client
	ttl time.Duration
}

// New returns a store that keeps each day's cursor for ttl after its last update.
func New(rdb *redis.Client, ttl time.Duration) *Store { return &Store{rdb: rdb, ttl: ttl} }

func dayKey(k Kind, owner string, dayMs int64) string {
	return dayKeyPrefix(k, owner) + strconv.FormatInt(dayMs, 10)
}

func dayKeyPrefix(k Kind, owner string) string { return fmt.Sprintf("s3dest:cursor:%s:%s:", k, owner) }

func daysKey(k Kind, owner string) string { return fmt.Sprintf("s3dest:days:%s:%s", k, owner) }

// Add records one more file for (owner, day): its events, bytes and last stream sequence.
func (s *Store) Add(ctx context.Context, k Kind, owner string, dayMs, events, bytes int64, lastSeq uint64, at time.Time) error {
	key := dayKey(k, owner, dayMs)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, key, "files", 1)
		p.HIncrBy(ctx, key, "events", events)
		p.HIncrBy(ctx, key, "bytes", bytes)
		p.HSet(ctx, key, "lastSeq", lastSeq, "lastAt", at.UnixMilli())
		p.HDel(ctx, key, "lastError", "errorAt")
		p.Expire(ctx, key, s.ttl)
		p.ZAdd(ctx, daysKey(k, owner), redis.Z{Score: float64(dayMs), Member: dayMs})
		p.Expire(ctx, daysKey(k, owner), s.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %s cursor %s/%d: %w", k, owner, dayMs, err)
	}
	return nil
}

// Get returns the cursor of (owner, day); ok is false when Redis has none.
func (s *Store) Get(ctx context.Context, k Kind, owner string, dayMs int64) (d Day, ok bool, err error) {
	m, err := s.rdb.HGetAll(ctx, dayKey(k, owner, dayMs)).Result()
	if err != nil {
		return Day{}, false, fmt.Errorf("read %s cursor %s/%d: %w", k, owner, dayMs, err)
	}
	if len(m) == 0 {
		return Day{DayMs: dayMs}, false, nil
	}
	d = Day{DayMs: dayMs, LastError: m["lastError"]}
	d.Files, _ = strconv.ParseInt(m["files"], 10, 64)
	d.Events, _ = strconv.ParseInt(m["events"], 10, 64)
	d.Bytes, _ = strconv.ParseInt(m["bytes"], 10, 64)
	d.LastSeq, _ = strconv.ParseUint(m["lastSeq"], 10, 64)
	d.DeadFiles, _ = strconv.ParseInt(m["deadFiles"], 10, 64)
	d.DeadEvents, _ = strconv.ParseInt(m["deadEvents"], 10, 64)
	if ms, err := strconv.ParseInt(m["lastAt"], 10, 64); err == nil {
		d.LastAt = time.UnixMilli(ms).UTC()
	}
	if ms, err := strconv.ParseInt(m["errorAt"], 10, 64); err == nil {
		d.ErrorAt = time.UnixMilli(ms).UTC()
	}
	return d, true, nil
}

// Days returns every day with a cursor for owner, newest first.
func (s *Store) Days(ctx context.Context, k Kind, owner string) ([]Day, error) {
	days, err := s.rdb.ZRevRange(ctx, daysKey(k, owner), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list %s days of %s: %w", k, owner, err)
	}
	out := make([]Day, 0, len(days))
	for _, ds := range days {
		ms, err := strconv.ParseInt(ds, 10, 64)
		if err != nil {
			continue
		}
		d, ok, err := s.Get(ctx, k, owner, ms)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, nil
}
