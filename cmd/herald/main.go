// Command herald is the Herald daemon and its tools: `herald serve` runs
// the webhook delivery service behind a Tailscale-compatible API, `herald
// receive` is a development receiver that verifies signatures. Run
// `herald help` for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/herald-webhooks/herald/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
