// Package failpoint lets crash tests kill a process at an exact step: when S3DEST_FAILPOINT names a
// point ("batcher.after-store", or "batcher.after-store:3" for its third hit), Hit sends SIGKILL to its
// own process there, which is what a crash looks like to everything else. With S3DEST_FAILPOINT_ACTION=stop
// it sends SIGSTOP instead, and goes on once the test sends SIGCONT: a process that stalls (a long GC
// pause, a VM frozen) at that very step. Unset, Hit is one atomic load.
package failpoint

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

var (
	once   sync.Once
	target string
	stop   bool
	after  atomic.Int64
)

func load() {
	spec := os.Getenv("S3DEST_FAILPOINT")
	name, n, found := strings.Cut(spec, ":")
	target = name
	stop = os.Getenv("S3DEST_FAILPOINT_ACTION") == "stop"
	count := int64(1)
	if found {
		if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
			count = v
		}
	}
	after.Store(count)
}

// Hit kills the process if name is the armed failpoint and its count is reached.
func Hit(name string) {
	once.Do(load)
	if target == "" || target != name {
		return
	}
	if after.Add(-1) == 0 {
		if stop {
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP) // returns after SIGCONT
			return
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; never continue past a failpoint
	}
}

// Reader passes r through and hits the failpoint name on every read that returns data, so a crash
// test can kill a process in the middle of a transfer.
func Reader(name string, r io.Reader) io.Reader { return reader{name: name, r: r} }

type reader struct {
	name string
	r    io.Reader
}

func (f reader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 {
		Hit(f.name)
	}
	return n, err
}
