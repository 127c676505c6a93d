package testenv

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// PeakRSS resets the kernel's high-water mark of this process's resident memory (clear_refs 5) and
// returns a function that reads it in MB: the peak of what happened in between. It skips where Linux's
// /proc does not allow the reset.
func PeakRSS(tb testing.TB) func() float64 {
	tb.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Skipf("needs Linux /proc/self/clear_refs to measure peak RSS: %v", err)
	}
	return func() float64 {
		mb, err := ProcessMemoryMB(os.Getpid(), "VmHWM")
		if err != nil {
			tb.Fatal(err)
		}
		return mb
	}
}

// ProcessMemoryMB reads one memory line of /proc/<pid>/status (VmHWM, the peak resident set; VmRSS,
// the current one) in MB.
func ProcessMemoryMB(pid int, field string) (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, os.ErrNotExist
}
