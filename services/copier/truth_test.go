package copier

import (
	"context"
	"testing"
)

// Redis is a cache of what was delivered, never the truth: a marker restored from an old snapshot, or
// written by another deployment, for a file that never reached the bucket must not make the copier skip
// it, and after a FLUSHALL files keep arriving (a redelivered one meets If-None-Match in the bucket).
func TestARedisMarkerForAFileNeverDeliveredDoesNotSkipItAndAFlushStopsNothing(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "truth")
	e.customerRole(t, "arn:aws:iam::111111111111:role/truth", "truth", "")
	e.destination(t, "dest-truth", "src-truth", "truth", "arn:aws:iam::111111111111:role/truth", "us-east-1")
	ctx := context.Background()
	if err := e.rdb.Set(ctx, "s3dest:delivered:dest-truth:stale-1", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	e.start(t, e.config())
	e.stage(t, "src-truth", day1, "stale-1", `{"messageId":"s-1"}`)
	e.waitKeys(t, "truth", 1)

	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	e.stage(t, "src-truth", day1, "after-flush", `{"messageId":"s-2"}`)
	keys := e.waitKeys(t, "truth", 2)
	if len(keys) != 2 {
		t.Fatalf("the bucket holds %v, want the two files once each", keys)
	}
}
