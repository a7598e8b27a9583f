// Command s3fno is the operator's tool for an s3-fno deployment: where a
// file is, what failed, replaying a file, redriving the import dead-letter
// queue and checking every link. Run `s3fno help`; the commands are in
// internal/ops/cli.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/fno-bridge/s3-fno/internal/ops/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
