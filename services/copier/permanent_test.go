package copier

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// The STS lock of a destination's credentials is released only by its owner: a copier whose lock
// expired (a long STS call, a pause) and was taken over by another copier does not delete the other's
// lock when it finishes.
func TestACredentialLockTakenOverByAnotherOwnerIsNotReleasedByTheFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server; run without -short")
	}
	_, rdb := testenv.Redis(t)
	ctx := context.Background()
	first, err := newCredCache(rdb, testCredsKey, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	second, err := newCredCache(rdb, testCredsKey, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const lock = "s3dest:creds:dest-lock:0123456789abcdef:lock"
	release, ok, err := first.lock(ctx, lock, 30*time.Second)
	if err != nil || !ok {
		t.Fatalf("the first copier did not get the free lock: %v %v", ok, err)
	}
	if _, ok, _ := second.lock(ctx, lock, 30*time.Second); ok {
		t.Fatal("a second copier got a lock that is held")
	}
	// The first owner's lock expires while it still works; the second takes it.
	if err := rdb.Del(ctx, lock).Err(); err != nil {
		t.Fatal(err)
	}
	release2, ok, err := second.lock(ctx, lock, 30*time.Second)
	if err != nil || !ok {
		t.Fatalf("the second copier did not get the expired lock: %v %v", ok, err)
	}
	release() // the first finishes late
	if n, _ := rdb.Exists(ctx, lock).Result(); n != 1 {
		t.Fatal("the first owner deleted the lock the second owner holds")
	}
	release2()
	if n, _ := rdb.Exists(ctx, lock).Result(); n != 0 {
		t.Fatal("the owner's release left its lock in place")
	}
}

// An S3 refusal that can never succeed (a key longer than S3 allows, a bucket name S3 calls invalid)
// dead-letters the file for that destination with the reason and the S3 code, and the status says a
// file was dropped, instead of retrying it forever.
func TestAnS3RefusalThatCanNeverSucceedDeadLettersTheFileWithTheReason(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "long")
	e.g.CreateBucket(t, "badname")
	longPrefix := "long/" + strings.Repeat("p", 1000) // the key passes S3's 1024 bytes
	const roleLong, roleBad = "arn:aws:iam::111111111111:role/long", "arn:aws:iam::111111111111:role/badname"
	e.customerRole(t, roleLong, longPrefix, "")
	e.customerRole(t, roleBad, "badname", "")
	e.destination(t, "dest-long", "src-long", longPrefix, roleLong, "us-east-1")
	e.destination(t, "dest-badname", "src-badname", "badname", roleBad, "us-east-1")
	e.mu.Lock()
	e.fault = func(r *http.Request) (int, string) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/badname/") {
			return http.StatusBadRequest, "InvalidBucketName"
		}
		return 0, ""
	}
	e.mu.Unlock()
	e.start(t, e.config())
	e.stage(t, "src-long", day1, "toolong", `{"messageId":"long-1"}`)
	e.stage(t, "src-badname", day1, "badname", `{"messageId":"bad-1"}`)

	dl, err := e.js.Stream(e.ctx, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	for source, want := range map[string]string{"src-long": "KeyTooLong", "src-badname": "InvalidBucketName"} {
		var msg *jetstream.RawStreamMsg
		testenv.Eventually(t, 30*time.Second, "the dead letter of "+source, func() bool {
			msg, err = dl.GetLastMsgForSubject(e.ctx, "deadletter.copier."+source)
			return err == nil
		})
		if r := msg.Header.Get(bus.HeaderReason); !strings.Contains(r, want) || !strings.Contains(r, "dest-") {
			t.Errorf("dead letter reason %q does not name the S3 code %s and the destination", r, want)
		}
	}
	for _, dest := range []string{"dest-long", "dest-badname"} {
		testenv.Eventually(t, 10*time.Second, dest+"'s status to say a file was dropped", func() bool {
			return strings.HasPrefix(e.lastError(t, dest, day1), "A file was dropped: ")
		})
	}
}
