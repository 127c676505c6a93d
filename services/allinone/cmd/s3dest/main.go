// Command s3dest is the all-in-one binary: `s3dest dev` runs every service with embedded defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/services/allinone"
)

const usage = `usage: s3dest <command> [flags]

commands:
  dev                        run every service in one process with embedded NATS, Redis, S3 and STS
  sts-gate                   the STS trust gate in front of a MinIO, as its own process (the local cluster)
  cluster-bootstrap          wait for the local cluster (deploy/local/Procfile), create the demo, write summary.json
  await LINE…                 wait until these lines of deploy/local/Procfile are ready
  validate <destinationId>   check a destination's IAM setup, step by step (the reference's "Validate")
  sources …                  list, get, create, update, delete sources; create, rotate, revoke write keys
  destinations …             list, get, create, update, delete, validate destinations; extend-retention
  status [destinationId…]    validation, deliveries and dead letters per received day; waiting files and
                             the retention deadline of the oldest
  workspace [--bucket B]     the External ID and the IAM policies your role needs
  migrate --source ID …      move a source from Amazon S3 to AWS S3, step by step (the reference's migration)
  replay --destination ID --from DAY --to DAY
                             re-deliver a destination's staged files of those received days; status, cancel,
                             resume, list

Run "s3dest <command> -h" for its flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3dest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "dev":
		var cfg allinone.DevConfig
		if help, err := parse("s3dest dev", &cfg, args[1:]); help || err != nil {
			return err
		}
		return allinone.Dev(ctx, cfg, os.Stdout)
	case "sts-gate":
		var cfg allinone.GateConfig
		if help, err := parse("s3dest sts-gate", &cfg, args[1:]); help || err != nil {
			return err
		}
		return allinone.RunGate(ctx, cfg, os.Stdout)
	case "cluster-bootstrap":
		var cfg allinone.BootstrapConfig
		if help, err := parse("s3dest cluster-bootstrap", &cfg, args[1:]); help || err != nil {
			return err
		}
		_, err := allinone.ClusterBootstrap(ctx, cfg, os.Stdout)
		return err
	case "await":
		var cfg allinone.BootstrapConfig
		fs := flag.NewFlagSet("s3dest await", flag.ContinueOnError)
		if err := platform.Bind(fs, &cfg); err != nil {
			return err
		}
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		return allinone.Await(ctx, cfg, fs.Args())
	case "validate", "sources", "destinations", "status", "workspace", "migrate", "replay":
		return allinone.RunCLI(ctx, args, os.Stdin, os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// parse binds cfg's flags and environment and parses args; help is true after -h.
func parse(name string, cfg any, args []string) (help bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if err := platform.Bind(fs, cfg); err != nil {
		return false, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	return false, nil
}
