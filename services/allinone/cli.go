package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// The s3dest command line is one cobra tree: the commands that run s3dest (dev, sts-gate,
// cluster-bootstrap, await: their flags are the service configs' struct tags, parsed by Go's flag
// package as before) and a thin client of the admin REST API (sources, destinations, status, workspace,
// validate, migrate, replay, login, logout). Adding a command is one file with a func(*app) *cobra.Command and
// its line in commands below (docs/cli.md).

// Exit codes: what a script can tell apart without reading the message.
const (
	ExitOK          = 0
	ExitError       = 1 // anything else: the API refused the call (404, 5xx), a file could not be written, …
	ExitUsage       = 2 // the command line is wrong, or the API refused a value given (400, 422)
	ExitCheckFailed = 3 // a check ran and failed: the destination's validation, migrate's wait for data
	ExitUnreachable = 4 // the admin API could not be reached, or refused the token (401, 403), or none was given
)

// exitError carries the exit code of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExit gives err an exit code (nil stays nil).
func withExit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// ExitCode is the process's exit code for what RunCLI returned.
func ExitCode(err error) int {
	var e *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &e):
		return e.code
	}
	return ExitError
}

const exitCodesHelp = `Exit codes:
  0  ok
  1  any other error (an unknown ID, a server error, a file that could not be written)
  2  usage: an unknown command or flag, a missing argument, a value the CLI or the API refused
  3  a check failed: the destination did not validate, or migrate's wait for data ran out
  4  the admin API is unreachable or refused the token (or no token was found)`

// app is what every command shares: its streams and the client flags.
type app struct {
	in          io.Reader
	out, errOut io.Writer
	conn        connFlags
	json        bool
}

// commands is the command tree's first level, in the order `s3dest -h` lists each group.
var commands = []func(*app) *cobra.Command{
	devCommand, stsGateCommand, clusterBootstrapCommand, awaitCommand, // run s3dest
	sourcesCommand, destinationsCommand, statusCommand, validateCommand, workspaceCommand, migrateCommand, replayCommand, // manage
	loginCommand, logoutCommand, versionCommand, // set up the CLI
}

// Command groups in `s3dest -h`.
const (
	groupRun    = "run"
	groupManage = "manage"
	groupCLI    = "cli"
)

// NewCLI builds the command tree. in answers questions (migrate, login); out receives what a command
// prints, errOut help asked for by mistake and questions while --json keeps out machine-readable.
func NewCLI(in io.Reader, out, errOut io.Writer) *cobra.Command {
	a := &app{in: in, out: out, errOut: errOut}
	root := &cobra.Command{
		Use:   "s3dest",
		Short: "Segment's AWS S3 (IAM role) destination, self-hosted",
		Long: `s3dest receives events through the Segment Tracking API and delivers them, exactly once, as gzipped
newline-delimited JSON into each customer's S3 bucket, writing with the customer's IAM role.

It runs every service (s3dest dev), and it is a client of the admin REST API: tables for people, --json
for programs. The client finds the admin API and its token, first match wins, in
  1. the flags --admin-url, --admin-token, --admin-token-file
  2. the environment: S3DEST_ADMIN_URL, S3DEST_ADMIN_TOKEN, S3DEST_ADMIN_TOKEN_FILE
  3. the file written by s3dest login (and by s3dest dev): ` + displayConfigPath() + `
  4. the default URL http://127.0.0.1:8081 (a token is required)

` + exitCodesHelp,
		Example: `  s3dest dev                          # everything on this machine; logs the CLI in to it
  s3dest status                       # every destination, per received day
  s3dest validate <destinationId>     # the reference's Validate steps
  s3dest login --url https://s3dest.example.com --admin-token-file token.txt`,
		Args:              unknownSubcommand,
		RunE:              missingSubcommand,
		SilenceErrors:     true, // main prints the error once, with the exit code's class
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		// SuggestionsFor reads the distance as given (Find sets cobra's default of 2 only for itself).
		SuggestionsMinimumDistance: 2,
	}
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%s: %w (see %s -h)", cmd.CommandPath(), err, cmd.CommandPath())
	})
	root.AddGroup(
		&cobra.Group{ID: groupRun, Title: "Run s3dest:"},
		&cobra.Group{ID: groupManage, Title: "Manage sources and destinations (admin API):"},
		&cobra.Group{ID: groupCLI, Title: "Set up the CLI:"},
	)
	// cobra's template functions and sorting are package-wide: these are the same for every tree.
	cobra.AddTemplateFunc("flagUsages", func(cmd *cobra.Command, f *pflag.FlagSet) string {
		return f.FlagUsagesWrapped(helpWidth(cmd.OutOrStdout()))
	})
	root.SetUsageTemplate(usageTemplate)
	cobra.EnableCommandSorting = false // listed in the order of commands and of each group's subcommands
	for _, build := range commands {
		root.AddCommand(build(a))
	}
	// cobra's own help and completion commands, said the way the others are.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.GroupID, c.Short = groupCLI, "help about any command"
		case "completion":
			c.GroupID, c.Short = groupCLI, "a shell completion script: bash, zsh, fish or powershell"
			c.Args, c.RunE = unknownSubcommand, missingSubcommand
			c.Long += "\n\nFor example, for the current bash session: source <(s3dest completion bash)"
		}
	}
	return root
}

