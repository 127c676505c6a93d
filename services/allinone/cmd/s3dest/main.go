// Command s3dest is the all-in-one binary and the CLI: `s3dest dev` runs every service with embedded
// defaults; `s3dest -h` lists every command (services/allinone/cli.go).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/s3dest/s3dest/services/allinone"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := allinone.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3dest:", err)
	}
	os.Exit(allinone.ExitCode(err))
}
