package batcher

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/s3dest/s3dest/pkg/testenv"
)

// splitEvenly reports whether the leases of n sources are held by exactly owners batchers, each with
// its fair share.
func splitEvenly(t *testing.T, js jetstream.JetStream, owners, n int) bool {
	held := leaseHolders(t, js)
	if len(held) != owners {
		return false
	}
	for _, c := range held {
		if c != (n+owners-1)/owners {
			return false
		}
	}
	return true
}

// A batcher that leaves, by a clean stop (its leases released) or by a SIGKILL (its leases expire),
// while events keep coming to four sources: the other batcher ends up owning every source, and every
// event is sealed once across the move. (TestABatcherThatJoinsGetsHalfTheSourcesAndEveryEventIsSealedOnce
// is the join.)
func TestWhenABatcherLeavesTheOtherOwnsEverySourceAndEveryEventIsSealedOnce(t *testing.T) {
	sources := []string{"s1", "s2", "s3", "s4"}

	t.Run("a clean stop", func(t *testing.T) {
		_, nc, js := testenv.NATS(t)
		redisURL, _ := testenv.Redis(t)
		putSources(t, js, sources...)
		r := &rig{t: t, js: js}
		cfg := defaults()
		cfg.FlushInterval = 2 * time.Second // a file is open whenever a source moves
		leaving := runBatcher(t, cfg, nc, js, redisURL)
		runBatcher(t, cfg, nc, js, redisURL)
		stopPublishing := publishUnderLoad(t, context.Background(), js, sources...)
		testenv.Eventually(t, 30*time.Second, "the sources to be split two and two", func() bool { return splitEvenly(t, js, 2, len(sources)) })
		leaving()
		testenv.Eventually(t, 30*time.Second, "the remaining batcher to own all four sources", func() bool { return splitEvenly(t, js, 1, len(sources)) })
		ids := stopPublishing()
		r.waitSealedOnce(fmt.Sprintf("all %d events sealed once", len(ids)), ids)
	})

	t.Run("a SIGKILL", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds bin/batcher and runs it as a process: skipped under -short")
		}
		srv, nc, js := testenv.NATS(t)
		redisURL, _ := testenv.Redis(t)
		putSources(t, js, sources...)
		r := &rig{t: t, js: js}
		exe := filepath.Join(t.TempDir(), "batcher")
		build := exec.Command("go", "build", "-o", exe, "./cmd/batcher")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			t.Fatalf("build bin/batcher: %v", err)
		}
		killed := startBatcherProcess(t, exe, srv.URL(), redisURL)
		testenv.Eventually(t, 60*time.Second, "the process to lease every source", func() bool { return splitEvenly(t, js, 1, len(sources)) })
		cfg := defaults()
		cfg.FlushInterval = 2 * time.Second
		runBatcher(t, cfg, nc, js, redisURL)
		stopPublishing := publishUnderLoad(t, context.Background(), js, sources...)
		testenv.Eventually(t, 30*time.Second, "the sources to be split two and two", func() bool { return splitEvenly(t, js, 2, len(sources)) })
		if err := syscall.Kill(-killed.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Its leases and its member key expire after leaseTTL; its delivered, unacknowledged events are
		// redelivered after the ack wait.
		testenv.Eventually(t, 3*leaseTTL, "the remaining batcher to own all four sources", func() bool { return splitEvenly(t, js, 1, len(sources)) })
		ids := stopPublishing()
		r.waitSealedOnce(fmt.Sprintf("all %d events sealed once", len(ids)), ids)
	})
}
