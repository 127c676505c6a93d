package copier

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/s3dest/s3dest/pkg/bus"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// slowProxy starts toxiproxy in-process (as a library, no API server) on 127.0.0.1 in front of MinIO
// and returns it: the test sends one bucket's requests through it and adds toxics.
func slowProxy(t *testing.T, e *env) *toxiproxy.Proxy {
	t.Helper()
	u, err := url.Parse(e.g.MinIO.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.New(io.Discard))
	p := toxiproxy.NewProxy(srv, "slow-s3", "127.0.0.1:0", u.Host)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// The reference's promise, tested: a destination whose S3 is slow and one whose role is broken never
// delay a third source's destination; once the role is fixed and the S3 is fast again, both receive
// every file, once.
func TestASlowAndABrokenDestinationNeverDelayAnotherAndCatchUpOnceFixed(t *testing.T) {
	e := newEnv(t)
	for _, b := range []string{"slow", "broken", "healthy"} {
		e.g.CreateBucket(t, b)
	}
	const (
		slowRole    = "arn:aws:iam::111111111111:role/slow"
		brokenRole  = "arn:aws:iam::222222222222:role/broken"
		healthyRole = "arn:aws:iam::333333333333:role/healthy"
	)
	e.customerRole(t, slowRole, "slow", "")
	e.customerRole(t, brokenRole, "broken", "wrong-external-id") // trusts us, but not with our External ID
	e.customerRole(t, healthyRole, "healthy", "")
	e.destination(t, "dest-slow", "src-slow", "slow", slowRole, "us-east-1")
	e.destination(t, "dest-broken", "src-broken", "broken", brokenRole, "us-east-1")
	e.destination(t, "dest-healthy", "src-healthy", "healthy", healthyRole, "us-east-1")

	// Every request to the slow bucket waits an hour on its way to MinIO: until the toxic is removed.
	p := slowProxy(t, e)
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(`{"name":"slow","type":"latency","stream":"upstream","attributes":{"latency":3600000}}`)); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.via["slow"] = p.Listen
	e.mu.Unlock()
	cfg := e.config()
	cfg.ResponseTimeout = time.Hour // slow, not dead: the requests stay in flight
	e.start(t, cfg)

	const files = 6 // more than a destination's workers: a shared pool would fill with them
	for i := range files {
		e.stage(t, "src-slow", day1, fmt.Sprintf("slow-%d", i), fmt.Sprintf(`{"messageId":"slow-%d"}`, i))
		e.stage(t, "src-broken", day1, fmt.Sprintf("broken-%d", i), fmt.Sprintf(`{"messageId":"broken-%d"}`, i))
	}
	testenv.Eventually(t, 30*time.Second, "the broken destination to be marked failing", func() bool {
		return e.lastError(t, "dest-broken", day1) == MsgExternalID
	})
	e.mu.Lock()
	slowPuts := e.requests["PUT /slow"]
	e.mu.Unlock()
	if slowPuts == 0 {
		t.Fatal("no write to the slow bucket is in flight yet; the test would prove nothing")
	}

	// The healthy destination receives file after file while the others are stuck.
	for i := range 3 {
		e.stage(t, "src-healthy", day1, fmt.Sprintf("healthy-%d", i), fmt.Sprintf(`{"messageId":"healthy-%d"}`, i))
		e.waitKeys(t, "healthy", i+1)
	}
	if keys := e.keys(t, "slow"); len(keys) != 0 {
		t.Fatalf("the slow bucket already holds %v: its requests were not held, the test proves nothing", keys)
	}
	if keys := e.keys(t, "broken"); len(keys) != 0 {
		t.Fatalf("the broken bucket holds %v although its role refuses our External ID", keys)
	}

	// The customer fixes the role and the slow S3 recovers: everything arrives, once.
	e.customerRole(t, brokenRole, "broken", "")
	if err := p.Toxics.RemoveToxic(e.ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"slow", "broken"} {
		keys := e.waitKeys(t, b, files)
		if len(keys) != files {
			t.Errorf("%s holds %d files, want %d: %v", b, len(keys), files, keys)
		}
		for _, k := range keys {
			lines := readObject(t, e, b, k)
			if strings.Count(lines, "\n") != 1 || !strings.Contains(lines, `"`+b+`-`) {
				t.Errorf("%s/%s = %q, want one event of %s's source", b, k, lines, b)
			}
		}
	}
	testenv.Eventually(t, 10*time.Second, "the broken destination's error to clear", func() bool {
		return e.lastError(t, "dest-broken", day1) == ""
	})
	// Nothing more arrives later: every file was written exactly once (If-None-Match would also refuse a
	// second write of a key, so count the lanes' acknowledgements instead of trusting the listing alone).
	for _, d := range []string{"dest-slow", "dest-broken", "dest-healthy"} {
		testenv.Eventually(t, 20*time.Second, d+"'s lane to have nothing pending", func() bool {
			s, err := e.js.Stream(e.ctx, "BATCHES")
			if err != nil {
				return false
			}
			c, err := s.Consumer(e.ctx, bus.CopierConsumer(d))
			if err != nil {
				return false
			}
			ci, err := c.Info(e.ctx)
			return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
		})
	}
	for b, n := range map[string]int{"slow": files, "broken": files, "healthy": 3} {
		if keys := e.keys(t, b); len(keys) != n {
			t.Errorf("%s holds %d files at the end, want %d", b, len(keys), n)
		}
	}
	e.scanForSecrets(t)
}

// A write that gets no response within --aws-response-timeout is a timeout: retried with backoff until
// the bucket answers again, and the file is there once.
func TestATimedOutWriteIsRetriedUntilTheBucketAnswers(t *testing.T) {
	e := newEnv(t)
	e.g.CreateBucket(t, "hang")
	const role = "arn:aws:iam::111111111111:role/hang"
	e.customerRole(t, role, "hang", "")
	e.destination(t, "dest-hang", "src-hang", "hang", role, "us-east-1")
	p := slowProxy(t, e)
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(`{"name":"hang","type":"latency","stream":"upstream","attributes":{"latency":3600000}}`)); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.via["hang"] = p.Listen
	e.mu.Unlock()
	cfg := e.config()
	cfg.ResponseTimeout = 500 * time.Millisecond
	e.start(t, cfg)
	e.stage(t, "src-hang", day1, "h1", `{"messageId":"h-1"}`)

	testenv.Eventually(t, 30*time.Second, "two timed-out attempts", func() bool {
		return strings.Count(e.logs.String(), "timeout awaiting response headers") >= 2
	})
	if keys := e.keys(t, "hang"); len(keys) != 0 {
		t.Fatalf("hang holds %v while every request to it hangs", keys)
	}
	if err := p.Toxics.RemoveToxic(e.ctx, "hang"); err != nil {
		t.Fatal(err)
	}
	keys := e.waitKeys(t, "hang", 1)
	if len(keys) != 1 || !strings.HasSuffix(keys[0], "/h1.gz") {
		t.Fatalf("hang holds %v, want h1.gz once", keys)
	}
}