// helpWidth is the width flag help is wrapped to: the terminal's, or 100 columns when out is none.
func helpWidth(out io.Writer) int {
	if f, ok := out.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w >= 60 {
			return w - 1
		}
	}
	return 100
}

// usageTemplate is cobra's, with flag help wrapped to the width, and with one usage line for a command that groups others (cobra's shows two
// when such a command is runnable, as ours are so that a mistyped subcommand is an error).
const usageTemplate = `Usage:{{if .HasAvailableSubCommands}}{{if gt (len .Use) (len .Name)}}
  {{.UseLine}}{{end}}
  {{.CommandPath}} <command> [flags]{{else if .Runnable}}
  {{.UseLine}}{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}{{$cmds := .Commands}}{{if eq (len .Groups) 0}}

Commands:{{range $cmds}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{flagUsages . .LocalFlags | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{flagUsages . .InheritedFlags | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run "{{.CommandPath}} <command> -h" for a command's help.{{end}}
`

// RunCLI runs the command line args (without the program's name). Help and questions asked while --json
// is on are not shown; Execute takes a stream for them.
func RunCLI(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	return Execute(ctx, args, in, out, io.Discard)
}

// Execute runs the command line args (without the program's name); ExitCode(err) is the exit code.
func Execute(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	if in == nil {
		in = strings.NewReader("")
	}
	root := NewCLI(in, out, errOut)
	root.SetArgs(goStyleFlags(root, args))
	return root.ExecuteContext(ctx)
}

// goStyleFlags accepts the single-dash long flags of Go's flag package (-json, -admin-token=T), which the
// client commands took before they moved to cobra: a single-dash word naming one of the command's long
// flags gets its second dash. The run commands parse their flags with Go's flag package themselves.
func goStyleFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd.DisableFlagParsing {
		return args
	}
	known := func(name string) bool {
		return len(name) > 1 && (cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil || name == "help")
	}
	out := make([]string, 0, len(args))
	for i, arg := range args {
		if arg == "--" {
			return append(out, args[i:]...)
		}
		if name, _, _ := strings.Cut(arg, "="); len(arg) > 2 && arg[0] == '-' && arg[1] != '-' && known(name[1:]) {
			arg = "-" + arg
		}
		out = append(out, arg)
	}
	return out
}

// unknownSubcommand is the Args of a command that only groups others: any argument is a mistyped command.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageErrorf("%s (see %s -h)", msg, cmd.CommandPath())
}

// missingSubcommand is the RunE of a command that only groups others: it shows their list and fails.
func missingSubcommand(cmd *cobra.Command, _ []string) error {
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Usage()
	if !cmd.HasParent() {
		return usageErrorf("no command given")
	}
	return usageErrorf("%s: give a command", cmd.CommandPath())
}

// group is a command that only groups subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: unknownSubcommand, RunE: missingSubcommand, SuggestionsMinimumDistance: 2}
	c.AddCommand(subs...)
	return c
}

// positional checks a command's positional arguments against their names: names ending in "…" take one
// or more, names in [brackets] are optional.
func positional(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		min, max := 0, len(names)
		for _, n := range names {
			if !strings.HasPrefix(n, "[") {
				min++
			}
			if strings.HasSuffix(n, "…") || strings.HasSuffix(n, "…]") {
				max = -1
			}
		}
		switch {
		case len(args) < min:
			return usageErrorf("%s: missing %s (usage: %s)", cmd.CommandPath(), names[len(args)], cmd.UseLine())
		case max >= 0 && len(args) > max:
			return usageErrorf("%s: unexpected argument %q (usage: %s)", cmd.CommandPath(), args[max], cmd.UseLine())
		}
		return nil
	}
}
