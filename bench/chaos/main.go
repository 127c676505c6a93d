// Command chaos is s3dest's chaos suite (issue 15, DESIGN.md §8): it runs the local cluster of
// deploy/local/Procfile, every line its own process group on free ports with all state in a temp dir,
// bootstraps it, drives steady load through Segment's Go client at both ingest replicas, and injects
// faults one scenario at a time with recovery between: SIGKILL and restart of each process kind, of the
// NATS node leading the EVENTS stream and of one leading a consumer, a Redis restart and FLUSHALL, a
// batcher and a copier stopped past their lease and ack wait, S3 answering 5xx and SlowDown, STS
// refusing, and one NATS node cut from its routes.
//
// Every event carries a unique messageId prefixed with its scenario. At the end the customer bucket is
// read back (every object under segment-logs/, gunzipped, counted by messageId), and for each scenario
// it reports events accepted (answered 2xx), delivered, lost (accepted, never delivered), duplicated
// (delivered more than once) and the seconds to recover. It writes chaos.json and chaos.md and exits
// non-zero on any loss or duplicate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the suite's flags.
type config struct {
	quick     bool
	procfile  string
	envFile   string
	bin       string
	out       string
	scenarios []string
	rate      int
	flush     time.Duration
	pre       time.Duration
	recover   time.Duration
	drain     time.Duration
	keep      bool
}

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	c := config{}
	fs.BoolVar(&c.quick, "quick", false, "the CI subset with short phases: under 6 minutes on 2 cores")
	fs.StringVar(&c.procfile, "procfile", "deploy/local/Procfile", "the cluster's Procfile (run from the repository root)")
	fs.StringVar(&c.envFile, "env-file", "deploy/local/cluster.env", "its env file; every *_PORT is replaced by a free port")
	fs.StringVar(&c.bin, "bin", "bin", "where `make build` put s3dest and the service binaries")
	fs.StringVar(&c.out, "out", "bench/results", "where chaos.json and chaos.md go")
	list := fs.String("scenarios", "", "comma-separated scenario names (default: all; the quick set with -quick)")
	fs.IntVar(&c.rate, "rate", 200, "events/s sent, spread over the ingest replicas")
	fs.DurationVar(&c.flush, "flush-interval", 2*time.Second, "the batchers' FLUSH_INTERVAL")
	fs.DurationVar(&c.pre, "pre", 0, "steady load before each fault, the pre-fault rate's window (default 10s, 6s with -quick)")
	fs.DurationVar(&c.recover, "recover-timeout", 3*time.Minute, "how long a scenario may take to recover before the next starts anyway")
	fs.DurationVar(&c.drain, "drain-timeout", 3*time.Minute, "how long the final read-back waits for the last accepted events")
	fs.BoolVar(&c.keep, "keep", false, "keep the cluster's temp dir (logs, stores) after the run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.pre == 0 {
		c.pre = 10 * time.Second
		if c.quick {
			c.pre = 6 * time.Second
		}
	}
	for _, s := range scenarios {
		if *list == "" && (!c.quick || s.quick) || slices.Contains(strings.Split(*list, ","), s.name) {
			c.scenarios = append(c.scenarios, s.name)
		}
	}
	for _, name := range strings.Split(*list, ",") {
		if name != "" && !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == name }) {
			return c, fmt.Errorf("-scenarios: no scenario %q", name)
		}
	}
	if c.rate < 10 || c.flush < 500*time.Millisecond || c.pre < 2*c.flush {
		return c, errors.New("-rate must be at least 10, -flush-interval at least 500ms, -pre at least two flush intervals")
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}
