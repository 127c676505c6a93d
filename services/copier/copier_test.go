package copier

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/cursor"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/testenv"
)

func readObject(t testing.TB, e *env, bucket, key string) string {
	t.Helper()
	out, err := e.g.RootS3().GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	if ct := aws.ToString(out.ContentType); ct != ContentType {
		t.Errorf("%s has Content-Type %q, want %q", key, ct, ContentType)
	}
	zr, err := gzip.NewReader(out.Body)
	if err != nil {
		t.Fatalf("%s is not gzip: %v", key, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFilesLandUnderThePrefixOfTheirOwnDestinationAndNowhereElse(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "bucket-a")
	e.g.CreateBucket(t, "bucket-b")
	e.customerRole(t, "arn:aws:iam::111111111111:role/a", "bucket-a/path/prefix", "")
	e.customerRole(t, "arn:aws:iam::222222222222:role/b", "bucket-b", "")
	e.destination(t, "dest-a", "src-a", "bucket-a/path/prefix", "arn:aws:iam::111111111111:role/a", "us-east-1")
	e.destination(t, "dest-b", "src-b", "bucket-b", "arn:aws:iam::222222222222:role/b", "us-east-1")
	e.start(t, e.config())

	e.stage(t, "src-a", day1, "a1", `{"messageId":"a-1"}`, `{"messageId":"a-2"}`)
	e.stage(t, "src-b", day1, "b1", `{"messageId":"b-1"}`)
	e.stage(t, "src-a", day1+86_400_000, "a2", `{"messageId":"a-3"}`)

	keysA := e.waitKeys(t, "bucket-a", 2)
	keysB := e.waitKeys(t, "bucket-b", 1)
	wantA := map[string]string{
		fmt.Sprintf("path/prefix/segment-logs/src-a/%d/a1.gz", day1):            "{\"messageId\":\"a-1\"}\n{\"messageId\":\"a-2\"}\n",
		fmt.Sprintf("path/prefix/segment-logs/src-a/%d/a2.gz", day1+86_400_000): "{\"messageId\":\"a-3\"}\n",
	}
	wantB := map[string]string{fmt.Sprintf("segment-logs/src-b/%d/b1.gz", day1): "{\"messageId\":\"b-1\"}\n"}
	for bucket, c := range map[string]struct {
		keys []string
		want map[string]string
	}{"bucket-a": {keysA, wantA}, "bucket-b": {keysB, wantB}} {
		if len(c.keys) != len(c.want) {
			t.Errorf("%s holds %v, want exactly %d files", bucket, c.keys, len(c.want))
		}
		for _, k := range c.keys {
			want, ok := c.want[k]
			if !ok {
				t.Errorf("%s holds %s, which is not one of its destination's files", bucket, k)
				continue
			}
			if got := readObject(t, e, bucket, k); got != want {
				t.Errorf("%s/%s = %q, want %q", bucket, k, got, want)
			}
			e.mu.Lock()
			acl := e.acls["/"+bucket+"/"+k]
			e.mu.Unlock()
			if acl != "bucket-owner-full-control" {
				t.Errorf("%s/%s was written with x-amz-acl %q, want bucket-owner-full-control", bucket, k, acl)
			}
		}
	}
}

func TestSlowDownAndServerErrorsAreRetriedUntilTheFileIsWritten(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "flaky")
	e.customerRole(t, "arn:aws:iam::111111111111:role/flaky", "flaky", "")
	e.destination(t, "dest-flaky", "src-flaky", "flaky", "arn:aws:iam::111111111111:role/flaky", "us-east-1")
	var puts atomic.Int32
	faults := []struct {
		status int
		code   string
	}{{503, "SlowDown"}, {500, "InternalError"}, {503, "ServiceUnavailable"}}
	e.mu.Lock()
	e.fault = func(r *http.Request) (int, string) {
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/flaky/") {
			return 0, ""
		}
		if n := int(puts.Add(1)); n <= len(faults) {
			return faults[n-1].status, faults[n-1].code
		}
		return 0, ""
	}
	e.mu.Unlock()
	e.start(t, e.config())
	e.stage(t, "src-flaky", day1, "f1", `{"messageId":"f-1"}`)

	keys := e.waitKeys(t, "flaky", 1)
	if len(keys) != 1 {
		t.Fatalf("flaky holds %v, want one file", keys)
	}
	if n := puts.Load(); n != int32(len(faults))+1 {
		t.Errorf("the copier sent %d PUTs, want %d: one per injected SlowDown/5xx and the one that succeeded", n, len(faults)+1)
	}
}

