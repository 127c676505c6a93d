package allinone

import (
	"errors"
	"flag"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/s3dest/s3dest/pkg/platform"
)

// runCommand is a command whose flags are a service config's struct tags (platform.Bind). Go's flag
// package parses them, as before the CLI moved to cobra, so that -flag and --flag both work and every
// S3DEST_* variable keeps its name and meaning; cobra only shows them in -h and completes them. extra
// adds flags that are not the service's settings (--json). run gets the arguments after the flags.
func runCommand(cmd *cobra.Command, cfg any, extra func(*flag.FlagSet), run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	fs := flag.NewFlagSet(cmd.Name(), flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, help is cobra's
	bindErr := platform.Bind(fs, cfg)
	if extra != nil {
		extra(fs)
	}
	cmd.DisableFlagParsing = true
	cmd.GroupID = groupRun
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if bindErr != nil {
			return usageErrorf("%s: %w", cmd.CommandPath(), bindErr)
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return cmd.Help()
			}
			return usageErrorf("%s: %w (see %s -h)", cmd.CommandPath(), err, cmd.CommandPath())
		}
		return run(cmd, fs.Args())
	}
	// With its own parsing, cobra leaves flag completion to the command.
	cmd.ValidArgsFunction = func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !strings.HasPrefix(toComplete, "-") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		var names []cobra.Completion
		fs.VisitAll(func(f *flag.Flag) { names = append(names, cobra.CompletionWithDesc("--"+f.Name, f.Usage)) })
		return names, cobra.ShellCompDirectiveNoFileComp
	}
	cmd.Flags().AddGoFlagSet(fs)
	cmd.Flags().VisitAll(func(f *pflag.Flag) { // platform.Bind's NAME-file flags: "--x-file file", not "value"
		if strings.HasSuffix(f.Name, "-file") && strings.HasPrefix(f.Usage, "file holding") {
			f.Usage = strings.Replace(f.Usage, "file holding", "`file` holding", 1)
		}
	})
	return cmd
}

// noArgs fails on arguments left after the flags of a run command.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s: unexpected argument %q (flags are --name value; see %s -h)", cmd.CommandPath(), args[0], cmd.CommandPath())
	}
	return nil
}

// validConfig is a run command's configuration check, as a usage error.
func validConfig(cfg interface{ Validate() error }) error {
	if err := cfg.Validate(); err != nil {
		return withExit(ExitUsage, errors.New("invalid configuration:\n"+err.Error()))
	}
	return nil
}

func devCommand(a *app) *cobra.Command {
	var cfg DevConfig
	cmd := &cobra.Command{
		Use:   "dev [flags]",
		Short: "run every service in one process with embedded NATS, Redis, S3 and STS",
		Long: `Runs every s3dest service in one process, with embedded NATS JetStream, Redis, S3 and an STS that
enforces IAM trust and permission policies; state lives under --data-dir. On start it creates a
workspace, a demo source, bucket, role and destination, prints how to send an event, and logs the
CLI in to itself (--cli-login=false leaves the CLI's login alone). --json prints the summary
(the --summary-file object) instead of the greeting.

Every flag is also an environment variable (shown with it); flags take one dash or two.`,
		Example: `  s3dest dev
  s3dest dev --data-dir /tmp/s3dest --flush-interval 5s \
    --dev-aws-config deploy/local/dev-aws-config.example.json`,
	}
	return runCommand(cmd, &cfg, func(fs *flag.FlagSet) {
		fs.BoolVar(&cfg.JSON, "json", false, "print the summary as JSON once ready, instead of the greeting")
	}, func(cmd *cobra.Command, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if err := validConfig(cfg); err != nil {
			return err
		}
		return Dev(cmd.Context(), cfg, a.out)
	})
}

func stsGateCommand(a *app) *cobra.Command {
	var cfg GateConfig
	cmd := &cobra.Command{
		Use:   "sts-gate [flags]",
		Short: "the STS trust gate in front of a MinIO, as its own process (the local cluster)",
		Long: `Runs the STS trust gate in front of a MinIO (DESIGN.md §7) as its own process: it evaluates IAM trust
policies on AssumeRole and hands out MinIO credentials limited by the role's permission policies.
deploy/local/Procfile runs it. Every flag is also an environment variable (shown with it).`,
	}
	return runCommand(cmd, &cfg, nil, func(cmd *cobra.Command, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if err := validConfig(cfg); err != nil {
			return err
		}
		return RunGate(cmd.Context(), cfg, a.out)
	})
}

func clusterBootstrapCommand(a *app) *cobra.Command {
	var cfg BootstrapConfig
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cluster-bootstrap [flags]",
		Short: "wait for the local cluster (deploy/local/Procfile), create the demo, write summary.json",
		Long: `Waits until every line of the local cluster's Procfile is ready, creates the demo bucket, role,
source and destination, and writes $S3DEST_CLUSTER_DIR/summary.json (deploy/local/bootstrap runs it).
--json prints that summary instead of the greeting.`,
	}
	return runCommand(cmd, &cfg, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the summary as JSON instead of the greeting")
	}, func(cmd *cobra.Command, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if err := validConfig(cfg); err != nil {
			return err
		}
		greeting := a.out
		if asJSON {
			greeting = io.Discard
		}
		sum, err := ClusterBootstrap(cmd.Context(), cfg, greeting)
		if err != nil || !asJSON {
			return err
		}
		return printValue(a.out, sum)
	})
}

func awaitCommand(a *app) *cobra.Command {
	var cfg BootstrapConfig
	cmd := &cobra.Command{
		Use:   "await [flags] LINE…",
		Short: "wait until these lines of deploy/local/Procfile are ready",
		Long: `Returns once the named lines of the Procfile are ready (their readiness probes answer). A line of
deploy/local/Procfile starts with it, so that a service starts only after the servers it needs.
It prints nothing.`,
		Example: "  s3dest await nats1 nats2 nats3 redis && exec bin/admin …",
	}
	return runCommand(cmd, &cfg, nil, func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErrorf("%s: name at least one Procfile line (usage: s3dest await [flags] LINE…)", cmd.CommandPath())
		}
		if err := validConfig(cfg); err != nil {
			return err
		}
		return Await(cmd.Context(), cfg, args)
	})
}
