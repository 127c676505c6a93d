package copier

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/s3dest/s3dest/pkg/cursor"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// A destination whose role refuses us has files waiting; the customer PATCHes iamRoleArn to a role
// that works. The very next attempts use the new role (never the old one again), the waiting files
// arrive within seconds (not on the slow schedule, which is 5 minutes here), and each arrives once.
func TestWaitingFilesArriveOnceWithinSecondsOfAPatchToAWorkingRoleAndTheOldRoleIsNeverAssumedAgain(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "fixed")
	const broken, works = "arn:aws:iam::111111111111:role/refuses", "arn:aws:iam::111111111111:role/works"
	e.customerRole(t, broken, "fixed", "not-the-workspace") // trusts us only with another External ID
	e.customerRole(t, works, "fixed", "")
	d := e.destination(t, "dest-fix", "src-fix", "fixed", broken, "us-east-1")
	cfg := e.config()
	cfg.FailingRetry = 5 * time.Minute
	e.start(t, cfg)

	const files = 7 // more than the lane's workers and its pull buffer
	var want []string
	for i := range files {
		name := fmt.Sprintf("wait%d", i)
		e.stage(t, "src-fix", day1, name, fmt.Sprintf(`{"messageId":"w-%d"}`, i))
		want = append(want, fmt.Sprintf("segment-logs/src-fix/%d/%s.gz", day1, name))
	}
	testenv.Eventually(t, 30*time.Second, "the destination to be marked failing", func() bool {
		return e.lastError(t, "dest-fix", day1) == MsgExternalID
	})
	oldCalls := e.assumeCalls(broken)

	d.Settings.IamRoleArn = works // what PATCH /destinations/{id} stores
	e.putDestination(t, d)
	fixed := time.Now()
	keys := e.waitKeys(t, "fixed", files)
	if took := time.Since(fixed); took > 15*time.Second {
		t.Errorf("the waiting files took %s to arrive after the fix, want seconds", took)
	}
	sort.Strings(keys)
	sort.Strings(want)
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("fixed holds %v, want %v", keys, want)
	}
	cur := cursor.New(e.rdb, time.Hour)
	testenv.Eventually(t, 10*time.Second, "every file counted", func() bool {
		day, _, _ := cur.Get(e.ctx, cursor.Delivered, "dest-fix", day1)
		return day.Files >= files
	})
	day, _, _ := cur.Get(e.ctx, cursor.Delivered, "dest-fix", day1)
	if day.Files != files || day.Events != files {
		t.Errorf("the cursor counts %d files and %d events, want %d of each: a file was delivered twice", day.Files, day.Events, files)
	}
	if n := e.assumeCalls(broken); n != oldCalls {
		t.Errorf("the old role was assumed %d more times after the PATCH", n-oldCalls)
	}
}