func TestAWrongRegionIsReportedWithTheBucketsRealRegion(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "east")
	e.mu.Lock()
	e.regions["east"] = "us-east-1" // the router answers as S3 does for a request signed for another region
	e.mu.Unlock()
	e.customerRole(t, "arn:aws:iam::111111111111:role/east", "east", "")
	d := e.destination(t, "dest-region", "src-region", "east", "arn:aws:iam::111111111111:role/east", "eu-west-1")
	e.start(t, e.config())
	e.stage(t, "src-region", day1, "r1", `{"messageId":"r-1"}`)

	want := `Wrong region. The bucket "east" is in us-east-1, not in eu-west-1: please set the AWS Region setting to us-east-1.`
	testenv.Eventually(t, 30*time.Second, "the wrong region to be reported", func() bool { return e.lastError(t, "dest-region", day1) == want })
	if keys := e.keys(t, "east"); len(keys) != 0 {
		t.Fatalf("east holds %v before the region is fixed", keys)
	}
	d.Settings.Region = "us-east-1"
	e.putDestination(t, d)
	if keys := e.waitKeys(t, "east", 1); len(keys) != 1 {
		t.Fatalf("east holds %v after the region was fixed, want one file", keys)
	}
	testenv.Eventually(t, 10*time.Second, "the error to clear", func() bool { return e.lastError(t, "dest-region", day1) == "" })
}

func TestA403MarksTheDestinationFailingAndItsFilesArriveOnceAfterTheRoleIsFixed(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "cust")
	const role = "arn:aws:iam::111111111111:role/cust"
	e.customerRole(t, role, "cust", "")
	d := e.destination(t, "dest-403", "src-403", "cust", role, "us-east-1")
	e.start(t, e.config())

	e.stage(t, "src-403", day1, "ok1", `{"messageId":"ok-1"}`)
	e.waitKeys(t, "cust", 1)

	// Mid-run the customer breaks the role's trust (an External ID that is not the workspace): the
	// cached credentials still work until they are refused, so also revoke the write permission.
	e.customerRole(t, role, "cust", "not-the-workspace")
	d.Settings.S3Bucket = "cust/elsewhere" // a settings change drops the cached credentials at once
	e.putDestination(t, d)
	e.stage(t, "src-403", day1, "late1", `{"messageId":"late-1"}`)
	e.stage(t, "src-403", day1, "late2", `{"messageId":"late-2"}`)
	testenv.Eventually(t, 30*time.Second, "the destination to be marked failing", func() bool {
		return e.lastError(t, "dest-403", day1) == MsgExternalID
	})
	calls := e.assumeCalls(role)
	if keys := e.keys(t, "cust"); len(keys) != 1 {
		t.Fatalf("cust holds %v while the role is broken", keys)
	}

	// Now the trust is right but the role may not write where the files go: PutObject is refused.
	e.customerRole(t, role, "cust/somewhere-else", "")
	testenv.Eventually(t, 30*time.Second, "the missing PutObject permission to be reported", func() bool {
		return e.lastError(t, "dest-403", day1) == MsgAddPutObject
	})
	if n := e.assumeCalls(role); n <= calls {
		t.Fatalf("no AssumeRole after the trust was fixed (%d calls)", n)
	}

	// The customer fixes the role: the waiting files arrive, once each, on the slow schedule.
	e.customerRole(t, role, "cust/elsewhere", "")
	keys := e.waitKeys(t, "cust", 3)
	want := []string{
		fmt.Sprintf("segment-logs/src-403/%d/ok1.gz", day1),
		fmt.Sprintf("elsewhere/segment-logs/src-403/%d/late1.gz", day1),
		fmt.Sprintf("elsewhere/segment-logs/src-403/%d/late2.gz", day1),
	}
	if strings.Join(sorted(keys), ",") != strings.Join(sorted(want), ",") {
		t.Fatalf("cust holds %v, want %v", keys, want)
	}
	testenv.Eventually(t, 10*time.Second, "the error to clear", func() bool { return e.lastError(t, "dest-403", day1) == "" })
}

