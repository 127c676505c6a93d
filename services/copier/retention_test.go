package copier

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/cursor"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/retention"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// setRetention writes the installation's retention into the config store, as the admin service does
// at start; seconds are for tests only (every writer the operator can reach refuses less than 1h).
func (e *env) setRetention(t testing.TB, r time.Duration) {
	t.Helper()
	if err := e.store.PutSettings(e.ctx, &configv1.Settings{Retention: durationpb.New(r), UpdatedAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
}

// subjectCount is how many messages the stream holds on subject.
func (e *env) subjectCount(t testing.TB, stream, subject string) int {
	t.Helper()
	s, err := e.js.Stream(e.ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Subjects[subject])
}

// copierDeadLetters returns every copier dead letter of source, in order.
func (e *env) copierDeadLetters(t testing.TB, source string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(e.ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(e.ctx, seq, jetstream.WithGetMsgSubject(bus.DeadLetterSubject("copier", source)))
		if err != nil {
			return out
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// deadLetterCount is s3dest_dead_letters_total{stage="copier",reason} as the copier's /metrics shows it.
func (e *env) deadLetterCount(t testing.TB, reason string) float64 {
	t.Helper()
	e.mu.Lock()
	tel := e.tel
	e.mu.Unlock()
	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "s3dest_dead_letters_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["stage"] == "copier" && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Two destinations of a source have broken roles (AssumeRole refused: the trust policy wants another
// External ID), a third works. Files wait while the retention (seconds here) runs; the status shows
// them waiting with the deadline of the oldest. When it ends, each file is dead-lettered once for each
// destination that lacks it, with a reason naming the destination, the file and the AssumeRole
// AccessDenied it last failed with, before any further credential request; the counter and the
// status's dead-lettered files and events say so, nothing waits any more, and the working destination
// has every file.
func TestFilesWhoseRetentionEndsWhileTheirDestinationsRoleIsBrokenAreDeadLetteredForEachLackingDestinationWithTheReason(t *testing.T) {
	e := newEnv(t)
	const ret = 6 * time.Second
	e.setRetention(t, ret)
	e.g.CreateBucket(t, "ret-ok")
	e.g.CreateBucket(t, "ret-broken")
	const ok, brokenA, brokenB = "arn:aws:iam::111111111111:role/ret-ok", "arn:aws:iam::111111111111:role/ret-a", "arn:aws:iam::111111111111:role/ret-b"
	e.customerRole(t, ok, "ret-ok", "")
	e.customerRole(t, brokenA, "ret-broken", "not-the-workspace")
	e.customerRole(t, brokenB, "ret-broken/b", "also-not-the-workspace")
	e.destination(t, "dest-ret-ok", "src-ret", "ret-ok", ok, "us-east-1")
	e.destination(t, "dest-ret-a", "src-ret", "ret-broken", brokenA, "us-east-1")
	e.destination(t, "dest-ret-b", "src-ret", "ret-broken/b", brokenB, "us-east-1")
	cfg := e.config()
	cfg.FailingRetry = 5 * time.Minute // after the first refusal, nothing but the retention ends the wait
	e.start(t, cfg)

	staged := time.Now()
	events := map[string]int{"ret0": 1, "ret1": 2, "ret2": 3}
	for name, n := range events {
		var lines []string
		for i := range n {
			lines = append(lines, fmt.Sprintf(`{"messageId":"%s-%d"}`, name, i))
		}
		e.stage(t, "src-ret", day1, name, lines...)
	}
	e.waitKeys(t, "ret-ok", len(events))

	// Waiting: the status's lane view shows three files and the oldest one's deadline.
	for _, dest := range []string{"dest-ret-a", "dest-ret-b"} {
		testenv.Eventually(t, 5*time.Second, dest+" to show three waiting files and a deadline", func() bool {
			lane, err := retention.LaneOf(e.ctx, e.js, dest, "src-ret", ret)
			return err == nil && lane.Waiting == 3 && !lane.OldestDeadline.Before(staged.Add(ret)) && lane.OldestDeadline.Before(staged.Add(ret+3*time.Second))
		})
	}
	testenv.Eventually(t, 10*time.Second, "both broken destinations refused once", func() bool {
		return e.assumeCalls(brokenA) > 0 && e.assumeCalls(brokenB) > 0
	})

	testenv.Eventually(t, 30*time.Second, "a dead letter per file and lacking destination", func() bool {
		return len(e.copierDeadLetters(t, "src-ret")) >= 6
	})
	dls := e.copierDeadLetters(t, "src-ret")
	got := map[string]int{}
	for _, m := range dls {
		dest := m.Header.Get(HeaderDestination)
		reason := m.Header.Get(bus.HeaderReason)
		got[dest]++
		for _, want := range []string{"retention ended", "destination " + dest, "staging/src-ret/", "AssumeRole of arn:aws:iam::111111111111:role/ret-", "AccessDenied", MsgExternalID} {
			if !strings.Contains(reason, want) {
				t.Errorf("the dead letter for %s says %q, which lacks %q", dest, reason, want)
			}
		}
	}
	if len(dls) != 6 || got["dest-ret-a"] != 3 || got["dest-ret-b"] != 3 {
		t.Fatalf("dead letters per destination: %v (%d in all), want 3 for each broken destination and none for the working one", got, len(dls))
	}
	if n := e.deadLetterCount(t, reasonRetention); n != 6 {
		t.Errorf("s3dest_dead_letters_total{stage=copier,reason=retention} = %v, want 6", n)
	}
	cur := cursor.New(e.rdb, time.Hour)
	for _, dest := range []string{"dest-ret-a", "dest-ret-b"} {
		day, _, err := cur.Get(e.ctx, cursor.Delivered, dest, day1)
		if err != nil {
			t.Fatal(err)
		}
		if day.DeadFiles != 3 || day.DeadEvents != 6 || day.Files != 0 || !strings.HasPrefix(day.LastError, "A file was dropped: retention ended") {
			t.Errorf("%s's status: %d files and %d events dead-lettered, %d delivered, last error %q; want 3, 6, 0 and the retention's reason",
				dest, day.DeadFiles, day.DeadEvents, day.Files, day.LastError)
		}
		testenv.Eventually(t, 10*time.Second, dest+" to have nothing waiting", func() bool {
			lane, err := retention.LaneOf(e.ctx, e.js, dest, "src-ret", ret)
			return err == nil && lane.Waiting == 0 && lane.OldestDeadline.IsZero()
		})
	}
	if day, _, _ := cur.Get(e.ctx, cursor.Delivered, "dest-ret-ok", day1); day.DeadFiles != 0 || day.Files != 3 {
		t.Errorf("the working destination: %d files delivered and %d dead-lettered, want 3 and 0", day.Files, day.DeadFiles)
	}
	if calls := e.assumeCalls(brokenA) + e.assumeCalls(brokenB); calls > 4 {
		t.Errorf("the broken roles were asked %d times: the retention's decision must not wait on credentials", calls)
	}
}

// A destination's role is broken and its operator extends its retention: when the retention (seconds
// here) ends, its files are carried forward (the staged object refreshed, a fresh lane message) again
// and again instead of dead-lettered. Once the role is fixed, every waiting file arrives exactly once,
// and nothing was dead-lettered.
func TestAnExtendedRetentionCarriesWaitingFilesForwardAndTheyArriveOnceWhenTheRoleIsFixed(t *testing.T) {
	e := newEnv(t)
	const ret = 3 * time.Second
	e.setRetention(t, ret)
	e.g.CreateBucket(t, "ext")
	const broken, works = "arn:aws:iam::111111111111:role/ext-broken", "arn:aws:iam::111111111111:role/ext-works"
	e.customerRole(t, broken, "ext", "not-the-workspace")
	e.customerRole(t, works, "ext", "")
	d := e.destination(t, "dest-ext", "src-ext", "ext", broken, "us-east-1")
	d.RetentionExtendedUntil = timestamppb.New(time.Now().Add(10 * time.Minute)) // what POST …/retention:extend stores
	e.putDestination(t, d)
	cfg := e.config()
	cfg.FailingRetry = 5 * time.Minute
	e.start(t, cfg)

	const files = 4
	var want []string
	for i := range files {
		name := fmt.Sprintf("ext%d", i)
		e.stage(t, "src-ext", day1, name, fmt.Sprintf(`{"messageId":"x-%d-a"}`, i), fmt.Sprintf(`{"messageId":"x-%d-b"}`, i))
		want = append(want, fmt.Sprintf("segment-logs/src-ext/%d/%s.gz", day1, name))
	}
	carried := bus.CarriedSubject("dest-ext")
	testenv.Eventually(t, 60*time.Second, "every file carried forward twice", func() bool {
		return e.subjectCount(t, bus.StreamBatches, carried) >= 2*files
	})
	head, err := e.g.RootS3().HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(testStaging), Key: aws.String(fmt.Sprintf("staging/src-ext/%d/ext0.gz", day1))})
	if err != nil {
		t.Fatal(err)
	}
	if head.Metadata["s3dest-carried-at"] == "" {
		t.Errorf("the carried file's staged object was not refreshed: metadata %v", head.Metadata)
	}
	if dls := e.copierDeadLetters(t, "src-ext"); len(dls) != 0 {
		t.Fatalf("%d files dead-lettered while the retention was extended: %q", len(dls), dls[0].Header.Get(bus.HeaderReason))
	}
	lane, err := retention.LaneOf(e.ctx, e.js, "dest-ext", "src-ext", ret)
	if err != nil || lane.Waiting != files || lane.OldestDeadline.IsZero() {
		t.Fatalf("the status's lane view: %+v, %v; want %d waiting with a deadline", lane, err, files)
	}

	d.Settings.IamRoleArn = works // what PATCH /destinations/{id} stores
	e.putDestination(t, d)
	keys := e.waitKeys(t, "ext", files)
	sort.Strings(keys)
	sort.Strings(want)
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("ext holds %v, want %v", keys, want)
	}
	cur := cursor.New(e.rdb, time.Hour)
	testenv.Eventually(t, 10*time.Second, "every file counted", func() bool {
		day, _, _ := cur.Get(e.ctx, cursor.Delivered, "dest-ext", day1)
		return day.Files >= files
	})
	testenv.Eventually(t, 10*time.Second, "nothing waiting", func() bool {
		lane, err := retention.LaneOf(e.ctx, e.js, "dest-ext", "src-ext", ret)
		return err == nil && lane.Waiting == 0
	})
	day, _, _ := cur.Get(e.ctx, cursor.Delivered, "dest-ext", day1)
	if day.Files != files || day.Events != 2*files || day.DeadFiles != 0 {
		t.Errorf("the cursor counts %d files, %d events, %d dead-lettered; want %d, %d, 0: a file arrived twice or was dropped", day.Files, day.Events, day.DeadFiles, files, 2*files)
	}
	if n := e.subjectCount(t, bus.StreamBatches, bus.DeliveredSubject("dest-ext")); n != files {
		t.Errorf("batch.delivered.dest-ext holds %d announcements, want %d", n, files)
	}
	if dls := e.copierDeadLetters(t, "src-ext"); len(dls) != 0 {
		t.Errorf("%d files dead-lettered", len(dls))
	}
	if n := e.deadLetterCount(t, reasonRetention); n != 0 {
		t.Errorf("s3dest_dead_letters_total{reason=retention} = %v, want 0", n)
	}
}