func TestAMissingBucketIsReportedAndItsFilesArriveOnceTheBucketExists(t *testing.T) {
	e := newEnv(t)
	const role = "arn:aws:iam::111111111111:role/later"
	e.customerRole(t, role, "later", "")
	e.destination(t, "dest-later", "src-later", "later", role, "us-east-1")
	e.start(t, e.config())
	e.stage(t, "src-later", day1, "l1", `{"messageId":"l-1"}`)

	want := MsgFollowSetup + ` The bucket "later" does not exist: check the Bucket Name setting.`
	testenv.Eventually(t, 30*time.Second, "the missing bucket to be reported", func() bool { return e.lastError(t, "dest-later", day1) == want })
	e.g.CreateBucket(t, "later")
	if keys := e.waitKeys(t, "later", 1); len(keys) != 1 {
		t.Fatalf("later holds %v, want one file", keys)
	}
}

func TestAnExpiredCredentialIsReplacedBeforeItExpiresAndARefusedOneAtOnce(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "exp")
	const role = "arn:aws:iam::111111111111:role/exp"
	e.customerRole(t, role, "exp", "")
	d := e.destination(t, "dest-exp", "src-exp", "exp", role, "us-east-1")
	c := e.start(t, e.config())
	e.stage(t, "src-exp", day1, "e1", `{"messageId":"e-1"}`)
	e.waitKeys(t, "exp", 1)
	if n := e.assumeCalls(role); n != 1 {
		t.Fatalf("%d AssumeRole calls for the first file, want 1", n)
	}
	e.stage(t, "src-exp", day1, "e2", `{"messageId":"e-2"}`)
	e.waitKeys(t, "exp", 2)
	if n := e.assumeCalls(role); n != 1 {
		t.Fatalf("%d AssumeRole calls after the second file, want 1 (cached)", n)
	}

	// 55 minutes later the one-hour session is within refreshBefore of its end: a new one is assumed.
	c.creds.setClock(func() time.Time { return time.Now().Add(55 * time.Minute) })
	e.stage(t, "src-exp", day1, "e3", `{"messageId":"e-3"}`)
	e.waitKeys(t, "exp", 3)
	if n := e.assumeCalls(role); n != 2 {
		t.Fatalf("%d AssumeRole calls after the session neared its end, want 2", n)
	}
	c.creds.setClock(time.Now)

	// The store refuses the cached credentials (expired or revoked early): they are dropped and the
	// file goes out with new ones.
	c.creds.write(e.ctx, cacheKey(d, testWorkspace), awsCredentials("AKIAEXPIREDEXPIRED00", "expired-secret", "expired-token", time.Now().Add(time.Hour)))
	e.stage(t, "src-exp", day1, "e4", `{"messageId":"e-4"}`)
	e.waitKeys(t, "exp", 4)
	if n := e.assumeCalls(role); n != 3 {
		t.Fatalf("%d AssumeRole calls after the store refused the cached credentials, want 3", n)
	}
}

func TestADisabledDestinationReceivesNothingWhileDisabled(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "dis")
	const role = "arn:aws:iam::111111111111:role/dis"
	e.customerRole(t, role, "dis", "")
	d := e.destination(t, "dest-dis", "src-dis", "dis", role, "us-east-1")
	d.Enabled = false
	e.putDestination(t, d)
	e.start(t, e.config())
	e.stage(t, "src-dis", day1, "off1", `{"messageId":"off-1"}`)
	testenv.Eventually(t, 30*time.Second, "the disabled destination's lane to pass the file", func() bool {
		info, err := e.js.Stream(e.ctx, "BATCHES")
		if err != nil {
			return false
		}
		cons, err := info.Consumer(e.ctx, bus.CopierConsumer("dest-dis"))
		if err != nil {
			return false
		}
		ci, err := cons.Info(e.ctx)
		return err == nil && ci.AckFloor.Stream > 0 && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	d.Enabled = true
	e.putDestination(t, d)
	e.stage(t, "src-dis", day1, "on1", `{"messageId":"on-1"}`)
	keys := e.waitKeys(t, "dis", 1)
	if len(keys) != 1 || !strings.HasSuffix(keys[0], "/on1.gz") {
		t.Fatalf("dis holds %v, want only on1.gz (off1 was staged while the destination was disabled)", keys)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func awsCredentials(id, secret, token string, expires time.Time) aws.Credentials {
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: token, CanExpire: true, Expires: expires}
}

// The legacy Amazon S3 destination writes as our own principal (no AssumeRole) and asks for SSE-S3; during
// a migration it and the AWS S3 destination point at the same place, and the file is there once.
func TestTheLegacyAmazonS3DestinationWritesAsUsWithSSES3AndCanShareALocation(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "legacy")
	e.g.CreateBucket(t, "shared")
	const role = "arn:aws:iam::111111111111:role/shared"
	e.customerRole(t, role, "shared", "")
	legacy := func(id, source, bucket string) {
		d := e.destination(t, id, source, bucket, "", "us-east-1")
		d.Metadata = &configv1.DestinationMetadata{Id: layout.AmazonS3MetadataID, Slug: "amazon-s3"}
		e.putDestination(t, d)
	}
	legacy("dest-legacy", "src-legacy", "legacy")
	legacy("dest-old", "src-migrating", "shared")
	e.destination(t, "dest-new", "src-migrating", "shared", role, "us-east-1")
	cfg := e.config()
	cfg.EnableLegacyS3 = true
	e.start(t, cfg)

	e.stage(t, "src-legacy", day1, "old1", `{"messageId":"old-1"}`)
	keys := e.waitKeys(t, "legacy", 1)
	head, err := e.g.RootS3().HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String("legacy"), Key: aws.String(keys[0])})
	if err != nil {
		t.Fatal(err)
	}
	if head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
		t.Errorf("the legacy destination's file has server-side encryption %q, want AES256", head.ServerSideEncryption)
	}

	e.stage(t, "src-migrating", day1, "mig1", `{"messageId":"mig-1"}`)
	keys = e.waitKeys(t, "shared", 1)
	cur := cursor.New(e.rdb, time.Hour)
	testenv.Eventually(t, 30*time.Second, "both destinations to count the file", func() bool {
		a, _, _ := cur.Get(e.ctx, cursor.Delivered, "dest-old", day1)
		b, _, _ := cur.Get(e.ctx, cursor.Delivered, "dest-new", day1)
		return a.Files == 1 && b.Files == 1
	})
	if keys = e.keys(t, "shared"); len(keys) != 1 || keys[0] != fmt.Sprintf("segment-logs/src-migrating/%d/mig1.gz", day1) {
		t.Fatalf("shared holds %v, want mig1.gz once", keys)
	}
	if n := e.assumeCalls(testIntermediate); n != 1 {
		t.Errorf("%d AssumeRole calls of our intermediate role, want 1: the role-based destination's, none for the legacy ones", n)
	}
}

// A file whose staged object is gone (the staging retention ended while its destination was failing) is
// dead-lettered with the reason, and the destination's status says a file was dropped.
func TestAFileWhoseStagingRetentionEndedIsDeadLetteredWithTheReason(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "late")
	const role = "arn:aws:iam::111111111111:role/late"
	e.customerRole(t, role, "late", "")
	e.destination(t, "dest-late", "src-late", "late", role, "us-east-1")
	st := e.stage(t, "src-late", day1, "gone", `{"messageId":"gone-1"}`)
	if _, err := e.g.RootS3().DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(testStaging), Key: aws.String(st.GetStagingKey())}); err != nil {
		t.Fatal(err)
	}
	e.start(t, e.config())

	dl, err := e.js.Stream(e.ctx, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	testenv.Eventually(t, 30*time.Second, "the dead letter", func() bool {
		msg, err = dl.GetLastMsgForSubject(e.ctx, "deadletter.copier.src-late")
		return err == nil
	})
	if r := msg.Header.Get(bus.HeaderReason); !strings.Contains(r, st.GetStagingKey()) || !strings.Contains(r, "dest-late") {
		t.Errorf("dead letter reason %q does not name the staged file and the destination", r)
	}
	testenv.Eventually(t, 10*time.Second, "the status to say a file was dropped", func() bool {
		return strings.HasPrefix(e.lastError(t, "dest-late", day1), "A file was dropped: ")
	})
	if keys := e.keys(t, "late"); len(keys) != 0 {
		t.Errorf("late holds %v", keys)
	}
}
